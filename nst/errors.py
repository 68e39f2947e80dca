"""The project's one error type for user mistakes."""


class NSTError(Exception):
    """A user mistake (bad file, bad option, impossible setting).

    The message is one line that names the file or the option and the problem; ``nst.cli`` prints it
    and exits non-zero without a traceback. Programming errors keep raising their own types.
    """
