"""Batches taken in one order, written by several writers, observed in the order taken.

The collector's writer threads each take a batch and write it; whichever write ends first,
the observers (the rules) must see the batches in the order they were taken, as with one
writer: a rules restore from InfluxDB replays that order (the restore test found the
out-of-order case).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


class Turnstile:
    """Tickets in take order; a ticket's turn comes when every earlier one is done."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._take_lock = threading.Lock()
        self._cond = threading.Condition()
        self._issued = 0  # tickets handed out with batches
        self._done = 0  # the last ticket done

    def take(self, take: Callable[[], list[_T]]) -> tuple[list[_T], int]:
        """``take()`` alone (one taker at a time); its batch and ticket (0 for no batch)."""
        with self._take_lock:
            batch = take()
            if not batch:
                return batch, 0
            self._issued += 1
            return batch, self._issued

    def wait_turn(self, ticket: int) -> bool:
        """Wait until every ticket before this one is done; False when stopping."""
        with self._cond:
            while self._done != ticket - 1:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.2)
        return True

    def done(self, ticket: int) -> None:
        """This ticket's batch was observed: the next one's turn."""
        with self._cond:
            self._done = ticket
            self._cond.notify_all()
