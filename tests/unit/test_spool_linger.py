"""publish.linger in the spool: fresh batches merged within the linger and the wire's limits,
in one transaction, with exact counts; published or pre-restart batches never merged."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from agent.linger import MAX_MERGED_BYTES, coalesce, plan
from agent.spool import FreshBatch, Spool, join_arrays
from common.wire import MAX_PAYLOAD_BYTES, Sample, decode_envelope, encode_samples, wrap_envelope
from common.wire import AgentIdentity as Who

T0 = 1_763_890_000_000
LINGER = 30_000
WHO = Who("d1", "s1", "gw")


class Clock:
    """A settable clock in ms (the wall clock and the monotonic one)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def mono() -> Clock:
    """The spool's monotonic clock, starting at 0."""
    return Clock(0)


@pytest.fixture
def spool(tmp_path: Path, mono: Clock) -> Iterator[Spool]:
    """An open spool with generous bounds and injected clocks."""
    s = Spool(tmp_path / "spool.db", 10**9, 14 * 86400.0, clock_ms=Clock(T0),
              mono_ms=mono).open()
    yield s
    s.close()


def samples(first: int, n: int) -> bytes:
    """An encoded array of ``n`` host samples numbered from ``first`` (by their timestamp)."""
    return encode_samples([Sample("host", T0 + i, {}, {"cpu_pct": 1.0})
                           for i in range(first, first + n)])


def stored(spool: Spool) -> list[tuple[int, int, list[int]]]:
    """Every batch: seq, its sample count, and its samples' numbers."""
    return [(b.seq, b.samples, [s["ts_ms"] - T0 for s in orjson.loads(b.payload)])
            for b in spool.due(10**6, 0)]


def append_at(spool: Spool, mono: Clock, at_ms: int, first: int, n: int) -> int:
    """Store a batch of ``n`` samples at monotonic time ``at_ms``."""
    mono.now_ms = at_ms
    return spool.append(samples(first, n), n)


def test_batches_wait_for_the_linger_then_go_as_one(spool: Spool, mono: Clock) -> None:
    """Three runs within 30 s: nothing is ready before the linger; then one batch, all in."""
    for at, first in ((0, 0), (10_000, 2), (20_000, 4)):
        append_at(spool, mono, at, first, 2)
    mono.now_ms = LINGER - 1
    ready = coalesce(spool, LINGER)
    assert ready == set()
    assert spool.due(10, 0, ready=ready) == []  # all lingering
    mono.now_ms = LINGER
    ready = coalesce(spool, LINGER)
    assert ready == {1, 2, 3}
    assert [b.seq for b in spool.due(10, 0, ready=ready)] == [1]
    assert stored(spool) == [(1, 6, [0, 1, 2, 3, 4, 5])]
    st = spool.stats()
    assert (st.depth, st.dropped_total) == (1, 0)
    assert st.bytes == len(spool.due(1, 0)[0].payload)  # the byte bound counts what is there


def test_a_group_spans_one_linger_and_later_batches_keep_waiting(
        spool: Spool, mono: Clock) -> None:
    """A batch stored more than the linger after the first starts its own window."""
    append_at(spool, mono, 0, 0, 1)
    append_at(spool, mono, 10_000, 1, 1)
    append_at(spool, mono, 45_000, 2, 1)
    mono.now_ms = 50_000
    assert coalesce(spool, LINGER) == {1, 2}
    assert [b.seq for b in spool.due(10, 0, ready={1, 2})] == [1]
    assert [b.seq for b in spool.fresh()] == [1, 3]
    mono.now_ms = 75_000
    assert coalesce(spool, LINGER) == {1, 3}  # 1 again: not published yet, 3 is due now
    assert stored(spool) == [(1, 2, [0, 1]), (3, 1, [2])]


def fresh(sizes: list[tuple[int, int]]) -> list[FreshBatch]:
    """Fresh batches stored at the same time with (samples, bytes) each."""
    return [FreshBatch(i + 1, 0, n, size) for i, (n, size) in enumerate(sizes)]


def test_groups_stay_within_the_wire_limits() -> None:
    """At most MAX_SAMPLES_PER_BATCH samples and room for the envelope per merged batch."""
    by_samples = plan(fresh([(400, 100)] * 5), LINGER, LINGER)
    assert by_samples.groups == [[1, 2], [3, 4], [5]]
    big = MAX_MERGED_BYTES // 3 + 1
    by_bytes = plan(fresh([(1, big)] * 5), LINGER, LINGER)
    assert by_bytes.groups == [[1, 2], [3, 4], [5]]
    assert plan(fresh([(1, 10)] * 5), LINGER, LINGER, max_groups=0).groups == []


def test_a_merged_batch_fits_an_envelope_at_the_limits(spool: Spool, mono: Clock) -> None:
    """Merging real payloads near the byte limit gives envelopes the collector accepts."""
    text = "x" * 200
    n = 0
    for _ in range(6):  # ~6 x 60 KB: at most 4 fit one envelope
        batch = [Sample("host", T0 + n + i, {}, {"os": text}) for i in range(250)]
        spool.append(encode_samples(batch), 250)
        n += 250
    mono.now_ms = LINGER
    ready = coalesce(spool, LINGER)
    out = spool.due(10, 0, ready=ready)
    assert 1 < len(out) < 6
    got = 0
    for b in out:
        env = wrap_envelope(WHO, b.seq, T0, b.payload)
        assert len(env) <= MAX_PAYLOAD_BYTES
        got += len(decode_envelope(env).samples)
        assert b.samples <= 1000
    assert got == n


def test_a_published_batch_is_never_merged_again(spool: Spool, mono: Clock) -> None:
    """Sent once (even if the connection broke since), a batch keeps its seq and payload."""
    append_at(spool, mono, 0, 0, 1)
    mono.now_ms = LINGER
    ready = coalesce(spool, LINGER)
    [first] = spool.due(10, 0, ready=ready)
    spool.mark_sent([first.seq], T0)
    spool.mark_unsent()  # a reconnect: due again, but still published once
    append_at(spool, mono, LINGER, 1, 1)
    append_at(spool, mono, LINGER + 1, 2, 1)
    mono.now_ms = 2 * LINGER
    ready = coalesce(spool, LINGER)
    assert ready == {2, 3}
    assert stored(spool) == [(1, 1, [0]), (2, 2, [1, 2])]
    assert spool.due(1, 0, ready=ready)[0].payload == first.payload


def test_batches_from_before_a_restart_go_at_once_unmerged(
        tmp_path: Path, spool: Spool, mono: Clock) -> None:
    """The previous process may have published them: a backlog is neither held nor merged."""
    for i in range(3):
        append_at(spool, mono, 0, i, 1)
    spool.close()
    again = Spool(spool.path, 10**9, 14 * 86400.0, clock_ms=Clock(T0), mono_ms=mono).open()
    try:
        assert again.fresh() == []
        ready = coalesce(again, LINGER)
        assert ready == set()
        assert [b.seq for b in again.due(10, 0, ready=ready)] == [1, 2, 3]
    finally:
        again.close()


def test_acks_and_rejects_of_a_merged_batch_count_every_sample(
        spool: Spool, mono: Clock) -> None:
    """Rejecting a merged batch drops exactly its samples; acking it deletes all of them."""
    for i, n in enumerate((2, 3, 4)):
        append_at(spool, mono, i, 10 * i, n)
    for i, n in enumerate((1, 1)):
        append_at(spool, mono, LINGER + 10, 100 + i, n)
    mono.now_ms = 3 * LINGER
    assert coalesce(spool, LINGER) == {1, 2, 3, 4, 5}
    assert [(s, n) for s, n, _ in stored(spool)] == [(1, 9), (4, 2)]
    assert spool.reject([1]) == 9
    assert spool.ack([(2, 3)]) == 0  # seqs merged away: nothing else goes with them
    assert spool.ack([(4, 5)]) == 1
    st = spool.stats()
    assert (st.depth, st.bytes, st.dropped_total, st.rejected_total) == (0, 0, 9, 9)


def test_a_failed_merge_changes_nothing_and_the_batches_go_unmerged(
        spool: Spool, mono: Clock) -> None:
    """A write that fails (here: a read-only connection; in life a full disk) is no stall."""
    for i in range(3):
        append_at(spool, mono, 0, i, 1)
    spool.db.execute("PRAGMA query_only = 1")
    mono.now_ms = LINGER
    ready = coalesce(spool, LINGER)
    assert ready == {1, 2, 3}
    assert [b.seq for b in spool.due(10, 0, ready=ready)] == [1, 2, 3]
    spool.db.execute("PRAGMA query_only = 0")
    assert spool.stats().bytes == sum(len(b.payload) for b in spool.due(10, 0))


CRASH = textwrap.dedent("""
    import os, sys
    from agent.linger import coalesce
    from agent.spool import Spool
    now = [0]
    s = Spool(sys.argv[1], 10**9, 86400.0, mono_ms=lambda: now[0]).open()
    for i in range(3):
        s.append(b'[{"kind":"host","ts_ms":%d,"tags":{},"fields":{}}]' % (1763890000000 + i), 1)
    now[0] = 60_000
    # Die like SIGKILL once the merged row is written and before its parts are deleted.
    s.db.set_trace_callback(lambda sql: os._exit(9) if sql.startswith("DELETE") else None)
    coalesce(s, 30_000)
""")


def test_a_crash_inside_the_merge_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """The merge is one transaction: reopened after a kill mid-merge, the three batches are
    there as they were (no merged copy beside them)."""
    path = tmp_path / "spool.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.run([sys.executable, "-c", CRASH, str(path)], env=env, timeout=60,
                          capture_output=True, check=False)
    assert proc.returncode == 9, proc.stderr.decode()
    s = Spool(path, 10**9, 86400.0).open()
    try:
        batches = s.due(10, 0)
        assert [(b.seq, b.samples) for b in batches] == [(1, 1), (2, 1), (3, 1)]
        assert [orjson.loads(b.payload)[0]["ts_ms"] for b in batches] == [
            T0, T0 + 1, T0 + 2]
        assert s.stats().bytes == sum(len(b.payload) for b in batches)
    finally:
        s.close()


def test_join_arrays_keeps_every_element() -> None:
    """The spool's payloads are JSON arrays: merged, they are one array of all elements."""
    assert join_arrays([b"[1,2]", b"[]", b"[3]"]) == b"[1,2,3]"
    assert join_arrays([b"[]"]) == b"[]"
