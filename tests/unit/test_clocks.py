"""The clock-offset estimator and corrector (collector/clocks.py), with injected times."""

from __future__ import annotations

from collector.clocks import MAX_WINDOW, ClockBook
from collector.config import ClockSettings
from collector.measurements import AGENT_CLOCK
from common.wire import AgentIdentity, Sample

WHO = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-pc1")
NOW = 1_796_000_000_000  # the collector's clock at the first message (2026-12)
DAY = 86_400_000
SLOW = -3 * DAY  # agent clock minus collector clock: three days slow


def book(**settings: float) -> ClockBook:
    return ClockBook(ClockSettings(**settings))


def host(ts_ms: int, n: int = 0) -> Sample:
    return Sample("host", ts_ms, {}, {"uptime_s": n})


def send(clocks: ClockBook, recv_ms: int, agent_skew_ms: int, *, transit_ms: int = 40,
         sample_age_ms: int = 0, who: AgentIdentity = WHO) -> tuple[Sample, tuple[str, ...]]:
    """A message sent ``transit_ms`` before ``recv_ms`` by an agent whose clock is skewed,
    holding one sample taken ``sample_age_ms`` before it was sent."""
    sent_true = recv_ms - transit_ms
    sample = host(sent_true - sample_age_ms + agent_skew_ms, sent_true)
    fix = clocks.correct(who, sent_true + agent_skew_ms, recv_ms, [sample])
    return fix.samples[0], fix.lines


def test_a_right_clock_is_never_shifted() -> None:
    clocks = book()
    for i in range(50):
        # Late messages (a minute in a queue), a clock 50 s fast: within half the tolerance.
        skew = 50_000
        sample, lines = send(clocks, NOW + i * 10_000, skew, transit_ms=60_000 if i % 7 else 5)
        assert sample.ts_ms == NOW + i * 10_000 - (60_000 if i % 7 else 5) + skew
        assert lines == ()
    assert clocks.snapshot()[0].applied_ms == 0
    # 90 s off: still never shifted, but worth a look: its offset is stored once a minute.
    points = [send(clocks, NOW + 500_000 + i * 10_000, 90_000)[1] for i in range(12)]
    assert [i for i, p in enumerate(points) if p] == [0, 6]
    assert clocks.snapshot()[0].applied_ms == 0


def test_three_days_slow_is_corrected_once_a_later_message_agrees() -> None:
    clocks = book()
    first, lines = send(clocks, NOW, SLOW)
    assert first.ts_ms == NOW - 40 + SLOW  # one message never moves an agent's data
    assert len(lines) == 1 and lines[0].startswith(AGENT_CLOCK.name)
    assert "corrected=false" in lines[0]
    early, _ = send(clocks, NOW + 10_000, SLOW)
    assert early.ts_ms == NOW + 10_000 - 40 + SLOW  # confirm_after (20 s) not reached
    confirmed, lines = send(clocks, NOW + 20_000, SLOW)
    assert abs(confirmed.ts_ms - (NOW + 20_000 - 40)) <= 40
    assert len(lines) == 1 and "corrected=true" in lines[0]
    view = clocks.snapshot()[0]
    assert view.applied_ms == -SLOW + 40 and view.applied_since_ms == NOW + 20_000


def test_two_hours_fast_is_corrected_backwards() -> None:
    clocks = book()
    for i in range(3):
        sample, _ = send(clocks, NOW + i * 15_000, 2 * 3_600_000)
    assert abs(sample.ts_ms - (NOW + 30_000 - 40)) <= 40


def test_backlogs_and_slow_links_do_not_move_the_estimate() -> None:
    clocks = book()
    for i in range(3):
        send(clocks, NOW + i * 15_000, SLOW)
    applied = clocks.snapshot()[0].applied_ms
    # A backlog: samples a day old, sent now (sent_ms is the resend time), some messages
    # waiting up to 5 minutes in queues on the way.
    for i in range(200):
        recv = NOW + 60_000 + i * 100
        sample, _ = send(clocks, recv, SLOW, transit_ms=(i * 1_500) % 300_000,
                         sample_age_ms=DAY)
        true_ts = recv - (i * 1_500) % 300_000 - DAY
        assert abs(sample.ts_ms - true_ts) <= 40
    assert clocks.snapshot()[0].applied_ms == applied


def test_a_made_up_sent_ms_is_never_trusted() -> None:
    """Batches sent by hand with one fixed sent_ms a year back: no later message agrees."""
    clocks = book()
    t0 = NOW - 380 * DAY
    for i in range(100):
        fix = clocks.correct(WHO, t0, NOW + i * 1_000, [host(t0 + i, i)])
        assert fix.samples[0].ts_ms == t0 + i
    assert clocks.snapshot()[0].applied_ms == 0


def test_confirm_after_zero_applies_the_first_estimate() -> None:
    clocks = book(confirm_after=0)
    sample, _ = send(clocks, NOW, SLOW)
    assert sample.ts_ms == NOW - 40 + 40  # corrected by the delta of this very message


def test_small_drift_keeps_the_applied_offset_and_resends_their_timestamps() -> None:
    clocks = book(confirm_after=0)
    first, _ = send(clocks, NOW, SLOW, transit_ms=2_000)  # estimate includes 2 s of transit
    again, _ = send(clocks, NOW + 5_000, SLOW - 5_000)  # drifted 5 s: under RESYNC_MS
    assert clocks.snapshot()[0].applied_ms == -SLOW + 2_000
    # The same batch resent later gets the same timestamps (it overwrites itself).
    resent = clocks.correct(WHO, NOW + 9_000 + SLOW, NOW + 9_050,
                            [host(NOW - 2_000 + SLOW, NOW - 2_000)]).samples[0]
    assert resent.ts_ms == first.ts_ms
    assert again.ts_ms == NOW + 5_000 - 40 + SLOW - 5_000 + (-SLOW + 2_000)


def test_a_shrinking_correction_never_lands_on_a_stored_point() -> None:
    clocks = book(confirm_after=0)
    stored = [send(clocks, NOW + i * 1_000, SLOW, transit_ms=30_000)[0].ts_ms
              for i in range(5)]
    # A message with 30 s less transit: the offset shrinks by 30 s (> RESYNC_MS).  The next
    # samples of the series would fall 30 s back, on the ones just stored.
    later = [send(clocks, NOW + 5_000 + i * 1_000, SLOW, transit_ms=10)[0].ts_ms
             for i in range(5)]
    assert clocks.snapshot()[0].applied_ms == -SLOW + 10
    series = stored + later
    assert series == sorted(series) and len(set(series)) == len(series)


def test_correction_stops_below_half_the_tolerance_only() -> None:
    clocks = book(confirm_after=0)
    send(clocks, NOW, -150_000, transit_ms=0)
    assert clocks.snapshot()[0].applied_ms == 150_000
    send(clocks, NOW + 1_000, -100_000, transit_ms=0)  # within tolerance, above half: kept
    assert clocks.snapshot()[0].applied_ms == 100_000
    sample, lines = send(clocks, NOW + 2_000, -50_000, transit_ms=0)
    assert clocks.snapshot()[0].applied_ms == 0 and sample.ts_ms == NOW + 2_000 - 50_000
    assert "corrected=false" in lines[0]  # the change is stored


def test_a_clock_set_back_is_adopted_after_the_window() -> None:
    clocks = book(window=600)
    for i in range(5):
        send(clocks, NOW + i * 10_000, 0)
    # The clock is set back three days (a dead CMOS battery at boot): its deltas jump up,
    # and only the window's expiry lets the minimum follow.
    recv = NOW + 50_000
    while recv < NOW + 700_000:
        send(clocks, recv, SLOW)
        recv += 10_000
    sample, _ = send(clocks, recv, SLOW)
    assert abs(sample.ts_ms - (recv - 40)) <= 40


def test_restored_correction_applies_from_the_first_message() -> None:
    clocks = book()
    clocks.restore(WHO, -SLOW, NOW - DAY)
    other = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")
    clocks.restore(other, 0, NOW - DAY)  # nothing to resume
    sample, _ = send(clocks, NOW, SLOW, sample_age_ms=DAY)  # a backlog, right at start
    assert abs(sample.ts_ms - (NOW - 40 - DAY)) <= 40
    assert [v.who for v in clocks.snapshot()] == [WHO]


def test_each_agent_has_its_own_offset() -> None:
    clocks = book(confirm_after=0)
    right = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")
    a, _ = send(clocks, NOW, SLOW)
    b, _ = send(clocks, NOW, 0, who=right)
    assert abs(a.ts_ms - (NOW - 40)) <= 40 and b.ts_ms == NOW - 40
    views = {v.who: v.applied_ms for v in clocks.snapshot()}
    assert views == {WHO: -SLOW + 40, right: 0}


def test_the_alert_fires_while_an_agent_is_corrected_and_clears_after() -> None:
    from collector.alerts.model import AlertKey
    from collector.alerts.schooltime import Directory
    from collector.alerts.settings import AlertRulesSettings
    from collector.alerts.texts import TEXTS
    from collector.alerts.tracker import ConditionTracker
    from collector.inventory import Inventory

    clocks = book(confirm_after=0)
    tracker = ConditionTracker(AlertRulesSettings(), Directory(Inventory(districts=[])), NOW)
    tracker.watch_clocks(clocks.snapshot)
    right = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")
    send(clocks, NOW, 0, who=right)
    send(clocks, NOW, SLOW, transit_ms=0)
    firing = tracker.evaluate(NOW + 1_000).firing
    key = AlertKey("agent_clock_wrong", WHO.school, WHO.agent)
    assert [a.key for a in firing] == [key]
    assert firing[0].figures == {"clock_offset_min": -4320.0}  # three days slow
    assert firing[0].since_ms == NOW and firing[0].severity == "warning"
    assert all(key.name in t.titles and "clock_offset_min" in t.labels for t in TEXTS.values())
    send(clocks, NOW + 2_000, 0, transit_ms=0)  # NTP got through: the clock is right again
    evaluation = tracker.evaluate(NOW + 3_000)
    assert evaluation.firing == [] and evaluation.cleared == {key}


def test_the_window_stays_bounded_when_deltas_only_grow() -> None:
    clocks = book()
    t0 = NOW - 10 * DAY
    for i in range(2_000):  # a clock stopped at one instant: every delta is a new maximum
        clocks.correct(WHO, t0, NOW + i * 100, [host(t0, i)])
    assert len(clocks._agents[WHO].window) == MAX_WINDOW
    assert clocks.snapshot()[0].applied_ms == 0


def test_a_clock_set_right_stops_the_correction_at_its_first_message() -> None:
    """NTP gets through: the delta drops, proof the correction is too large; no wait."""
    clocks = book()  # confirm_after 20 s for a correction that grows
    clocks.restore(WHO, -SLOW, NOW - DAY)
    send(clocks, NOW, SLOW)
    sample, lines = send(clocks, NOW + 1_000, 0)
    assert sample.ts_ms == NOW + 1_000 - 40  # its own, now right, time: not 3 days ahead
    assert clocks.snapshot()[0].applied_ms == 0 and "corrected=false" in lines[0]
