"""User-facing errors: one line, says what to do, no traceback."""


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, unreachable service).

    The command line prints ``error: <message>`` on one line and exits with status 2.
    """
