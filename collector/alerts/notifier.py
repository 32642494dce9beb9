"""Alertmanager-like timing: groups per school, group_wait, group_interval, repeat_interval,
resolved mails, inhibition and quiet hours; every decision is kept in the AlertStore."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from collector.alerts.inhibit import Inhibitor
from collector.alerts.model import SEVERITY_RANK, Alert, AlertKey, Evaluation
from collector.alerts.state import AlertRecord, AlertStore, GroupRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """The notifier's durations in ms, and whether resolved alerts are mailed."""

    group_wait_ms: int
    group_interval_ms: int
    repeat_interval_ms: int
    resolve_timeout_ms: int
    send_resolved: bool


@dataclass(frozen=True)
class MailedAlert:
    """An alert as one mail shows it."""

    alert: Alert
    starts_ms: int
    ends_ms: int | None
    new: bool  # first mail about it (or its severity changed)


@dataclass(frozen=True)
class Notification:
    """One mail for one school."""

    school: str
    district: str
    created_ms: int
    firing: list[MailedAlert]
    resolved: list[MailedAlert]
    muted: int  # firing alerts of the school not listed because a cause mutes them


Renderer = Callable[[Notification], bytes]


def _order(m: MailedAlert) -> tuple[int, int, str]:
    return SEVERITY_RANK[m.alert.severity], m.starts_ms, m.alert.key.id


class Notifier:
    """Turns evaluations into queued mails; the store is written in the same transaction."""

    def __init__(self, store: AlertStore, timing: Timing, inhibitor: Inhibitor,
                 render: Renderer) -> None:
        self.store = store
        self.timing = timing
        self.inhibitor = inhibitor
        self.render = render
        self._alerts = store.load_alerts()
        self._groups = store.load_groups()
        self._render_failed: dict[str, int] = {}  # school -> when its failure was last logged

    def active_keys(self) -> set[AlertKey]:
        """Keys of the alerts on record (firing or waiting for their resolved mail)."""
        return {rec.alert.key for rec in self._alerts.values()}

    def records(self) -> list[AlertRecord]:
        """The alert records (for tests and status pages)."""
        return list(self._alerts.values())

    def tick(self, now_ms: int, evaluation: Evaluation, quiet: bool) -> list[Notification]:
        """Apply an evaluation; queue the mails that are due. Returns what was queued."""
        with self.store.transaction():
            self._update(now_ms, evaluation)
            by_school: dict[str, list[AlertRecord]] = defaultdict(list)
            for rec in self._alerts.values():
                by_school[rec.alert.school].append(rec)
            queued = []
            for school, records in by_school.items():
                flushed = self._flush(school, records, now_ms, quiet)
                if flushed is not None:
                    note, message = flushed
                    self.store.add_outbox(school, now_ms, message)
                    queued.append(note)
            for school in [s for s in self._groups if s not in by_school]:
                del self._groups[school]
                self.store.delete_group(school)
        return queued

    def _update(self, now_ms: int, evaluation: Evaluation) -> None:
        firing_ids: set[str] = set()
        for alert in evaluation.firing:
            firing_ids.add(alert.key.id)
            rec = self._alerts.get(alert.key.id)
            if rec is None:
                rec = self._alerts[alert.key.id] = AlertRecord(alert, alert.since_ms, now_ms)
                if alert.school not in self._groups:
                    group = self._groups[alert.school] = GroupRecord(alert.school, now_ms)
                    self.store.save_group(group)
                self.store.save_alert(rec)
                continue
            changed = rec.ends_ms is not None or rec.alert.severity != alert.severity
            # Flapping back before the resolved mail went out: it is the same alert still.
            rec.ends_ms = None
            rec.alert = Alert(alert.key, alert.severity, alert.district, rec.starts_ms,
                              alert.labels, alert.figures)
            rec.last_firing_ms = now_ms
            if changed or now_ms - rec.saved_firing_ms >= self.timing.resolve_timeout_ms // 10:
                self.store.save_alert(rec)
        for key in evaluation.cleared:
            rec = self._alerts.get(key.id)
            if rec is not None and rec.ends_ms is None and key.id not in firing_ids:
                self._resolve(rec, now_ms)
        for rec in list(self._alerts.values()):
            if rec.ends_ms is None and now_ms - rec.last_firing_ms > self.timing.resolve_timeout_ms:
                # No news for resolve_timeout (e.g. a device removed while it was down).
                log.info("alert %s: no news for %.0f h, resolving it", rec.alert.key.id,
                         self.timing.resolve_timeout_ms / 3_600_000)
                self._resolve(rec, now_ms)

    def _resolve(self, rec: AlertRecord, now_ms: int) -> None:
        rec.ends_ms = now_ms
        if self.timing.send_resolved and (rec.notified is not None or rec.held):
            self.store.save_alert(rec)
        else:  # nobody was told it fired: nothing to tell about its end
            del self._alerts[rec.alert.key.id]
            self.store.delete_alert(rec.alert.key.id)

    def _rendered(self, note: Notification, now_ms: int) -> bytes | None:
        """The mail's bytes, or None (logged once a minute per school) when it cannot be made.

        Rendering comes before any record is marked notified: a mail that cannot be made
        leaves its alerts unsent, retried on the next tick, and the other schools' mails go on.
        """
        try:
            return self.render(note)
        except Exception as exc:  # any renderer failure must stay within its school
            last = self._render_failed.get(note.school)
            if last is None or now_ms - last >= 60_000:
                self._render_failed[note.school] = now_ms
                log.error("alert mail for school %s cannot be made: %s: %s; its alerts stay "
                          "unsent and are retried", note.school, type(exc).__name__,
                          str(exc)[:200])
            return None

    def _flush(self, school: str, records: list[AlertRecord], now_ms: int,
               quiet: bool) -> tuple[Notification, bytes] | None:
        group = self._groups.get(school)
        if group is None:  # records from an older version without a group: start one now
            group = self._groups[school] = GroupRecord(school, now_ms)
            self.store.save_group(group)
        active = [r for r in records if r.ends_ms is None]
        muted = self.inhibitor.muted(r.alert for r in active)
        visible = [r for r in active if r.alert.key not in muted]
        changed = [r for r in visible if r.notified != r.alert.severity]
        resolved = [r for r in records if r.ends_ms is not None]
        if group.last_sent_ms is None:
            waited = now_ms - group.created_ms >= self.timing.group_wait_ms
            due = bool(changed or resolved) and waited
        else:
            since_last = now_ms - group.last_sent_ms
            due = ((bool(changed or resolved) and since_last >= self.timing.group_interval_ms)
                   or (bool(visible) and since_last >= self.timing.repeat_interval_ms))
        if not due:
            return None
        if quiet:
            for rec in changed:
                if not rec.held:
                    rec.held = True
                    self.store.save_alert(rec)
            return None
        note = Notification(
            school, records[0].alert.district, now_ms,
            sorted((MailedAlert(r.alert, r.starts_ms, None, r.notified != r.alert.severity)
                    for r in visible), key=_order),
            sorted((MailedAlert(r.alert, r.starts_ms, r.ends_ms, False) for r in resolved),
                   key=_order),
            len(muted))
        message = self._rendered(note, now_ms)
        if message is None:
            return None
        self._render_failed.pop(school, None)
        for rec in visible:
            rec.notified, rec.held = rec.alert.severity, False
            self.store.save_alert(rec)
        for rec in resolved:
            del self._alerts[rec.alert.key.id]
            self.store.delete_alert(rec.alert.key.id)
        group.last_sent_ms = now_ms
        self.store.save_group(group)
        return note, message
