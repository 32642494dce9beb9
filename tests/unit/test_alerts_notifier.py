"""Notifier timing on an injected clock: group_wait, group_interval, repeat, resolve,
inhibition, quiet hours, and state kept across a restart (a new Notifier on the same file)."""

from __future__ import annotations

from pathlib import Path

from collector.alerts.inhibit import Inhibitor
from collector.alerts.model import Alert, AlertKey, Evaluation
from collector.alerts.notifier import Notification, Notifier, Timing
from collector.alerts.settings import AlertRulesSettings, InhibitRule
from collector.alerts.state import AlertStore

S = 1000
M = 60 * S
T0 = 1_780_000_000_000
TIMING = Timing(group_wait_ms=30 * S, group_interval_ms=5 * M, repeat_interval_ms=240 * M,
                resolve_timeout_ms=1440 * M, send_resolved=True)


class Recorder:
    """The renderer: keeps each notification, renders a marker."""

    def __init__(self) -> None:
        self.notes: list[Notification] = []

    def __call__(self, note: Notification) -> bytes:
        """Record."""
        self.notes.append(note)
        return f"mail {len(self.notes)}".encode()


def notifier(path: Path, timing: Timing = TIMING,
             rules: list[InhibitRule] | None = None) -> tuple[Notifier, Recorder]:
    """A notifier on ``path`` with the default inhibition rules."""
    recorder = Recorder()
    inhibit = rules if rules is not None else AlertRulesSettings().inhibit
    return Notifier(AlertStore(path), timing, Inhibitor(inhibit), recorder), recorder


def alert(name: str, subject: str = "", school: str = "s1", severity: str = "error",
          **labels: str) -> Alert:
    """A firing alert since T0."""
    return Alert(AlertKey(name, school, subject), severity, "d", T0,  # type: ignore[arg-type]
                 labels)


def fire(*alerts: Alert) -> Evaluation:
    """An evaluation with these firing."""
    return Evaluation(list(alerts), set())


def clear(*alerts: Alert) -> Evaluation:
    """An evaluation where these were seen healthy."""
    return Evaluation([], {a.key for a in alerts})


def names(note: Notification, part: str = "firing") -> list[str]:
    """key ids of one part of a notification."""
    return [m.alert.key.id for m in getattr(note, part)]


def test_group_wait_collects_a_burst_into_one_mail(tmp_path: Path) -> None:
    """Alerts arriving within group_wait go out together, once."""
    n, rec = notifier(tmp_path / "a.db")
    a, b = alert("device_down", "p1"), alert("device_down", "p2")
    assert n.tick(T0, fire(a), quiet=False) == []
    assert n.tick(T0 + 20 * S, fire(a, b), quiet=False) == []
    assert len(n.tick(T0 + 30 * S, fire(a, b), quiet=False)) == 1
    assert names(rec.notes[0]) == ["device_down/s1/p1", "device_down/s1/p2"]
    assert all(m.new for m in rec.notes[0].firing)
    assert n.tick(T0 + 60 * S, fire(a, b), quiet=False) == []
    assert n.store.outbox()[0].message == b"mail 1"


def test_changes_wait_for_group_interval_and_schools_are_separate_groups(
        tmp_path: Path) -> None:
    """A new alert of a notified school waits group_interval; another school its own wait."""
    n, rec = notifier(tmp_path / "a.db")
    a, b = alert("device_down", "p1"), alert("device_down", "p2")
    other = alert("device_down", "x", school="s2")
    n.tick(T0, fire(a), quiet=False)
    n.tick(T0 + 30 * S, fire(a), quiet=False)
    assert len(rec.notes) == 1
    n.tick(T0 + 60 * S, fire(a, b, other), quiet=False)
    n.tick(T0 + 90 * S, fire(a, b, other), quiet=False)
    assert [note.school for note in rec.notes] == ["s1", "s2"]
    n.tick(T0 + 30 * S + 5 * M - 1, fire(a, b, other), quiet=False)
    assert len(rec.notes) == 2
    n.tick(T0 + 30 * S + 5 * M, fire(a, b, other), quiet=False)
    assert len(rec.notes) == 3
    assert [(m.alert.key.subject, m.new) for m in rec.notes[2].firing] == [("p1", False),
                                                                           ("p2", True)]


def test_repeat_interval_and_severity_change(tmp_path: Path) -> None:
    """Unchanged: again after repeat_interval only; a severity change is a change."""
    n, rec = notifier(tmp_path / "a.db")
    warn = alert("projector_error", "p1", severity="warning")
    n.tick(T0, fire(warn), quiet=False)
    n.tick(T0 + 30 * S, fire(warn), quiet=False)
    for minute in range(1, 240):
        n.tick(T0 + 30 * S + minute * M, fire(warn), quiet=False)
    assert len(rec.notes) == 1
    n.tick(T0 + 30 * S + 240 * M, fire(warn), quiet=False)
    assert len(rec.notes) == 2 and not rec.notes[1].firing[0].new
    error = alert("projector_error", "p1", severity="error")
    n.tick(T0 + 30 * S + 245 * M, fire(error), quiet=False)
    assert len(rec.notes) == 3 and rec.notes[2].firing[0].new


def test_resolved_mail_only_for_alerts_that_were_mailed(tmp_path: Path) -> None:
    """A flap inside group_wait is never mailed; a mailed alert gets its resolved mail."""
    n, rec = notifier(tmp_path / "a.db")
    flap, real = alert("device_down", "flap"), alert("device_down", "real")
    n.tick(T0, fire(flap, real), quiet=False)
    n.tick(T0 + 10 * S, Evaluation([real], {flap.key}), quiet=False)
    n.tick(T0 + 30 * S, fire(real), quiet=False)
    assert names(rec.notes[0]) == ["device_down/s1/real"]
    n.tick(T0 + 60 * S, clear(real), quiet=False)
    n.tick(T0 + 30 * S + 5 * M, Evaluation([], set()), quiet=False)
    assert len(rec.notes) == 2
    assert rec.notes[1].firing == [] and names(rec.notes[1], "resolved") == [real.key.id]
    assert rec.notes[1].resolved[0].ends_ms == T0 + 60 * S
    assert n.records() == []


def test_send_resolved_false_drops_resolved_alerts(tmp_path: Path) -> None:
    """Without send_resolved nothing is mailed when an alert ends."""
    timing = Timing(30 * S, 5 * M, 240 * M, 1440 * M, send_resolved=False)
    n, rec = notifier(tmp_path / "a.db", timing)
    a = alert("device_down", "p1")
    n.tick(T0, fire(a), quiet=False)
    n.tick(T0 + 30 * S, fire(a), quiet=False)
    n.tick(T0 + 60 * S, clear(a), quiet=False)
    n.tick(T0 + 60 * M, Evaluation([], set()), quiet=False)
    assert len(rec.notes) == 1 and n.records() == []


def test_uplink_down_mutes_device_alerts_of_its_school_only(tmp_path: Path) -> None:
    """internet_down mutes devices and classroom agents of s1, not its gateway, not s2."""
    n0, rec0 = notifier(tmp_path / "b.db")
    uplink0 = alert("internet_down", severity="critical")
    n0.tick(T0, fire(uplink0, alert("device_down", "p1")), quiet=False)
    n0.tick(T0 + 30 * S, fire(uplink0, alert("device_down", "p1")), quiet=False)
    assert names(rec0.notes[0]) == ["internet_down/s1/"] and rec0.notes[0].muted == 1
    n, rec = notifier(tmp_path / "a.db")
    uplink = alert("internet_down", severity="critical")
    devices = [alert("device_down", f"p{i}") for i in range(30)]
    pc = alert("agent_offline", "pc1", role="classroom_pc")
    gw = alert("agent_offline", "gw", role="gateway")
    elsewhere = alert("device_down", "x", school="s2")
    n.tick(T0, fire(uplink, *devices, pc, gw, elsewhere), quiet=False)
    n.tick(T0 + 30 * S, fire(uplink, *devices, pc, gw, elsewhere), quiet=False)
    by_school = {note.school: note for note in rec.notes}
    # The gateway offline is the cause shown; it mutes the uplink alert too (default rules).
    assert names(by_school["s1"]) == ["agent_offline/s1/gw"]
    assert by_school["s1"].muted == 32
    assert names(by_school["s2"]) == ["device_down/s2/x"]


def test_gateway_offline_mutes_the_rest_of_its_school(tmp_path: Path) -> None:
    """A gateway agent offline mutes internet_down, devices and Wi-Fi of its school."""
    n, rec = notifier(tmp_path / "a.db")
    gw = alert("agent_offline", "gw", role="gateway", severity="critical")
    others = [alert("internet_down"), alert("wifi_poor", "101"), alert("device_down", "p1"),
              alert("spool_dropping", "gw", role="gateway")]
    n.tick(T0, fire(gw, *others), quiet=False)
    n.tick(T0 + 30 * S, fire(gw, *others), quiet=False)
    assert names(rec.notes[0]) == ["agent_offline/s1/gw", "spool_dropping/s1/gw"]
    assert rec.notes[0].muted == 3


def test_cause_ending_unmutes_what_still_fires(tmp_path: Path) -> None:
    """Uplink back, one device still down: the next mail has both parts."""
    n, rec = notifier(tmp_path / "a.db")
    uplink, dev = alert("internet_down", severity="critical"), alert("device_down", "p1")
    n.tick(T0, fire(uplink, dev), quiet=False)
    n.tick(T0 + 30 * S, fire(uplink, dev), quiet=False)
    n.tick(T0 + 2 * M, Evaluation([dev], {uplink.key}), quiet=False)
    n.tick(T0 + 30 * S + 5 * M, fire(dev), quiet=False)
    assert len(rec.notes) == 2
    assert names(rec.notes[1]) == ["device_down/s1/p1"]
    assert names(rec.notes[1], "resolved") == ["internet_down/s1/"]


def test_quiet_hours_hold_and_a_held_alert_resolving_is_still_told(tmp_path: Path) -> None:
    """Due while quiet: held; resolved meanwhile: reported as resolved when quiet ends."""
    n, rec = notifier(tmp_path / "a.db")
    a, b = alert("device_down", "p1"), alert("device_down", "p2")
    n.tick(T0, fire(a, b), quiet=True)
    n.tick(T0 + 30 * S, fire(a, b), quiet=True)
    n.tick(T0 + 60 * M, Evaluation([b], {a.key}), quiet=True)
    assert rec.notes == []
    n.tick(T0 + 120 * M, fire(b), quiet=False)
    assert len(rec.notes) == 1
    assert names(rec.notes[0]) == ["device_down/s1/p2"]
    assert names(rec.notes[0], "resolved") == ["device_down/s1/p1"]


def test_restart_keeps_state_no_duplicate_and_unknown_is_not_resolved(tmp_path: Path) -> None:
    """A new notifier on the file: mailed alerts stay mailed; silence resolves nothing."""
    path = tmp_path / "a.db"
    n, _ = notifier(path)
    a = alert("device_down", "p1")
    n.tick(T0, fire(a), quiet=False)
    n.tick(T0 + 30 * S, fire(a), quiet=False)
    n.store.close()
    n2, rec2 = notifier(path)
    assert n2.active_keys() == {a.key}
    for minute in range(1, 60):
        n2.tick(T0 + minute * M, Evaluation([], set()), quiet=False)
    n2.tick(T0 + 61 * M, fire(a), quiet=False)
    assert rec2.notes == []
    n2.tick(T0 + 62 * M, clear(a), quiet=False)
    n2.tick(T0 + 62 * M, Evaluation([], set()), quiet=False)
    assert names(rec2.notes[0], "resolved") == [a.key.id]
    assert len(n2.store.outbox()) == 2  # the first mail was never sent: still queued


def test_restart_inside_group_wait_still_sends_once(tmp_path: Path) -> None:
    """Pending alerts survive a restart and go out when their group_wait ends."""
    path = tmp_path / "a.db"
    n, _ = notifier(path)
    n.tick(T0, fire(alert("internet_down")), quiet=False)
    n.store.close()
    n2, rec2 = notifier(path)
    n2.tick(T0 + 31 * S, Evaluation([], set()), quiet=False)
    n2.tick(T0 + 5 * M, Evaluation([], set()), quiet=False)
    assert len(rec2.notes) == 1 and names(rec2.notes[0]) == ["internet_down/s1/"]


def test_resolve_timeout_ends_alerts_nobody_reports_on(tmp_path: Path) -> None:
    """No news for resolve_timeout: resolved (e.g. a device removed while it was down)."""
    n, rec = notifier(tmp_path / "a.db")
    a = alert("device_down", "p1")
    n.tick(T0, fire(a), quiet=False)
    n.tick(T0 + 30 * S, fire(a), quiet=False)
    n.tick(T0 + 30 * S + 1440 * M, Evaluation([], set()), quiet=False)
    assert n.records()[0].ends_ms is None
    n.tick(T0 + 31 * S + 1440 * M, Evaluation([], set()), quiet=False)
    assert n.records()[0].ends_ms == T0 + 31 * S + 1440 * M
    n.tick(T0 + 30 * S + 1445 * M, Evaluation([], set()), quiet=False)  # group_interval later
    assert names(rec.notes[-1], "resolved") == [a.key.id]
