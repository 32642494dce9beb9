"""Clocks a test sets by hand: injected where the code takes a ``Callable[[], int]``."""

from __future__ import annotations


class MsClock:
    """A settable clock in milliseconds (wall or monotonic): ``clock.now_ms += 1000``."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms
