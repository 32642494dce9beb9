"""The collector's delivery loop: MQTT in, InfluxDB out, acks only after the write.

The data session's thread (collector/mqtt_session.py) only hands the messages of each read
over (collector/inflight.py counts their bytes at once); a validator thread takes every
waiting message at once, validates them and queues the batch; one writer thread takes
messages in batches, writes their points, and only then sends the MQTT PUBACK and the agent's
ack.  While storage is down the writer keeps retrying and acks nothing, so the broker and the
agents keep every message.  Rejected messages are written as ``schoolmon_reject`` points and
acked with the batch they came in (they will never become valid by retrying); when the
topic's agent and the batch's seq are known, its ack names the seq in ``rejected`` so the
agent drops the batch instead of resending it for ever.  The queue between the threads
(collector/inflight.py) is bounded in messages and bytes, from a message's arrival to its
ack, and writes a resent batch only once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from collector.clocks import ClockBook, restore_clocks
from collector.collector_stats import stats_line
from collector.config import CollectorConfig
from collector.inflight import Delivery, Inbound, InflightQueue, Offer, Raw, batch_key
from collector.late import late_lines
from collector.mqtt_codec import Publish, SubAck
from collector.mqtt_session import DataSession
from collector.storage import PointWriter
from collector.storage.resilient import ResilientWriter
from collector.turnstile import Turnstile
from collector.validate import Accepted, RejectCounter, Rejected, TimeWindow, validate
from common.wire import AgentIdentity, Sample, Topics, WireError, encode_ack, to_ranges

log = logging.getLogger(__name__)

# Called in the writer thread after the samples of one message are stored (so a rule never
# sees a sample that is not in InfluxDB). Must be quick and must not raise.
SampleObserver = Callable[[AgentIdentity, list[Sample]], None]
# Called with an agent's retained status ("online"/"offline", the last will) and when it came.
StatusObserver = Callable[[AgentIdentity, str, int], None]


class Collector:
    """Subscribes, validates, stores and acknowledges."""

    def __init__(self, config: CollectorConfig, writer: PointWriter, *,
                 observers: list[SampleObserver] | None = None,
                 status_observers: list[StatusObserver] | None = None,
                 data_filters: list[str] | None = None,
                 status_filters: list[str] | None = None) -> None:
        self.config = config
        self.observers = list(observers or [])
        self.status_observers = list(status_observers or [])
        self.topics = Topics(config.mqtt.topic_prefix)
        # What to subscribe to (collector/sharding.py: a shard's districts, shared or not);
        # default: every district's data in the share group.
        self.data_filters = data_filters or [self._default_data_filter()]
        self.status_filters = status_filters or [self.topics.status_filter()]
        self.stop_event = threading.Event()
        self.storage = ResilientWriter(writer, self.stop_event,
                                       max_delay=config.write.max_retry_delay,
                                       name=config.mqtt.effective_client_id())
        self.rejects = RejectCounter(collector=config.mqtt.effective_client_id())
        self.accepted_messages = 0
        # Agents' clock offsets (collector/clocks.py): only the validator thread corrects.
        self.clocks = ClockBook(config.clocks)
        max_age = config.write.max_sample_age
        self._window = TimeWindow(max_age_ms=int(max_age * 1000) if max_age else None)
        self.connected = threading.Event()
        self.queue = InflightQueue(config.write.queue_messages, config.write.queue_bytes,
                                   window=config.mqtt.receive_maximum
                                   if config.mqtt.protocol == "v5" else None)
        # How long the data session's thread may wait for room in the queue (back-pressure on
        # the broker) before it lets a message go: well within the broker's 1.5 x keepalive,
        # as nothing is sent to the broker while that thread waits.
        self._offer_wait = min(5.0, config.mqtt.keepalive / 3)
        self._last_shed_log = -1e18
        self._generation = 0  # connections so far: a PUBACK is only valid on its own
        self._session: DataSession | None = None
        # Several writers: InfluxDB stores one batch while the next is assembled and sent (one
        # writer left both idle half the time, issue 11); observers still see one batch at a
        # time (self._deliver_lock).
        self._writer_threads = [
            threading.Thread(target=self._write_loop, name=f"writer-{n}", daemon=True)
            for n in range(1, self.writer_count() + 1)]
        self._deliver_lock = threading.Lock()
        # Batches are observed in the order they were taken, whichever write ends first.
        self._turns = Turnstile(self.stop_event)
        self._validator_thread = threading.Thread(target=self._validate_loop,
                                                  name="validator", daemon=True)
        self._stats_thread = threading.Thread(target=self._stats_loop, name="stats",
                                              daemon=True)
        self._own_write_lock = threading.Lock()
        self._data_sub: tuple[int, str] = (-1, "")

    def start(self) -> None:
        """Connect and start the writer thread."""
        cfg = self.config.mqtt
        self._session = DataSession(cfg, cfg.effective_client_id(), self,
                                    session_expiry_s=cfg.session_expiry,
                                    receive_maximum=cfg.receive_maximum)
        # Before the first message: a backlog arriving at once is corrected like the rest.
        restore_clocks(self.clocks, self.config.storage)
        for thread in self._writer_threads:
            thread.start()
        self._validator_thread.start()
        if self.config.write.stats_interval > 0:
            self._stats_thread.start()
        self._session.start()

    def stop(self) -> None:
        """Stop writing and leave the share group (agents resend what was not acked)."""
        self.stop_event.set()
        for thread in (self._validator_thread, *self._writer_threads, self._stats_thread):
            if thread.is_alive():
                thread.join(timeout=10)
        if self._session is not None:
            # Ending the session at once takes this collector out of the share group now:
            # Mosquitto would otherwise keep routing its share to the stopped session.
            self._session.stop(end_session=True)

    # -- the data session's callbacks (collector/mqtt_session.py), in its thread -------------

    def on_connected(self, generation: int, session_present: bool) -> None:
        """Subscribe on every new connection (a resumed session has them, a new one not)."""
        log.info("collector connected to %s:%s", self.config.mqtt.host, self.config.mqtt.port)
        self._generation = generation
        session = self._session
        assert session is not None
        if self.status_observers:
            # Not shared: the collector running rules and alerts must see every agent's status.
            session.subscribe(self.status_filters)
        # One SUBSCRIBE for every filter: one SUBACK says the collector is receiving.
        self._data_sub = (session.subscribe(self.data_filters), ", ".join(self.data_filters))

    def on_refused(self, line: str) -> None:
        """A protocol the broker does not speak: say so once and stop (a retry cannot help)."""
        log.error("%s", line)
        os.kill(os.getpid(), signal.SIGTERM)  # the process's ordinary, clean stop

    def resubscribe_statuses(self) -> None:
        """Subscribe to the status filters again: the broker re-sends every retained status.

        For observers added after start (a standby taking over, collector/lease.py).
        """
        if self._session is not None:
            self._session.subscribe(self.status_filters)

    def _default_data_filter(self) -> str:
        if self.config.mqtt.protocol == "v311":
            # MQTT 3.1.1 has no shared subscriptions: one collector per broker session, its
            # queue kept by the broker while it is away (docs/scaling.md, clustered broker).
            return self.topics.data_filter()
        return self.topics.data_filter(share_group=self.config.mqtt.share_group)

    def on_suback(self, suback: SubAck) -> None:
        """``connected`` means "receiving": set once the broker confirmed the data subscription.

        (The status subscription, when there is one, was sent before it.)
        """
        if suback.mid != self._data_sub[0]:
            return
        if any(code >= 0x80 for code in suback.codes):
            log.error("broker refused the subscription %s: codes %s", self._data_sub[1],
                      ", ".join(f"0x{c:02x}" for c in suback.codes))
            return
        log.info("subscribed to %s", self._data_sub[1])
        self.connected.set()

    def on_disconnected(self, reason: str) -> None:
        """The session reconnects by itself; unacked messages come again."""
        if self.connected.is_set() and not self.stop_event.is_set():
            log.warning("collector disconnected from broker: %s; will reconnect", reason)
        self.connected.clear()

    def on_publishes(self, publishes: list[Publish], generation: int) -> None:
        """Hand data messages to the queue in one lock round; statuses to their observers."""
        session = self._session
        assert session is not None
        recv_ms = int(time.time() * 1000)
        raws = []
        for msg in publishes:
            if msg.topic.endswith("/status"):
                self._on_status(msg, generation, recv_ms)
            else:
                raws.append(Raw(msg.topic, msg.payload, recv_ms,
                                Delivery(msg.mid, msg.qos, generation)))
        # Blocks this thread while the writer is behind: back-pressure on the broker.
        taken = self.queue.receive_many(raws, self._offer_wait)
        if taken == len(raws):
            return
        # Let the rest go: PUBACKed, the broker forgets them; not acked to the agent, which
        # keeps the batch and resends it after its ack_timeout.  Memory stays bounded.
        shed = raws[taken:]
        session.ack_many([r.delivery.mid for r in shed if r.delivery.qos], generation)
        self._log_shed(len(shed), f" (the last on {shed[-1].topic})")

    def _log_shed(self, count: int, last: str) -> None:
        now = time.monotonic()
        if now - self._last_shed_log >= 60:  # both threads may shed: a rare double line is fine
            self._last_shed_log = now
            stats = self.queue.stats
            log.warning("write queue full (%d of %d bytes): %d messages%s are left to their "
                        "agents' resend [%d so far]", stats.bytes_held,
                        self.config.write.queue_bytes, count, last, stats.shed)

    def _validate_loop(self) -> None:
        topics, clocks, window = self.topics, self.clocks, self._window
        while not self.stop_event.is_set():
            raws = self.queue.intake(0.2)
            if not raws:
                continue
            items = []
            for raw in raws:
                try:
                    result: Accepted | Rejected = validate(
                        topics, raw.topic, raw.payload, clocks, raw.recv_ms, window=window)
                except Exception as exc:  # a bug must not stop the thread (nothing would move)
                    log.exception("validating a message on %s failed", raw.topic)
                    result = Rejected("internal", f"{type(exc).__name__}: {exc}"[:200], None)
                items.append(Inbound(result, len(raw.payload), [raw.delivery],
                                     batch_key(result), raw.probation))
            shed = []
            for item, outcome in zip(items, self.queue.offer_many(items), strict=True):
                if outcome is Offer.STORED:
                    self._ack_stored_resend(item)
                elif outcome is Offer.FULL:  # new, taken on probation, and still no room
                    shed.append(item)
            if shed:
                session = self._session
                assert session is not None
                for item in shed:
                    ack_deliveries(session, item.deliveries)
                self._log_shed(len(shed), "")

    def _ack_stored_resend(self, item: Inbound) -> None:
        """A resend of a batch already stored: acknowledge it again, write nothing."""
        session = self._session
        assert session is not None
        ack_deliveries(session, item.deliveries)
        result = item.result
        if isinstance(result, Accepted):
            session.publish(self.topics.ack(result.who), encode_ack([(result.seq, result.seq)]))
        elif result.who is not None and result.seq is not None:
            session.publish(self.topics.ack(result.who),
                            encode_ack([], rejected=[(result.seq, result.cause)]))

    def _on_status(self, msg: Publish, generation: int, recv_ms: int) -> None:
        try:
            who, _leaf = self.topics.parse(msg.topic)
            status = msg.payload.decode("ascii")
        except (WireError, UnicodeDecodeError):
            status = ""
        if msg.qos > 0 and self._session is not None:
            self._session.ack(msg.mid, generation)
        if status not in ("online", "offline"):
            return
        for observe in self.status_observers:
            try:
                observe(who, status, recv_ms)
            except Exception:  # an observer bug must never stop delivery
                log.exception("status observer failed")

    def write_points(self, lines: list[str]) -> bool:
        """Store points the collector made itself (compliance, alert events), with retries."""
        with self._own_write_lock:
            return self.storage.write(lines)

    def _stats_loop(self) -> None:
        interval = self.config.write.stats_interval
        while not self.stop_event.wait(interval):
            self.write_points([stats_line(
                self.config.mqtt.effective_client_id(), self.accepted_messages,
                self.queue.stats, self.storage.stats, int(time.time() * 1000))])

    def writer_count(self) -> int:
        """How many writer threads this collector runs."""
        return self.config.write.writers

    def _write_loop(self) -> None:
        wcfg = self.config.write

        def take() -> list[Inbound]:
            return self.queue.take(wcfg.batch_points, wcfg.flush_interval, 0.2)
        while not self.stop_event.is_set():
            batch, ticket = self._turns.take(take)
            if batch:
                self._deliver(batch, ticket)

    def _deliver(self, batch: list[Inbound], ticket: int) -> None:
        lines: list[str] = []
        seqs: dict[AgentIdentity, list[int]] = defaultdict(list)
        rejected: dict[AgentIdentity, list[tuple[int, str]]] = defaultdict(list)
        for item in batch:
            result = item.result
            if isinstance(result, Accepted):
                lines.extend(result.lines)
                lines.extend(result.extra_lines)
                seqs[result.who].append(result.seq)
            else:
                with self._deliver_lock:  # unique reject timestamps across writers
                    lines.append(self.rejects.record(result))
                if result.who is not None and result.seq is not None:
                    rejected[result.who].append((result.seq, result.cause))
        # Backlogs, for a rules restore from a state snapshot (collector/late.py).
        lines.extend(late_lines(((i.result.who, i.result.samples) for i in batch
                                 if isinstance(i.result, Accepted)), int(time.time() * 1000)))
        if not self.storage.write(lines):
            return  # stopping: nothing acked, the broker and the agents still hold it all
        session = self._session
        assert session is not None
        ack_deliveries(session, self.queue.done(batch))  # with resends that joined meanwhile
        ack_topic = self.topics.ack
        session.publish_many(
            [(ack_topic(who), encode_ack(to_ranges(agent_seqs), rejected.get(who)))
             for who, agent_seqs in seqs.items()]
            + [(ack_topic(who), encode_ack([], causes))
               for who, causes in rejected.items() if who not in seqs])
        if not self._turns.wait_turn(ticket):
            return
        with self._deliver_lock:
            self.accepted_messages += sum(len(s) for s in seqs.values())
            self._observe(batch)
        self._turns.done(ticket)

    def _observe(self, batch: list[Inbound]) -> None:
        """Hand a stored batch to the observers (rules, alerts); with _deliver_lock held."""
        for item in batch:
            if isinstance(item.result, Accepted):
                for observe in self.observers:
                    try:
                        observe(item.result.who, item.result.samples)
                    except Exception:  # an observer bug must never stop delivery
                        log.exception("sample observer failed")


def ack_deliveries(session: DataSession, deliveries: list[Delivery]) -> None:
    """PUBACK the QoS 1 messages, each on the connection it came on (per generation)."""
    by_generation: dict[int, list[int]] = defaultdict(list)
    for d in deliveries:
        if d.qos:
            by_generation[d.generation].append(d.mid)
    for generation, mids in by_generation.items():
        session.ack_many(mids, generation)


def build_writer(config: CollectorConfig) -> PointWriter:
    """The writer the storage settings ask for (nothing connects yet)."""
    from collector.config import Influx1Storage

    if isinstance(config.storage, Influx1Storage):
        from collector.storage.influx1 import Influx1Writer

        return Influx1Writer(config.storage)
    from collector.storage.influx2 import Influx2Writer

    return Influx2Writer(config.storage)
