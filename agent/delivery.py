"""The spool's delivery state, in memory: which batches went out, when, and how often.

Not written to disk: a restarted agent sends every batch again anyway, and not writing it
keeps the disk-full path free of writes.  It also knows which batches are *fresh*: stored by
this process and never published by it.  Only those may be merged by publish.linger: a batch
published once may be in flight (its seq acked later), and one from before a restart may have
been published by the previous process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

NoWait = Callable[[int], int]
MonotonicMs = Callable[[], int]


def monotonic_ms() -> int:
    """Milliseconds on the monotonic clock: lingering is timed on it, not on the wall clock."""
    return time.monotonic_ns() // 1_000_000


def no_extra_wait(_attempts: int) -> int:
    """No backoff: a batch is due again ``ack_timeout`` after each send."""
    return 0


@dataclass
class _Sent:
    sent_ms: int
    attempts: int


class DeliveryState:
    """Send times and attempt counts of the batches sent since the last reconnect."""

    def __init__(self) -> None:
        self._sent: dict[int, _Sent] = {}
        self.fresh: dict[int, int] = {}  # seq -> monotonic ms it was stored (never published)

    def stored(self, seq: int, mono_ms: int) -> None:
        """A batch this process stored: fresh until it is published."""
        self.fresh[seq] = mono_ms

    def waiting(self, seq: int, resend_before_ms: int, extra_wait: NoWait) -> bool:
        """True when the batch was sent and is not yet due again."""
        sent = self._sent.get(seq)
        return sent is not None and sent.sent_ms + extra_wait(sent.attempts) >= resend_before_ms

    def in_flight(self, since_ms: int, extra_wait: NoWait) -> int:
        """Batches sent and not yet due again."""
        return sum(self.waiting(s, since_ms, extra_wait) for s in self._sent)

    def mark_sent(self, seqs: list[int], now_ms: int) -> None:
        """Record that these batches went out (once more)."""
        for seq in seqs:
            self.fresh.pop(seq, None)  # published: never merged again
            prev = self._sent.get(seq)
            self._sent[seq] = _Sent(now_ms, prev.attempts + 1 if prev else 1)

    def attempts(self, seq: int) -> int:
        """How often this batch was sent since the last reconnect."""
        sent = self._sent.get(seq)
        return sent.attempts if sent else 0

    def forget(self, seq: int) -> None:
        """The batch left the spool."""
        self._sent.pop(seq, None)
        self.fresh.pop(seq, None)

    def forget_range(self, first: int, last: int) -> None:
        """The batches ``first..last`` left the spool."""
        for seq in [s for s in self._sent if first <= s <= last]:
            del self._sent[seq]
        for seq in [s for s in self.fresh if first <= s <= last]:
            del self.fresh[seq]

    def clear(self) -> None:
        """After a reconnect: nothing is in flight (fresh batches stay fresh: never sent)."""
        self._sent.clear()
