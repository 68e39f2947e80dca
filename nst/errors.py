"""The project's one error type for user mistakes."""


class NSTError(Exception):
    """A user mistake (bad file, bad option, impossible setting).

    The message is one line that names the file or the option and the problem; ``nst.cli`` prints it
    and exits non-zero without a traceback. Programming errors keep raising their own types.
    """


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), for one-line NSTErrors."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
