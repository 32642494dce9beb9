"""The collector's write queue: byte bound, and resends recognised before and after the write."""

from __future__ import annotations

import threading

from collector.inflight import Delivery, Inbound, InflightQueue, Offer, batch_key
from collector.validate import Accepted, Rejected
from common.wire import AgentIdentity

WHO = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")


def accepted(seq: int, lines: int = 1, tag: str = "a", mid: int = 1, size: int = 100) -> Inbound:
    """A message carrying batch ``seq`` with ``lines`` points."""
    result = Accepted(WHO, seq, [f"host,x={tag} v={i} {i}" for i in range(lines)], [])
    return Inbound(result, size, [Delivery(mid, 1, 1)], batch_key(result))


def test_resend_while_queued_joins_and_is_acked_with_the_first() -> None:
    """Same agent, seq and points: written once, both MQTT messages acked after the write."""
    q = InflightQueue(max_messages=10, max_bytes=1000)
    assert q.offer(accepted(5, mid=1), wait=0) is Offer.QUEUED
    assert q.offer(accepted(5, mid=2), wait=0) is Offer.JOINED
    batch = q.take(max_points=100, flush_interval=0, first_wait=0)
    assert len(batch) == 1
    assert q.offer(accepted(5, mid=3), wait=0) is Offer.JOINED  # while being written
    assert [d.mid for d in q.done(batch)] == [1, 2, 3]
    assert q.stats.bytes_held == 0 and q.stats.joined == 2


def test_resend_after_the_write_is_recognised_as_stored() -> None:
    """A late resend of a stored batch is acked again, not written again."""
    q = InflightQueue(max_messages=10, max_bytes=1000)
    q.offer(accepted(5), wait=0)
    q.done(q.take(100, 0, 0))
    assert q.offer(accepted(5, mid=9), wait=0) is Offer.STORED
    assert q.take(100, 0, 0) == []
    assert q.stats.stored_resends == 1


def test_a_reused_seq_with_other_points_is_a_new_batch() -> None:
    """An agent whose spool was recreated reuses seqs: other content is never taken as stored."""
    q = InflightQueue(max_messages=10, max_bytes=1000)
    q.offer(accepted(5, tag="a"), wait=0)
    q.done(q.take(100, 0, 0))
    assert q.offer(accepted(5, tag="b"), wait=0) is Offer.QUEUED


def test_rejects_with_a_seq_are_recognised_too_and_without_one_never() -> None:
    """A resent poison batch is one reject; messages of unknown seq are each their own."""
    q = InflightQueue(max_messages=10, max_bytes=1000)
    poison = Rejected("too_large", "big", WHO, 8)
    assert q.offer(Inbound(poison, 10, [Delivery(1, 1, 1)], batch_key(poison)), 0) is Offer.QUEUED
    assert q.offer(Inbound(poison, 10, [Delivery(2, 1, 1)], batch_key(poison)), 0) is Offer.JOINED
    garbage = Rejected("json", "x", WHO, None)
    for mid in (3, 4):
        assert q.offer(Inbound(garbage, 10, [Delivery(mid, 1, 1)], batch_key(garbage)),
                       0) is Offer.QUEUED


def test_bytes_bound_holds_while_writing_and_one_message_always_fits() -> None:
    """Bytes count until the write is done; a full queue waits, then refuses."""
    q = InflightQueue(max_messages=100, max_bytes=250)
    assert q.offer(accepted(1, size=400), wait=0) is Offer.QUEUED  # alone: fits anyway
    assert q.offer(accepted(2, size=100), wait=0) is Offer.FULL
    first = q.take(100, 0, 0)
    assert q.offer(accepted(2, size=100), wait=0) is Offer.FULL  # still being written
    q.done(first)
    assert q.offer(accepted(2, size=100), wait=0) is Offer.QUEUED
    assert q.offer(accepted(3, size=150), wait=0) is Offer.QUEUED
    assert q.offer(accepted(4, size=1), wait=0) is Offer.FULL
    assert q.stats.bytes_held == 250 and q.stats.shed == 3


def test_waiting_offer_gets_room_when_a_write_finishes() -> None:
    """Back-pressure: an offer waits for the writer instead of being refused at once."""
    q = InflightQueue(max_messages=100, max_bytes=200)
    q.offer(accepted(1, size=200), wait=0)
    batch = q.take(100, 0, 0)
    outcome: list[Offer] = []
    waiter = threading.Thread(target=lambda: outcome.append(q.offer(accepted(2, size=200), 10)))
    waiter.start()
    q.done(batch)
    waiter.join(10)
    assert outcome == [Offer.QUEUED]
    assert q.stats.peak_bytes == 200


def test_take_stops_at_batch_points() -> None:
    """A write takes messages until batch_points is reached (whole messages)."""
    q = InflightQueue(max_messages=100, max_bytes=10_000)
    for seq in range(5):
        q.offer(accepted(seq, lines=3), wait=0)
    assert len(q.take(max_points=7, flush_interval=1.0, first_wait=0)) == 3
    assert len(q.take(max_points=7, flush_interval=0, first_wait=0)) == 2
