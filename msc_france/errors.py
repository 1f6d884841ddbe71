"""User-facing errors: one line, says what to do, no traceback."""

from __future__ import annotations

import errno
from collections.abc import Iterator

# What str.splitlines() breaks a line at, and its escape: a path or a name from the user that holds one
# is shown escaped so that the message stays on one line (found by fuzzing, tests/reliability/test_fuzz.py).
_LINE_BREAKS = str.maketrans({c: ascii(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, unreachable service).

    The command line prints ``error: <message>`` on one line and exits with status 2: line breaks in the
    message (from a path or a value the user gave) are shown escaped (``\\n``).
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(str(message).translate(_LINE_BREAKS))


RESUME = "rerun the same command to resume"


class Interrupted(Exception):  # noqa: N818 - not an error: the user asked to stop
    """Ctrl-C stopped a stage part-way; what it kept is complete and a rerun continues from there.

    The command line prints the message on one line and exits with status 130 (as for SIGINT).
    """

    def __init__(self, kept: int, total: int | None, what: str = "files", line: str | None = None) -> None:
        of = "" if total is None else f" of {total}"
        super().__init__(line or f"interrupted: {kept}{of} {what} kept; {RESUME}")
        self.kept, self.total = kept, total

    @classmethod
    def anywhere(cls) -> Interrupted:
        """Ctrl-C in a stage that counts nothing of its own (finished work is kept by each stage)."""
        return cls(0, None, line=f"interrupted; {RESUME}")

    @classmethod
    def at_checkpoint(cls, step: int | None, total: int) -> Interrupted:
        """Ctrl-C during training: the step of the last checkpoint (None: none written yet)."""
        if not step:
            return cls(0, total, line="interrupted: no checkpoint written yet; rerun the same command to start again")
        return cls(step, total, line=f"interrupted: checkpoint of step {step} kept; rerun the same command "
                                     "with --resume (make: resume=1) to continue")


NO_SPACE = "No space left on device"


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the errors it was raised from or during, outermost first (cycle-safe)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def disk_full(exc: BaseException) -> OSError | bool:
    """The ENOSPC error behind ``exc`` (itself or a cause, however a library wrapped it), True when
    only its message says so, False when the disk was not full."""
    found: OSError | bool = False
    for error in error_chain(exc):
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return error
        found = found or NO_SPACE in str(error)
    return found


def disk_full_message(error: OSError | bool) -> str:
    """One line for a full disk: where, and that a rerun continues where this one stopped."""
    where = f" writing {error.filename}" if isinstance(error, OSError) and error.filename else ""
    return f"no space left on device{where}; free some space and rerun the same command (finished work is kept)"
