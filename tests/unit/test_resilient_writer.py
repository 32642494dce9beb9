"""ResilientWriter: backoff, Retry-After, classification of refusals, dead-letter, stop."""

from __future__ import annotations

import logging
import threading

import pytest

from collector.alerts.model import ClearLog
from collector.alerts.settings import AlertRulesSettings
from collector.alerts.storage import StorageWatch
from collector.storage import StorageError, StorageHealth, parse_retry_after
from collector.storage.refusal import Target, classify, error_for
from collector.storage.resilient import ResilientWriter


class FakeWriter:
    """A PointWriter that fails as scripted, then stores; refuses points of measurement 'bad'."""

    def __init__(self, failures: list[StorageError] | None = None) -> None:
        self.failures = list(failures or [])
        self.calls: list[list[str]] = []
        self.stored: list[str] = []

    def write(self, lines: list[str]) -> None:
        """Store, or raise the next scripted failure, or 400 when a bad line is in the batch."""
        self.calls.append(list(lines))
        if self.failures:
            raise self.failures.pop(0)
        if any(line.startswith("bad") for line in lines):
            raise StorageError('{"error":"partial write: field type conflict: input field '
                               '\\"x\\" on measurement \\"bad\\" is type float, already '
                               'exists as type string dropped=1"}', status=400)
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


# Bodies as the real servers send them (InfluxDB 1.6 here; 2.x from its documentation).
CONFLICT_1X = ('{"error":"partial write: field type conflict: input field \\"x\\" on measurement '
               '\\"host\\" is type string, already exists as type float dropped=1"}')


@pytest.mark.parametrize(("status", "body", "cause", "action"), [
    (400, CONFLICT_1X, "field_type_conflict", "quarantine"),
    (400, '{"error":"field type conflict"}', "field_type_conflict", "quarantine"),
    (400, '{"error":"partial write: unable to parse \'host x= 2000\': missing field value '
          'dropped=0"}', "unparsable", "quarantine"),
    (400, '{"error":"partial write: points beyond retention policy dropped=3"}',
     "beyond_retention", "quarantine"),
    (422, '{"code":"unprocessable entity","message":"failure writing points to database: '
          'partial write: field type conflict"}', "field_type_conflict", "quarantine"),
    (400, '{"error":"partial write: max-values-per-tag limit exceeded (100000/100000): '
          'measurement=\\"host\\" tag=\\"agent\\" dropped=1"}', "limit", "retry"),
    (404, '{"error":"database not found: \\"nope\\""}', "database_missing", "retry"),
    (404, '{"code":"not found","message":"bucket \\"b\\" not found"}', "bucket_missing",
     "retry"),
    (404, "404 page not found", "not_found", "retry"),
    (401, '{"error":"authorization failed"}', "auth", "retry"),
    (403, '{"error":"user is not authorized to write to database"}', "forbidden", "retry"),
    (413, '{"error":"Request Entity Too Large"}', "too_large", "split"),
    (500, '{"error":"retention policy not found: nope"}', "retention_policy_missing", "retry"),
    (503, "", "server_error", "retry"),
    (429, "", "rate_limited", "retry"),
    (400, '{"error":"something new"}', "refused", "retry"),
    (None, "", "unreachable", "retry"),
])
def test_classify_by_status_and_body(status: int | None, body: str, cause: str,
                                     action: str) -> None:
    """Only a refusal of the points themselves is quarantined; 413 splits; the rest retries."""
    assert classify(status, body) == (cause, action)


TARGET = Target("InfluxDB", "http://127.0.0.1:8086", "school_db", "storage.database",
                'CREATE DATABASE "school_db"', "storage.username / password_file", "writer")


def test_messages_name_the_cause_and_the_fix() -> None:
    """One line each, with the setting to change or the command to run."""
    missing = error_for(404, '{"error":"database not found: \\"school_db\\""}', TARGET)
    assert str(missing) == ("InfluxDB says database 'school_db' does not exist: create it "
                            '(CREATE DATABASE "school_db") or fix storage.database in '
                            "collector.yaml")
    assert (missing.cause, missing.retryable) == ("database_missing", True)
    auth = error_for(401, '{"error":"authorization failed"}', TARGET)
    assert str(auth) == ("InfluxDB refused the credentials (401): check storage.username / "
                         "password_file in collector.yaml")
    assert "user 'writer'" in str(error_for(403, "{}", TARGET))
    assert "\n" not in str(missing) + str(auth)


class Clock:
    """Injected wall clock; the waits advance it."""

    def __init__(self) -> None:
        self.now = 1_763_890_000.0

    def __call__(self) -> float:
        return self.now


def test_missing_database_is_retried_logged_once_per_interval_then_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    """404 is "not stored": no ack until it works; one log line per 300 s; health and points."""
    clock = Clock()
    fake = FakeWriter([error_for(404, '{"error":"database not found: \\"school_db\\""}', TARGET)
                       for _ in range(10)])
    health_seen = []

    def wait(delay: float) -> bool:
        health_seen.append(rw.health())
        clock.now += 60.0
        return False

    rw = ResilientWriter(fake, threading.Event(), wait=wait, clock=clock, log_every=300.0,
                         name="c1")
    with caplog.at_level(logging.INFO, logger="collector.storage.resilient"):
        assert rw.write(LINES) is True
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2  # at 0 s and at 300 s of a 600 s outage
    assert "CREATE DATABASE" in errors[0]
    assert all(h.failing and h.cause == "database_missing" for h in health_seen)
    assert health_seen[0].failing_since_ms == health_seen[-1].failing_since_ms \
        == 1_763_890_000_000
    assert fake.stored == LINES
    assert not rw.health().failing and rw.health().failures_total == 10
    assert (rw.stats.failing, rw.stats.failure_cause, rw.stats.retries) == (
        False, "database_missing", 10)
    assert any("storage is back after 600 s" in r.getMessage() for r in caplog.records)
    # The outage is written with the next batch, as a step: failing from its start to the end.
    assert rw.write(["host cpu_pct=1.0 1"]) is True
    own = [line for line in fake.stored if line.startswith("schoolmon_collector")]
    assert own == [
        'schoolmon_collector,collector=c1 storage_failing=1.0,storage_failure_cause='
        '"database_missing",failures_total=10.0,quarantined_total=0.0 1763890000000',
        'schoolmon_collector,collector=c1 storage_failing=0.0,storage_failure_cause='
        '"database_missing",failures_total=10.0,quarantined_total=0.0 1763890600000']


def test_refused_points_are_dead_lettered_with_their_raw_line() -> None:
    """Refused points stand alone after splitting and are stored as schoolmon_reject first."""
    lines = list(LINES)
    lines[2] = 'bad,agent=gw\\ 1,district=d,school=s x="1" 1'
    lines[7] = "bad x=2 2"
    quarantined: list[tuple[str, str]] = []
    fake, waits = FakeWriter(), Waits()
    rw = writer(fake, waits, on_quarantine=lambda line, exc: quarantined.append(
        (line, exc.cause)))
    assert rw.write(lines) is True
    good = [line for line in lines if not line.startswith("bad")]
    assert fake.stored[:6] == good  # in order, each once
    dead = fake.stored[6:]
    assert len(dead) == 2 and all(d.startswith("schoolmon_reject,") for d in dead)
    assert ("agent=gw\\ 1" in dead[0] and "cause=storage_field_type_conflict" in dead[0]
            and "district=d" in dead[0] and "source=storage" in dead[0]
            and f",collector={rw.name}," in dead[0])
    assert 'line="bad,agent=gw\\\\ 1,district=d,school=s x=\\"1\\" 1"' in dead[0]
    assert 'line="bad x=2 2"' in dead[1]
    assert quarantined == [(lines[2], "field_type_conflict"), (lines[7], "field_type_conflict")]
    assert (rw.stats.quarantined, rw.stats.written, rw.stats.retries) == (2, 6, 0)
    assert rw.health().quarantined_total == 2 and waits.delays == []


def test_dead_letter_keeps_a_long_line_truncated() -> None:
    """A huge refused line is kept to 4,000 characters, with its real length."""
    fake, waits = FakeWriter(), Waits()
    rw = writer(fake, waits)
    assert rw.write(["bad x=\"" + "y" * 10_000 + "\" 1"]) is True
    (dead,) = fake.stored
    assert "line_chars=10010.0" in dead
    assert 'line="bad x=\\"' + "y" * (4000 - 7) + '"' in dead


class DeadLetterFails(FakeWriter):
    """Refuses 'bad' points; the dead-letter write fails with 503 ``fails`` times."""

    def __init__(self, fails: int) -> None:
        super().__init__()
        self.fails = fails

    def write(self, lines: list[str]) -> None:
        """As FakeWriter, with the dead-letter failing first."""
        if lines[0].startswith("schoolmon_reject") and self.fails:
            self.fails -= 1
            raise StorageError("unavailable", status=503)
        super().write(lines)


def test_dead_letter_is_stored_before_write_returns() -> None:
    """A failing dead-letter write is retried; the batch counts as done only after it."""
    quarantined: list[str] = []
    fake, waits = DeadLetterFails(2), Waits()
    rw = writer(fake, waits, on_quarantine=lambda line, exc: quarantined.append(line))
    assert rw.write(["host a=1.0 1", "bad b=1 2"]) is True
    assert len(waits.delays) == 2
    assert fake.stored[0] == "host a=1.0 1" and fake.stored[1].startswith("schoolmon_reject")
    assert quarantined == ["bad b=1 2"]


def test_stop_while_dead_letter_fails_acks_nothing() -> None:
    """Stopping before the dead-letter is stored returns False: the batch is not acked."""
    quarantined: list[str] = []
    fake, waits = DeadLetterFails(10), Waits(stop_after=2)
    rw = writer(fake, waits, on_quarantine=lambda line, exc: quarantined.append(line))
    assert rw.write(["host a=1.0 1", "bad b=1 2"]) is False
    assert quarantined == [] and rw.stats.quarantined == 0


class TooLarge(FakeWriter):
    """Answers 413 to any request of more than two points."""

    def write(self, lines: list[str]) -> None:
        """413 when more than two lines."""
        if len(lines) > 2:
            self.calls.append(list(lines))
            raise StorageError('{"error":"Request Entity Too Large"}', status=413)
        super().write(lines)


def test_413_splits_the_request_and_quarantines_nothing() -> None:
    """Too large means the request, not the points: halves until accepted, all stored once."""
    fake, waits = TooLarge(), Waits()
    rw = writer(fake, waits)
    assert rw.write(LINES) is True
    assert fake.stored == LINES and rw.stats.quarantined == 0 and waits.delays == []


def test_storage_alert_fires_after_the_configured_time_and_clears() -> None:
    """storage_refusing: nothing before storage_refusing_after, critical then, cleared after."""
    rules = AlertRulesSettings(storage_refusing_after=120.0)
    clears = ClearLog()
    watch = StorageWatch(rules, clears)
    since = 1_763_890_000_000
    health = StorageHealth(since, "auth", "InfluxDB refused the credentials (401): ...", 7)
    watch.source = lambda: health
    assert watch.evaluate(since + 119_999) == []
    (alert,) = watch.evaluate(since + 120_000)
    assert (alert.name, alert.severity, alert.since_ms) == ("storage_refusing", "critical", since)
    assert alert.figures["storage_cause"] == "auth"
    health = StorageHealth(None, "auth", "", 7)
    assert watch.evaluate(since + 130_000) == []
    assert clears.drain() == {alert.key}


def test_many_dead_letters_too_large_together_are_split() -> None:
    """A dead-letter batch answered 413 is split like any batch: every refused point kept."""
    lines = [f"bad x={i} {i}" for i in range(8)]
    fake, waits = TooLarge(), Waits()
    rw = writer(fake, waits)
    assert rw.write(lines) is True
    assert len(fake.stored) == 8 and all(d.startswith("schoolmon_reject") for d in fake.stored)
    assert rw.stats.quarantined == 8 and waits.delays == []
