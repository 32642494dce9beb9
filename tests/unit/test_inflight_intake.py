"""The raw hand-over of collector/inflight.py: room counted on arrival, batches queued at once."""

from __future__ import annotations

import threading
import time

from collector.inflight import Delivery, Inbound, InflightQueue, Offer, Raw, batch_key
from collector.validate import Accepted
from common.wire import AgentIdentity

WHO = AgentIdentity("d1", "s1", "a1")


def raw(mid: int, size: int = 100) -> Raw:
    """A raw message of ``size`` payload bytes."""
    return Raw("t/d1/s1/a1/data", b"x" * size, 0, Delivery(mid, 1, 1))


def inbound(r: Raw, seq: int) -> Inbound:
    """What the validator makes of it: batch ``seq`` with one point."""
    result = Accepted(WHO, seq, [f"host v={seq} {seq}"], [])
    return Inbound(result, len(r.payload), [r.delivery], batch_key(result), r.probation)


def test_room_is_counted_from_arrival_to_the_write() -> None:
    """Bytes held from receive until done; a resend in the same intake gives its room back."""
    q = InflightQueue(max_messages=100, max_bytes=300, probation_limit=0)
    first, again, other = raw(1), raw(2), raw(3)
    assert all(q.receive(r, wait=0) for r in (first, again, other))
    assert q.stats.bytes_held == 300
    assert not q.receive(raw(4), wait=0)  # full before any validation
    taken = q.intake(wait=0)
    assert taken == [first, again, other] and q.intake(wait=0) == []
    outcomes = q.offer_many([inbound(first, 5), inbound(again, 5), inbound(other, 6)])
    assert outcomes == [Offer.QUEUED, Offer.JOINED, Offer.QUEUED]
    assert q.stats.bytes_held == 200  # the joined resend's room is free at once
    batch = q.take(max_points=10, flush_interval=0, first_wait=0)
    assert [d.mid for d in q.done(batch)] == [1, 2, 3]
    assert q.stats.bytes_held == 0 and q.stats.shed == 1


def test_a_waiting_receive_gets_room_when_a_write_finishes() -> None:
    """Back-pressure on paho's thread: it waits for the writer, then takes the message."""
    q = InflightQueue(max_messages=1, max_bytes=10_000, probation_limit=0)
    held = raw(1)
    assert q.receive(held, wait=0)
    q.offer_many([inbound(held, 1)])
    batch = q.take(10, 0, 0)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(q.receive(raw(2), wait=30)))
    waiter.start()
    q.done(batch)
    waiter.join(30)
    assert result == [True]


def test_the_sleeping_validator_is_woken_by_a_message() -> None:
    """intake waits for the first message rather than its whole timeout."""
    q = InflightQueue(max_messages=10, max_bytes=10_000)
    got: list[list[Raw]] = []
    validator = threading.Thread(target=lambda: got.append(q.intake(wait=30)))
    validator.start()
    deadline = time.monotonic() + 30
    while not q._validator_idle and time.monotonic() < deadline:  # asleep in intake
        threading.Event().wait(0.001)
    assert q._validator_idle
    q.receive(raw(7), wait=0)
    validator.join(30)
    assert not validator.is_alive() and [r.delivery.mid for r in got[0]] == [7]


def only(raws: list[Raw]) -> Raw:
    """The one raw message of an intake."""
    (one,) = raws
    return one


def full_queue() -> tuple[InflightQueue, Raw]:
    """A queue whose one message of room holds batch 5 (validated, not yet written)."""
    q = InflightQueue(max_messages=1, max_bytes=10_000, probation_limit=250)
    first = raw(1)
    assert q.receive(first, wait=0)
    assert q.offer_many([inbound(only(q.intake(wait=0)), 5)]) == [Offer.QUEUED]
    return q, first


def test_a_resend_is_recognised_however_full_the_queue_is() -> None:
    """No room, yet the resend is taken on probation and joins its first copy: one write,
    both deliveries acked, and the bytes held never pass max_bytes + probation_limit."""
    q, _first = full_queue()
    again = raw(2)
    assert q.receive(again, wait=0)
    assert q.stats.probation_bytes == 100 and q.stats.bytes_held == 100
    (taken,) = q.intake(wait=0)
    assert taken.probation
    assert q.offer_many([inbound(taken, 5)]) == [Offer.JOINED]
    assert q.stats.probation_bytes == 0 and q.stats.bytes_held == 100
    batch = q.take(max_points=10, flush_interval=0, first_wait=0)
    assert [d.mid for d in q.done(batch)] == [1, 2]
    assert q.stats.bytes_held == 0 and q.stats.joined == 1 and q.stats.shed == 0
    # Stored: a later resend on probation is recognised from the memory of stored batches.
    assert q.receive(raw(3), wait=0)
    assert q.offer_many([inbound(only(q.intake(wait=0)), 7)]) == [Offer.QUEUED]  # full again
    assert q.receive(raw(4), wait=0)
    late = only(q.intake(wait=0))
    assert late.probation and q.offer_many([inbound(late, 5)]) == [Offer.STORED]
    assert q.stats.stored_resends == 1 and q.stats.probation_bytes == 0


def test_a_new_message_on_probation_is_shed_unless_room_came() -> None:
    """A new batch taken on probation is FULL while there is no room, QUEUED once there is."""
    q, _first = full_queue()
    new = raw(2)
    assert q.receive(new, wait=0)
    assert q.offer_many([inbound(only(q.intake(wait=0)), 6)]) == [Offer.FULL]
    assert q.stats.shed == 1 and q.stats.probation_bytes == 0 and q.stats.bytes_held == 100
    assert q.receive(raw(3), wait=0)
    q.done(q.take(max_points=10, flush_interval=0, first_wait=0))  # batch 5 stored
    assert q.offer_many([inbound(only(q.intake(wait=0)), 6)]) == [Offer.QUEUED]
    assert q.stats.bytes_held == 100 and q.stats.probation_bytes == 0


def test_probation_is_bounded_in_bytes() -> None:
    """Past probation_limit the rest of a hand-over is not taken (the caller lets it go)."""
    q, _first = full_queue()
    assert q.receive_many([raw(2), raw(3), raw(4), raw(5)], wait=0) == 2  # 2 x 100 <= 250
    assert q.stats.probation_bytes == 200 and q.stats.shed == 2
