"""ResilientWriter: backoff, Retry-After, bad-point isolation, stop."""

from __future__ import annotations

import logging
import threading

import pytest

from collector.storage import StorageError, parse_retry_after
from collector.storage.resilient import ResilientWriter


class FakeWriter:
    """A PointWriter that fails as scripted, then stores; refuses lines containing 'bad'."""

    def __init__(self, failures: list[StorageError] | None = None) -> None:
        self.failures = list(failures or [])
        self.calls: list[list[str]] = []
        self.stored: list[str] = []

    def write(self, lines: list[str]) -> None:
        """Store, or raise the next scripted failure, or 400 when a bad line is in the batch."""
        self.calls.append(list(lines))
        if self.failures:
            raise self.failures.pop(0)
        if any("bad" in line for line in lines):
            raise StorageError("partial write: unable to parse", status=400)
        self.stored.extend(lines)

    def close(self) -> None:
        """Nothing to release."""


class Waits:
    """The injected wait: records delays, says 'stop' after ``stop_after`` waits."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.delays: list[float] = []
        self.stop_after = stop_after

    def __call__(self, delay: float) -> bool:
        self.delays.append(delay)
        return self.stop_after is not None and len(self.delays) >= self.stop_after


def writer(fake: FakeWriter, waits: Waits, **kw: object) -> ResilientWriter:
    """A ResilientWriter with injected wait."""
    return ResilientWriter(fake, threading.Event(), wait=waits, **kw)  # type: ignore[arg-type]


LINES = [f"host cpu_pct={i}.0 {1_763_890_000_000 + i}" for i in range(8)]


def test_success_first_time() -> None:
    """No failure: one call, no wait."""
    fake, waits = FakeWriter(), Waits()
    rw = writer(fake, waits)
    assert rw.write(LINES) is True
    assert fake.stored == LINES and len(fake.calls) == 1
    assert waits.delays == []
    assert (rw.stats.written, rw.stats.retries, rw.stats.quarantined) == (8, 0, 0)


def test_retry_on_503_with_capped_exponential_backoff(caplog: pytest.LogCaptureFixture) -> None:
    """5xx is retried: 0.5, 1, 2, 4, 4, 4 (jittered down by at most 20 %), then stored."""
    fake = FakeWriter([StorageError("unavailable", status=503) for _ in range(6)])
    waits = Waits()
    rw = writer(fake, waits, first_delay=0.5, max_delay=4.0)
    with caplog.at_level(logging.INFO, logger="collector.storage.resilient"):
        assert rw.write(LINES) is True
    expected = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(waits.delays) == len(expected)
    for got, base in zip(waits.delays, expected, strict=True):
        assert 0.8 * base <= got <= base
    assert fake.stored == LINES
    assert len(fake.calls) == 7
    assert (rw.stats.retries, rw.stats.written) == (6, 8)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # logged once per outage, not per retry
    assert any("storage is back" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("status", [None, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int | None) -> None:
    """No answer, 429 and 5xx are retried; the batch is stored whole."""
    fake, waits = FakeWriter([StorageError("x", status=status)]), Waits()
    assert writer(fake, waits).write(LINES) is True
    assert len(waits.delays) == 1
    assert fake.stored == LINES


@pytest.mark.parametrize(
    ("retry_after", "max_delay", "expected"),
    [(2.0, 30.0, 2.0), (0.0, 30.0, 0.0), (100.0, 30.0, 30.0), (7.5, 5.0, 5.0)],
)
def test_retry_after_honoured_and_capped(retry_after: float, max_delay: float,
                                         expected: float) -> None:
    """Retry-After is waited exactly (never less), capped by max_delay."""
    fake = FakeWriter([StorageError("slow down", status=429, retry_after=retry_after)])
    waits = Waits()
    assert writer(fake, waits, max_delay=max_delay).write(LINES) is True
    assert waits.delays == [expected]


def test_backoff_continues_after_retry_after() -> None:
    """A Retry-After does not reset the exponential backoff of later failures."""
    fake = FakeWriter([StorageError("a", status=503, retry_after=3.0),
                       StorageError("b", status=503)])
    waits = Waits()
    assert writer(fake, waits, first_delay=1.0, max_delay=30.0).write(LINES) is True
    assert waits.delays[0] == 3.0
    assert 1.6 <= waits.delays[1] <= 2.0


def test_400_split_isolates_exactly_the_bad_lines(caplog: pytest.LogCaptureFixture) -> None:
    """A refused batch is split until the bad points stand alone; the rest is stored."""
    lines = list(LINES)
    lines[2] = "host bad=1 1"
    lines[7] = "host bad=2 2"
    quarantined: list[tuple[str, int | None]] = []
    fake, waits = FakeWriter(), Waits()
    rw = writer(fake, waits,
                on_quarantine=lambda line, exc: quarantined.append((line, exc.status)))
    with caplog.at_level(logging.ERROR, logger="collector.storage.resilient"):
        assert rw.write(lines) is True
    good = [line for line in lines if "bad" not in line]
    assert fake.stored == good  # in order, each once
    assert quarantined == [("host bad=1 1", 400), ("host bad=2 2", 400)]
    assert (rw.stats.quarantined, rw.stats.written, rw.stats.retries) == (2, 6, 0)
    assert waits.delays == []  # bad points are not retried
    logged = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(logged) == 2 and "host bad=1 1" in logged[0]


def test_400_single_line_quarantined() -> None:
    """A one-line batch that is refused is quarantined at once."""
    fake, waits = FakeWriter(), Waits()
    rw = writer(fake, waits)
    assert rw.write(["bad line"]) is True
    assert (rw.stats.quarantined, rw.stats.written) == (1, 0)
    assert fake.stored == [] and len(fake.calls) == 1


def test_all_bad_lines_quarantined() -> None:
    """A batch of only bad points ends with all of them quarantined and nothing stored."""
    fake, waits = FakeWriter(), Waits()
    rw = writer(fake, waits)
    assert rw.write([f"bad {i}" for i in range(5)]) is True
    assert rw.stats.quarantined == 5 and fake.stored == []


def test_stop_returns_false() -> None:
    """When the wait says stop, write gives up and reports it; nothing was stored."""
    fake = FakeWriter([StorageError("down", status=None) for _ in range(10)])
    waits = Waits(stop_after=3)
    rw = writer(fake, waits)
    assert rw.write(LINES) is False
    assert len(waits.delays) == 3
    assert len(fake.calls) == 3
    assert fake.stored == [] and rw.stats.written == 0


def test_default_wait_is_the_stop_event() -> None:
    """Without an injected wait, a set stop event ends the retry loop at once."""
    stop = threading.Event()
    stop.set()
    fake = FakeWriter([StorageError("down", status=503)])
    rw = ResilientWriter(fake, stop, first_delay=30.0)
    assert rw.write(LINES) is False


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("5", 5.0), ("0.5", 0.5), ("-3", 0.0),
     ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    """Delta-seconds are parsed, dates and junk ignored, negatives clamped."""
    assert parse_retry_after(header) == seconds


@pytest.mark.parametrize(("status", "retryable"),
                         [(None, True), (429, True), (500, True), (400, False), (404, False),
                          (413, False)])
def test_storage_error_retryable(status: int | None, retryable: bool) -> None:
    """Which failures are worth retrying."""
    assert StorageError("x", status=status).retryable is retryable
