"""Turns one MQTT data message into points to store, or a reject with its cause."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from collector.storage.lineprotocol import format_line, identity_tags, sample_line
from common.wire import AgentIdentity, Sample, Topics, WireError, decode_envelope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """A valid batch: its points and the seq to acknowledge to the agent."""

    who: AgentIdentity
    seq: int
    lines: list[str]
    samples: list[Sample]


@dataclass(frozen=True)
class Rejected:
    """A message that will never become valid; stored as a ``schoolmon_reject`` point."""

    cause: str
    detail: str
    who: AgentIdentity | None


def validate(topics: Topics, topic: str, payload: bytes) -> Accepted | Rejected:
    """Decode and check a data message, including topic == payload identity."""
    who: AgentIdentity | None = None
    try:
        who, leaf = topics.parse(topic)
        if leaf != "data":
            raise WireError("topic", f"not a data topic: {leaf!r}")
        env = decode_envelope(payload)
        if (env.district, env.school, env.agent) != (who.district, who.school, who.agent):
            raise WireError(
                "identity",
                f"payload says {env.district}/{env.school}/{env.agent}, topic says "
                f"{who.district}/{who.school}/{who.agent}",
            )
    except WireError as exc:
        return Rejected(exc.cause, exc.detail, who)
    ident = identity_tags(who)
    return Accepted(who, env.seq, [sample_line(s, who, ident) for s in env.samples],
                    env.samples)


@dataclass
class RejectCounter:
    """Counts rejects per cause and logs each cause at most once per ``log_every`` seconds."""

    log_every: float = 60.0
    counts: dict[str, int] = field(default_factory=dict)
    _last_logged: dict[str, float] = field(default_factory=dict)
    _last_ts_ms: int = 0

    def record(self, reject: Rejected, now: float | None = None) -> str:
        """Count the reject, maybe log it, and return its ``schoolmon_reject`` point."""
        now = time.time() if now is None else now
        self.counts[reject.cause] = self.counts.get(reject.cause, 0) + 1
        if now - self._last_logged.get(reject.cause, -1e18) >= self.log_every:
            self._last_logged[reject.cause] = now
            where = "/".join((reject.who.district, reject.who.school, reject.who.agent)) \
                if reject.who else "unknown sender"
            log.warning("rejected message (%s) from %s: %s [%d so far with this cause]",
                        reject.cause, where, reject.detail, self.counts[reject.cause])
        # One point per reject: make timestamps unique so two rejects in one ms both count.
        ts_ms = max(int(now * 1000), self._last_ts_ms + 1)
        self._last_ts_ms = ts_ms
        tags = {"cause": reject.cause}
        if reject.who is not None:
            tags.update(district=reject.who.district, school=reject.who.school,
                        agent=reject.who.agent)
        return format_line("schoolmon_reject", tags,
                           {"count": 1, "detail": reject.detail[:200]}, ts_ms)
