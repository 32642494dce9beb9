"""The on-disk spool: seqs, delivery state, acks, bounds and failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.spool import Batch, Spool, SpoolWriteError

T0 = 1_763_890_000_000
DAY_S = 86400.0


class Clock:
    """A settable wall clock in ms."""

    def __init__(self, now_ms: int = T0) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock() -> Clock:
    """A clock starting at T0."""
    return Clock()


@pytest.fixture
def spool(tmp_path: Path, clock: Clock) -> Iterator[Spool]:
    """An open spool with generous bounds."""
    s = Spool(tmp_path / "spool.db", max_bytes=10**9, max_age_s=14 * DAY_S, clock_ms=clock).open()
    yield s
    s.close()


def payload(n: int, size: int = 100) -> bytes:
    """A recognisable payload of ``size`` bytes."""
    return f"[{n}]".encode().ljust(size, b" ")


def test_seq_increases_and_is_never_reused(tmp_path: Path, clock: Clock) -> None:
    """Seqs grow across acks (deletes) and across reopening the file."""
    path = tmp_path / "sub" / "spool.db"
    s = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    seqs = [s.append(payload(i), 1) for i in range(3)]
    assert seqs == [1, 2, 3]
    assert s.ack([(1, 3)]) == 3
    assert s.stats().depth == 0
    assert s.append(payload(3), 1) == 4  # not 1 again after the table emptied
    s.close()
    s2 = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    assert s2.stats().depth == 1
    assert s2.ack([(4, 4)]) == 1
    s2.close()
    s3 = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    assert s3.append(payload(5), 1) == 5
    s3.close()
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_due_returns_oldest_unsent_first(spool: Spool) -> None:
    """due gives batches in seq order, up to the limit, with their payload."""
    for i in range(5):
        spool.append(payload(i), i + 1)
    due = spool.due(limit=3, resend_before_ms=0)
    assert due == [Batch(1, 1, payload(0)), Batch(2, 2, payload(1)), Batch(3, 3, payload(2))]
    assert spool.due(limit=0, resend_before_ms=0) == []


def test_mark_sent_in_flight_and_resend_after_timeout(spool: Spool, clock: Clock) -> None:
    """Sent batches are not due until their ack timeout has passed."""
    for i in range(4):
        spool.append(payload(i), 1)
    sent_at = clock.now_ms
    spool.mark_sent([1, 2], sent_at)
    assert spool.in_flight(since_ms=sent_at) == 2
    assert spool.in_flight(since_ms=sent_at + 1) == 0
    # 60 s ack timeout: the sent ones are not due yet
    assert [b.seq for b in spool.due(10, resend_before_ms=sent_at + 59_999 - 60_000)] == [3, 4]
    assert [b.seq for b in spool.due(10, resend_before_ms=sent_at)] == [3, 4]
    # strictly after the timeout they are due again, oldest first
    assert [b.seq for b in spool.due(10, resend_before_ms=sent_at + 1)] == [1, 2, 3, 4]
    spool.mark_sent([3], sent_at + 5_000)
    assert spool.in_flight(since_ms=sent_at) == 3
    assert [b.seq for b in spool.due(10, resend_before_ms=sent_at + 1)] == [1, 2, 4]


def test_mark_unsent_makes_everything_due(spool: Spool, clock: Clock) -> None:
    """After a reconnect every un-acked batch is due again at once."""
    for i in range(3):
        spool.append(payload(i), 1)
    spool.mark_sent([1, 2, 3], clock.now_ms)
    assert spool.due(10, resend_before_ms=0) == []
    spool.mark_unsent()
    assert [b.seq for b in spool.due(10, resend_before_ms=0)] == [1, 2, 3]
    assert spool.in_flight(since_ms=0) == 0


def test_reopen_resets_sent_state(tmp_path: Path, clock: Clock) -> None:
    """A batch marked sent by a previous run was never acked: due again after reopening."""
    path = tmp_path / "spool.db"
    s = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    s.append(payload(1), 1)
    s.mark_sent([1], clock.now_ms)
    assert s.due(10, resend_before_ms=0) == []
    s.close()
    s = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    assert [b.seq for b in s.due(10, resend_before_ms=0)] == [1]
    s.close()


def test_ack_ranges(spool: Spool) -> None:
    """Ack deletes exactly the seqs in the ranges and keeps bytes in step."""
    for i in range(10):
        spool.append(payload(i, size=50), 1)
    assert spool.stats().bytes == 500
    assert spool.ack([(2, 4), (7, 7), (100, 200)]) == 4
    assert [b.seq for b in spool.due(100, 0)] == [1, 5, 6, 8, 9, 10]
    assert spool.stats().depth == 6
    assert spool.stats().bytes == 300
    assert spool.ack([(2, 4)]) == 0  # acking again is harmless
    assert spool.stats().bytes == 300


def test_max_bytes_evicts_oldest_and_counts_samples(tmp_path: Path, clock: Clock) -> None:
    """Over max_bytes the oldest batches go; dropped_total is their exact sample count."""
    path = tmp_path / "spool.db"
    s = Spool(path, max_bytes=1000, max_age_s=DAY_S, clock_ms=clock).open()
    for i in range(10):  # 10 x 100 bytes: exactly at the bound, nothing dropped
        s.append(payload(i), samples=i + 1)
    assert s.stats().depth == 10 and s.stats().dropped_total == 0
    s.append(payload(10), samples=50)  # 1100 bytes: the oldest (1 sample) goes
    assert [b.seq for b in s.due(100, 0)] == list(range(2, 12))
    assert s.stats().dropped_total == 1
    s.append(payload(11, size=250), samples=7)  # 1250 -> drop seqs 2, 3, 4 (2+3+4 samples)
    assert [b.seq for b in s.due(100, 0)][:2] == [5, 6]
    stats = s.stats()
    assert stats.dropped_total == 1 + 2 + 3 + 4
    assert stats.bytes == 950
    assert stats.depth == 8
    s.close()
    reopened = Spool(path, max_bytes=1000, max_age_s=DAY_S, clock_ms=clock).open()
    assert reopened.stats().dropped_total == 10  # exact across restarts
    assert reopened.stats().bytes == 950
    reopened.append(payload(12, size=60), samples=3)  # 1010 -> drop seq 5 (5 samples)
    assert reopened.stats().dropped_total == 15
    reopened.close()


def test_batch_larger_than_bound_is_dropped_itself(tmp_path: Path, clock: Clock) -> None:
    """A single batch over max_bytes cannot be kept; it is counted as dropped."""
    s = Spool(tmp_path / "spool.db", max_bytes=100, max_age_s=DAY_S, clock_ms=clock).open()
    s.append(payload(1, size=80), samples=2)
    s.append(payload(2, size=500), samples=9)
    stats = s.stats()
    assert (stats.depth, stats.bytes, stats.dropped_total) == (0, 0, 11)
    s.close()


def test_max_age_evicts_old_batches(tmp_path: Path, clock: Clock) -> None:
    """Batches older than max_age are dropped on the next append."""
    s = Spool(tmp_path / "spool.db", max_bytes=10**9, max_age_s=3600, clock_ms=clock).open()
    s.append(payload(1), samples=4)
    clock.now_ms += 1_800_000
    s.append(payload(2), samples=5)
    clock.now_ms += 1_800_000  # first is exactly max_age old: kept
    s.append(payload(3), samples=6)
    assert s.stats().depth == 3 and s.stats().dropped_total == 0
    clock.now_ms += 1  # first is now older than max_age
    s.append(payload(4), samples=1)
    assert [b.seq for b in s.due(10, 0)] == [2, 3, 4]
    assert s.stats().dropped_total == 4
    clock.now_ms += 3_600_000  # 2 and 3 expire too
    s.append(payload(5), samples=1)
    assert [b.seq for b in s.due(10, 0)] == [4, 5]
    assert s.stats().dropped_total == 4 + 5 + 6
    assert s.stats().bytes == 200
    s.close()


def test_pragmas_wal_and_full_sync(spool: Spool) -> None:
    """Durability settings: WAL journal and synchronous=FULL (2)."""
    assert spool.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert spool.db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_read_only_database_raises_spool_write_error(spool: Spool) -> None:
    """A database that refuses writes (works as root too) is a SpoolWriteError, state kept."""
    spool.append(payload(1), 1)
    spool.db.execute("PRAGMA query_only = ON")
    with pytest.raises(SpoolWriteError, match="readonly"):
        spool.append(payload(2), 1)
    spool.db.execute("PRAGMA query_only = OFF")
    assert spool.stats().depth == 1
    assert spool.stats().bytes == 100
    assert spool.append(payload(3), 1) >= 2  # usable again


def test_closed_connection_raises_spool_write_error(spool: Spool) -> None:
    """A connection closed underneath the spool gives SpoolWriteError, not sqlite3's error."""
    spool.append(payload(1), 1)
    spool.db.close()
    with pytest.raises(SpoolWriteError):
        spool.append(payload(2), 1)


def test_closed_spool_raises_spool_write_error(tmp_path: Path, clock: Clock) -> None:
    """append after close (a probe finishing during shutdown) is a SpoolWriteError."""
    s = Spool(tmp_path / "spool.db", 10**9, DAY_S, clock_ms=clock).open()
    s.close()
    with pytest.raises(SpoolWriteError, match="not open"):
        s.append(payload(1), 1)


def test_open_on_a_directory_raises_spool_write_error(tmp_path: Path, clock: Clock) -> None:
    """A path that cannot be a database fails to open with SpoolWriteError."""
    path = tmp_path / "spool.db"
    path.mkdir()
    with pytest.raises(SpoolWriteError, match="cannot open spool"):
        Spool(path, 10**9, DAY_S, clock_ms=clock).open()


def test_corrupt_file_raises_spool_write_error(tmp_path: Path, clock: Clock) -> None:
    """A file that is not a SQLite database fails to open with SpoolWriteError."""
    path = tmp_path / "spool.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SpoolWriteError):
        Spool(path, 10**9, DAY_S, clock_ms=clock).open()


def test_rows_survive_in_the_file(tmp_path: Path, clock: Clock) -> None:
    """What append returned for is in the file, readable by another connection."""
    path = tmp_path / "spool.db"
    s = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    s.append(b"[1]", 1)
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT seq, samples, payload FROM batch").fetchall() == [
            (1, 1, b"[1]")
        ]
    finally:
        other.close()
        s.close()


def test_reject_drops_and_counts_exactly(tmp_path: Path, clock: Clock) -> None:
    """Rejected batches leave the spool; their samples count as dropped and as rejected."""
    path = tmp_path / "spool.db"
    s = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    for i in range(4):
        s.append(payload(i), samples=i + 1)
    s.mark_sent([1, 2, 3, 4], clock.now_ms)
    assert s.reject([2, 4, 99]) == 2 + 4  # 99 is unknown: harmless
    assert [b.seq for b in s.due(10, resend_before_ms=clock.now_ms + 1)] == [1, 3]
    stats = s.stats()
    assert (stats.depth, stats.bytes, stats.dropped_total, stats.rejected_total) == (2, 200, 6, 6)
    assert s.in_flight(since_ms=0) == 2
    s.close()
    s = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    assert (s.stats().dropped_total, s.stats().rejected_total) == (6, 6)  # persistent
    s.close()


def test_backoff_extra_wait_per_attempt(spool: Spool, clock: Clock) -> None:
    """A batch sent n times waits timeout + extra_wait(n): later resends wait longer."""
    spool.append(payload(1), 1)
    timeout = 1000

    def extra(attempts: int) -> int:  # as the publisher: timeout x 2^(n-1) in all
        return int(timeout * 2 ** (attempts - 1) - timeout)

    def due_at(now: int) -> list[int]:
        return [b.seq for b in spool.due(10, now - timeout, extra)]

    t = clock.now_ms
    spool.mark_sent([1], t)
    assert spool.attempts(1) == 1
    assert due_at(t + 1000) == []
    assert due_at(t + 1001) == [1]  # first resend: after 1 s
    spool.mark_sent([1], t + 1001)
    assert spool.attempts(1) == 2
    assert due_at(t + 1001 + 2000) == []  # the second waits 2 s
    assert spool.in_flight(t + 1001 + 2000 - timeout, extra) == 1
    assert due_at(t + 1001 + 2001) == [1]
    spool.mark_sent([1], t + 3002)
    assert due_at(t + 3002 + 4000) == [] and due_at(t + 3002 + 4001) == [1]  # then 4 s
    spool.mark_unsent()  # a reconnect starts over
    assert spool.attempts(1) == 0


def test_wal_and_file_stay_bounded(tmp_path: Path, clock: Clock) -> None:
    """The WAL is checkpointed and truncated; the file bound evicts the oldest, counted."""
    path = tmp_path / "spool.db"
    s = Spool(path, max_bytes=2**20, max_age_s=DAY_S, clock_ms=clock).open()
    s.db.execute("PRAGMA synchronous=OFF")  # speed only: what is checked is sizes
    for i in range(3000):  # ~1.8 MB of payload through a 1 MiB spool
        s.append(payload(i, size=600), samples=2)
    wal = path.with_name("spool.db-wal").stat().st_size
    assert wal <= 256 * 1024 + 3 * 4096  # journal_size_limit, plus the last transaction
    stats = s.stats()
    assert stats.depth * 2 + stats.dropped_total == 3000 * 2  # every sample: kept or counted
    assert stats.dropped_total > 0
    on_disk = path.stat().st_size + wal + path.with_name("spool.db-reserve").stat().st_size
    assert on_disk <= 2**20 + 64 * 1024
    s.close()


def test_drop_while_closed_is_counted_until_reported(tmp_path: Path, clock: Clock) -> None:
    """A batch that cannot be written at all is still counted (in memory, then on disk)."""
    path = tmp_path / "spool.db"
    s = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    s.append(payload(1), 3)
    s.db.execute("PRAGMA query_only = ON")
    with pytest.raises(SpoolWriteError, match="5 samples dropped"):
        s.append(payload(2), 5)
    assert s.stats().dropped_total == 5  # counted at once, held in memory
    s.db.execute("PRAGMA query_only = OFF")
    s.append(payload(3), 1)  # the next write that succeeds stores the count
    s.close()
    s = Spool(path, 10**9, DAY_S, clock_ms=clock).open()
    assert (s.stats().dropped_total, s.stats().depth) == (5, 2)
    s.close()
