"""Ctrl-C in a single-process training loop: the first press asks for a stop at the next step boundary
(after a checkpoint of that step, so no work is redone), a second press stops at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


class StepBoundaryStop:
    """``stop.install()`` before the loop, ``stop.restore()`` after it; the loop checks ``stop.requested``
    after each step.

    Disabled (the default Ctrl-C, at once) where the processes of a DDP run would stop at different
    steps, or outside the main thread, where Python cannot take SIGINT."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: Callable[[int, FrameType | None], Any] | int | None = signal.default_int_handler

    def _press(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> None:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._press)

    def restore(self) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
