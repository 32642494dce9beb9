"""The collector's write queue: bounded in messages and bytes, one entry per batch.

Every message between its arrival and its ack is held here, queued or being written; its
payload size counts against ``write.queue_bytes`` until the write is done, so the bound is on
all the data the collector holds, not only on what waits.  A resend of a batch that is queued
or being written (same agent, seq and content) joins the first copy: it is written once and
both MQTT messages are acked when it is stored.  A resend that arrives after the store (the
agent's ack was still on its way, or the write took longer than the agent's ``ack_timeout``)
is recognised from a bounded memory of recently stored batches and acked without a write.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from collector.validate import Accepted, Rejected
from common.wire import MAX_PAYLOAD_BYTES, AgentIdentity

# (agent, seq, digest of the points or the reject cause): the same batch, whatever its
# sent_ms, and never a different batch that reuses a seq (an agent whose spool was recreated).
BatchKey = tuple[AgentIdentity, int, bytes]

# How many stored batches are remembered to recognise late resends (~150 bytes each).
REMEMBER_STORED = 20_000


class Delivery(NamedTuple):
    """One MQTT message carrying a batch: what to PUBACK once it is stored."""

    mid: int
    qos: int
    generation: int  # the connection it came on: a mid means nothing on a later one


class Raw(NamedTuple):
    """A data message as paho's thread hands it over: validated later, in a batch."""

    topic: str
    payload: bytes
    recv_ms: int  # when it arrived (clock correction and the time window use it)
    delivery: Delivery
    # Taken without room, only to see whether it is a resend of a batch held here (which
    # costs no room): kept if so, let go (Offer.FULL) if it is new and there is still none.
    probation: bool = False


@dataclass(slots=True)
class Inbound:
    """A validated message (and any resends of it) waiting for its write."""

    result: Accepted | Rejected
    size: int  # payload bytes, counted against write.queue_bytes until acked
    deliveries: list[Delivery]
    key: BatchKey | None = None
    probation: bool = False  # its Raw's: its room was never counted


class Offer(Enum):
    """What became of a message offered to the queue."""

    QUEUED = "queued"  # new: will be written
    JOINED = "joined"  # a resend of a batch queued or being written: acked with it
    STORED = "stored"  # a resend of a batch already stored: ack it now
    FULL = "full"  # no room: not taken (the caller lets it go; the agent resends it)


def batch_key(result: Accepted | Rejected) -> BatchKey | None:
    """The key that recognises resends of this batch; None when its seq is unknown."""
    if isinstance(result, Accepted):
        digest = hashlib.blake2b("\n".join(result.lines).encode(), digest_size=16).digest()
        return (result.who, result.seq, digest)
    if result.who is None or result.seq is None:
        return None
    return (result.who, result.seq, b"reject:" + result.cause.encode())


@dataclass
class QueueStats:
    """Counters for the collector's health and the tests."""

    bytes_held: int = 0
    peak_bytes: int = 0
    joined: int = 0  # resends recognised while their batch was queued or being written
    stored_resends: int = 0  # resends recognised after their batch was stored
    shed: int = 0  # messages not taken for lack of room (the agent resends them)
    probation_bytes: int = 0  # payload bytes taken without room, awaiting their check
    peak_probation: int = 0


@dataclass
class InflightQueue:
    """Queue of batches for the writer thread, bounded in messages and bytes.

    Two ways in: ``offer`` (one validated message), and ``receive`` + ``intake`` +
    ``offer_many``: the data session's thread only appends raw messages (their room counted
    at once, one uncontended lock round, no wake-up unless the validator sleeps), the
    validator thread takes them all at once and queues the validated batch in one lock round.
    """

    max_messages: int
    max_bytes: int
    # The broker's window: how many un-acked messages it sends us (the receive maximum) at
    # most.  Once that many are held and all are validated, no more can come before this
    # batch is written and acked, so ``take`` returns at once instead of waiting for its
    # flush interval: without that, small messages were capped at one window per interval
    # (1,000 per 200-250 ms, ~4,000 messages/s, issue 11).
    window: int | None = None
    # Payload bytes that may be taken without room, to be checked for being resends (one
    # message of the largest size): the most held is max_bytes + this.
    probation_limit: int = MAX_PAYLOAD_BYTES
    stats: QueueStats = field(default_factory=QueueStats)
    _waiting: deque[Inbound] = field(default_factory=deque)
    _held: int = 0  # messages received (raw), queued or being written
    _pending: dict[BatchKey, Inbound] = field(default_factory=dict)
    _stored: OrderedDict[BatchKey, None] = field(default_factory=OrderedDict)
    _raw: list[Raw] = field(default_factory=list)
    _validating: int = 0  # raw messages the validator has taken and not yet offered
    _validator_idle: bool = False
    _cond: threading.Condition = field(init=False)
    _raw_ready: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        # One lock guards the counts; separate waiters, so a message arriving wakes the
        # validator only, never the writer or a full receive.
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._raw_ready = threading.Condition(lock)

    def receive(self, raw: Raw, wait: float) -> bool:
        """Take one raw message; False when it was not taken (see ``receive_many``)."""
        return self.receive_many([raw], wait) == 1

    def receive_many(self, raws: list[Raw], wait: float) -> int:
        """Take raw messages in order (the data session's thread); how many were taken.

        Waits up to ``wait`` s in all for room.  A message that found none within it may
        still be taken on probation (``probation_limit`` bytes at most, beyond
        ``max_bytes``): the validator keeps it only if it is a resend of a batch held here,
        so a resend is recognised however full the queue is, instead of being let go and
        sent again over a school's slow link.  The messages after the first that fits
        neither are not taken (the caller lets them go).
        """
        if not raws:
            return 0
        deadline = time.monotonic() + wait
        taken = 0
        with self._cond:
            for raw in raws:
                size = len(raw.payload)
                if not self._has_room(size):
                    if self._validator_idle:  # it must make room: let it see what came
                        self._raw_ready.notify()
                    if not self._cond.wait_for(lambda s=size: self._has_room(s),  # type: ignore[misc]
                                               max(0.0, deadline - time.monotonic())):
                        if self.stats.probation_bytes + size > self.probation_limit:
                            self.stats.shed += len(raws) - taken
                            break
                        self.stats.probation_bytes += size
                        self.stats.peak_probation = max(self.stats.peak_probation,
                                                        self.stats.probation_bytes)
                        self._raw.append(raw._replace(probation=True))
                        taken += 1
                        continue
                self._raw.append(raw)
                self._count_in(size)
                taken += 1
            if self._validator_idle and self._raw:
                self._raw_ready.notify()
        return taken

    def intake(self, wait: float) -> list[Raw]:
        """Every raw message received so far (the validator's thread); [] after ``wait`` s."""
        with self._cond:
            if not self._raw:
                self._validator_idle = True
                self._raw_ready.wait(wait)
                self._validator_idle = False
            raws, self._raw = self._raw, []
            self._validating = len(raws)
            return raws

    def offer_many(self, items: list[Inbound]) -> list[Offer]:
        """Queue validated messages ``receive`` took; one wake-up for the lot.

        Those on probation come back FULL when they are new and there is no room: the
        caller lets them go.
        """
        with self._cond:
            outcomes = [self._place(item) for item in items]
            self._validating = 0
            self._cond.notify_all()
            return outcomes

    def _count_in(self, size: int) -> None:
        self._held += 1
        self.stats.bytes_held += size
        self.stats.peak_bytes = max(self.stats.peak_bytes, self.stats.bytes_held)

    def _place(self, item: Inbound) -> Offer:
        """Queue a message, or join it to its first copy (then its room is free).

        A message on probation (its room never counted) is queued only if there is room
        now; otherwise it is FULL and shed.
        """
        key = item.key
        if item.probation:
            self.stats.probation_bytes -= item.size
        if key is not None:
            outcome = None
            first = self._pending.get(key)
            if first is not None:
                first.deliveries.extend(item.deliveries)
                self.stats.joined += 1
                outcome = Offer.JOINED
            elif key in self._stored:
                self.stats.stored_resends += 1
                outcome = Offer.STORED
            if outcome is not None:
                if not item.probation:
                    self._held -= 1
                    self.stats.bytes_held -= item.size
                return outcome
        if item.probation:
            if not self._has_room(item.size):
                self.stats.shed += 1
                return Offer.FULL
            item.probation = False
            self._count_in(item.size)
        if key is not None:
            self._pending[key] = item
        self._waiting.append(item)
        return Offer.QUEUED

    def offer(self, item: Inbound, wait: float) -> Offer:
        """Queue a message, or join it to its first copy; waits up to ``wait`` s for room."""
        with self._cond:
            key = item.key
            if key is not None:
                first = self._pending.get(key)
                if first is not None:
                    first.deliveries.extend(item.deliveries)
                    self.stats.joined += 1
                    return Offer.JOINED
                if key in self._stored:
                    self.stats.stored_resends += 1
                    return Offer.STORED
            # One message always fits when nothing is held (queue_bytes >= the largest
            # payload anyway), so a big batch can never wait for ever.
            if not self._cond.wait_for(lambda: self._has_room(item.size), wait):
                self.stats.shed += 1
                return Offer.FULL
            # While waiting, the first copy may have been queued or stored by another offer:
            # then _place joins it (and gives its room back).
            self._count_in(item.size)
            outcome = self._place(item)
            self._cond.notify_all()
            return outcome

    def _has_room(self, size: int) -> bool:
        if self._held == 0:
            return True
        return self._held < self.max_messages and self.stats.bytes_held + size <= self.max_bytes

    def take(self, max_points: int, flush_interval: float, first_wait: float) -> list[Inbound]:
        """Messages for one write: up to ``max_points`` points or ``flush_interval`` s."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._waiting), first_wait):
                return []
            batch = [self._waiting.popleft()]
            points = _points(batch[0])
            deadline = time.monotonic() + flush_interval
            while points < max_points:
                if not self._waiting:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._window_full() or not self._cond.wait_for(
                            lambda: bool(self._waiting) or self._window_full(), remaining):
                        break
                    if not self._waiting:
                        break
                item = self._waiting.popleft()
                batch.append(item)
                points += _points(item)
            return batch

    def _window_full(self) -> bool:
        """Every message the broker may send before an ack is here and validated."""
        return (self.window is not None and self._held >= self.window and not self._raw
                and not self._validating)

    def done(self, batch: list[Inbound]) -> list[Delivery]:
        """The batch is stored: free its room and return every message to acknowledge."""
        deliveries: list[Delivery] = []
        with self._cond:
            for item in batch:
                deliveries.extend(item.deliveries)
                self._held -= 1
                self.stats.bytes_held -= item.size
                if item.key is not None:
                    self._pending.pop(item.key, None)
                    self._stored[item.key] = None
            while len(self._stored) > REMEMBER_STORED:
                self._stored.popitem(last=False)
            self._cond.notify_all()
        return deliveries


def _points(item: Inbound) -> int:
    return len(item.result.lines) if isinstance(item.result, Accepted) else 1
