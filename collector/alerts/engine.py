"""AlertEngine: the wiring of tracker, notifier, renderer and sender, driven by ``tick(now)``.

``observe`` and ``observe_status`` are the collector's SampleObserver and StatusObserver: they
run in the collector's threads, take a lock for a few dict updates and return. ``tick`` (from
``run`` in its own thread, or from a test with an injected clock) evaluates, queues the mails
that are due, and sends the outbox; SMTP runs outside the lock, so a slow mail server never
slows the collector down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from collector.alerts.inhibit import Inhibitor
from collector.alerts.notifier import Notification, Notifier, Timing
from collector.alerts.quiet import QuietHours
from collector.alerts.render import MailRenderer, MailSettings
from collector.alerts.schooltime import Directory
from collector.alerts.settings import AlertRulesSettings, AlertSettings
from collector.alerts.smtp import Connector, MailSender, smtp_connector
from collector.alerts.state import AlertStore
from collector.alerts.tracker import ConditionTracker
from collector.inventory import Inventory
from common.timetable import Timetable
from common.wire import AgentIdentity, Sample

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class AlertEngine:
    """Alert conditions from the sample stream, mailed Alertmanager-style."""

    def __init__(self, settings: AlertSettings, inventory: Inventory,
                 rules: AlertRulesSettings | None = None, *, clock: Clock = time.time,
                 connect: Connector | None = None,
                 default_timetable: Timetable | None = None) -> None:
        self.settings = settings
        self.rules = rules if rules is not None else AlertRulesSettings()
        self.clock = clock
        # rules.default_timetable: the alerts' school hours are the rules' (common/timetable).
        self.directory = Directory(inventory, default_timetable)
        self._lock = threading.Lock()
        self.tracker = ConditionTracker(self.rules, self.directory, int(clock() * 1000))
        self.store = AlertStore(settings.state_path)
        self.renderer = MailRenderer(
            MailSettings(settings.from_, list(settings.to), settings.language,
                         settings.dashboard_url, self.rules.dashboard_path), self.directory)
        timing = Timing(
            group_wait_ms=int(settings.group_wait * 1000),
            group_interval_ms=int(settings.group_interval * 1000),
            repeat_interval_ms=int(settings.repeat_interval * 1000),
            resolve_timeout_ms=int(settings.resolve_timeout * 1000),
            send_resolved=settings.send_resolved)
        self.notifier = Notifier(self.store, timing, Inhibitor(self.rules.inhibit),
                                 self.renderer)
        self.quiet = QuietHours(self.rules.quiet_hours, self.rules.quiet_hours_timezone)
        self.sender = MailSender(
            settings.smtp, settings.from_, list(settings.to),
            connect or smtp_connector(settings.smtp, self.rules.smtp_timeout))
        self.tracker.watch(self.notifier.active_keys())
        self._tick_lock = threading.Lock()

    def observe(self, who: AgentIdentity, samples: list[Sample]) -> None:
        """SampleObserver: samples of one message, after they were stored."""
        now_ms = int(self.clock() * 1000)
        with self._lock:
            self.tracker.observe(who, samples, now_ms)

    def observe_status(self, who: AgentIdentity, status: str, ts_ms: int) -> None:
        """StatusObserver: an agent's "online" / "offline" (last will)."""
        with self._lock:
            self.tracker.observe_status(who, status, ts_ms)

    def tick(self, now: float | None = None) -> list[Notification]:
        """Evaluate at ``now`` (seconds), queue due mails, send the outbox; what was queued."""
        when = self.clock() if now is None else now
        now_ms = int(when * 1000)
        with self._tick_lock:
            with self._lock:
                evaluation = self.tracker.evaluate(now_ms)
            queued = self.notifier.tick(now_ms, evaluation, self.quiet.active(when))
            keys = self.notifier.active_keys()
            with self._lock:
                self.tracker.watch(keys)
            self._deliver()
        return queued

    def _deliver(self) -> None:
        items = self.store.outbox()
        if not items:
            return
        # Each accepted mail leaves the outbox at once (its own commit), not after the whole
        # SMTP session: a SIGKILL mid-session re-sends none of the mails already accepted.
        sent = self.sender.send(items, on_sent=self.store.sent)
        with self.store.transaction():
            for item_id in sent:
                self.store.sent(item_id)
            for item in items[len(sent):len(sent) + 1]:
                self.store.failed(item.id)

    def pending_mails(self) -> int:
        """Mails in the outbox."""
        with self._tick_lock:
            return len(self.store.outbox())

    def run(self, stop_event: threading.Event, interval: float = 10.0) -> None:
        """Tick every ``interval`` seconds until ``stop_event`` is set."""
        while not stop_event.is_set():
            try:
                self.tick()
            except Exception:  # a bug in one tick must not end alerting for good
                log.exception("alert tick failed")
            stop_event.wait(interval)

    def close(self) -> None:
        """Close the state file."""
        with self._tick_lock:
            self.store.close()
