"""The project's one error type for user mistakes."""


class NSTError(Exception):
    """A user mistake (bad file, bad option, impossible setting).

    The message is one line that names the file or the option and the problem; ``nst.cli`` prints it
    and exits non-zero without a traceback. Programming errors keep raising their own types.
    """


def one_line(e: BaseException, with_type: bool = False) -> str:
    """The first line of an exception's message (at most 200 characters), for one-line NSTErrors;
    ``with_type`` puts the exception's class in front (for a third-party reader's errors)."""
    lines = str(e).strip().splitlines()
    if not lines:
        return type(e).__name__
    return f"{type(e).__name__}: {lines[0][:200]}" if with_type else lines[0][:200]
