"""User-facing errors: one line, says what to do, no traceback."""

import errno


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, unreachable service).

    The command line prints ``error: <message>`` on one line and exits with status 2.
    """


NO_SPACE = "No space left on device"


def disk_full(exc: BaseException) -> OSError | bool:
    """The ENOSPC error behind ``exc`` (itself or a cause, however a library wrapped it), True when
    only its message says so, False when the disk was not full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    found: OSError | bool = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return current
        found = found or NO_SPACE in str(current)
        current = current.__cause__ or current.__context__
    return found


def disk_full_message(error: OSError | bool) -> str:
    """One line for a full disk: where, and that a rerun continues where this one stopped."""
    where = f" writing {error.filename}" if isinstance(error, OSError) and error.filename else ""
    return f"no space left on device{where}; free some space and rerun the same command (finished work is kept)"
