"""Turns one MQTT data message into points to store, or a reject with its cause."""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Final

import orjson

from collector.clocks import ClockBook
from collector.measurements import REJECT
from collector.storage.lineprotocol import format_line, line_maker
from common.wire import (
    MAX_PAYLOAD_BYTES,
    AgentIdentity,
    Sample,
    Topics,
    WireError,
    decode_batch,
)

log = logging.getLogger(__name__)

# The head of an envelope exactly as agents write it (common.wire.wrap_envelope: orjson,
# this key order), up to the seq.  Anchored at the first byte, so it can only match the
# top-level seq, never a "seq" inside a sample or a string; ids are at most 64 characters,
# so the head is within the first 400 bytes.
_HEAD_RE = re.compile(
    rb'\A\s*\{\s*"v"\s*:\s*\d{1,9}\s*,\s*"district"\s*:\s*"[^"\\]{1,64}"\s*,'
    rb'\s*"school"\s*:\s*"[^"\\]{1,64}"\s*,\s*"agent"\s*:\s*"[^"\\]{1,64}"\s*,'
    rb'\s*"seq"\s*:\s*(\d{1,18})\s*[,}]')
_HEAD_BYTES = 400


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid batch: its points and the seq to acknowledge to the agent.

    ``extra_lines`` are the collector's own points that came with it (the agent's clock): not
    part of the batch's identity (collector/inflight.py's key), so a resend is still the same.
    """

    who: AgentIdentity
    seq: int
    lines: list[str]
    samples: list[Sample]
    extra_lines: tuple[str, ...] = ()


# A frozen dataclass's __init__ costs ~1 us through object.__setattr__; one is made per message
# (issue 11), so validate fills the slots directly.
_ACCEPTED_SLOTS: Final = tuple(Accepted.__dict__[n].__set__ for n in (
    "who", "seq", "lines", "samples", "extra_lines"))


def _accepted(who: AgentIdentity, seq: int, lines: list[str], samples: list[Sample],
              extra: tuple[str, ...]) -> Accepted:
    accepted: Accepted = object.__new__(Accepted)
    set_who, set_seq, set_lines, set_samples, set_extra = _ACCEPTED_SLOTS
    set_who(accepted, who)
    set_seq(accepted, seq)
    set_lines(accepted, lines)
    set_samples(accepted, samples)
    set_extra(accepted, extra)
    return accepted


@dataclass(frozen=True)
class Rejected:
    """A message that will never become valid; stored as a ``schoolmon_reject`` point.

    ``seq`` is the batch's seq when it could be recovered (then the topic's agent is told, in
    its ack's ``rejected``, to drop the batch instead of resending it for ever).
    """

    cause: str
    detail: str
    who: AgentIdentity | None
    seq: int | None = None


def validate(topics: Topics, topic: str, payload: bytes, clocks: ClockBook | None = None,
             recv_ms: int = 0, *, window: TimeWindow | None = None) -> Accepted | Rejected:
    """Decode and check a data message, including topic == payload identity.

    With ``clocks``, the message (received at ``recv_ms``) updates its agent's clock offset and
    its samples come back corrected when that agent's clock is wrong; with ``recv_ms``, a
    batch with a (corrected) timestamp outside ``window`` of it is rejected.
    """
    who: AgentIdentity | None = None
    try:
        who, leaf = topics.parse(topic)
        if leaf != "data":
            raise WireError("topic", f"not a data topic: {leaf!r}")
        env, lines = decode_batch(payload, line_maker(who))
        if env.agent != who.agent or env.school != who.school or env.district != who.district:
            raise WireError(
                "identity",
                f"payload says {env.district}/{env.school}/{env.agent}, topic says "
                f"{who.district}/{who.school}/{who.agent}",
            )
    except WireError as exc:
        # The seq only matters with an identity from the topic (the authenticated sender):
        # an ack never goes to an identity a payload names.
        seq = recover_seq(payload) if who is not None else None
        return Rejected(exc.cause, exc.detail, who, seq)
    samples = env.samples
    extra: tuple[str, ...] = ()
    if clocks is not None:
        fix = clocks.correct(who, env.sent_ms, recv_ms, samples)
        if fix.samples is not samples:
            lines = _restamped(lines, samples, fix.samples)
        samples, extra = fix.samples, fix.lines
    if recv_ms:  # after the correction: the window applies to the collector's clock
        outside = check_window(who, env.seq, samples, recv_ms, window or TimeWindow())
        if outside is not None:
            return outside
    return _accepted(who, env.seq, lines, samples, extra)


def _restamped(lines: list[str], before: list[Sample], after: list[Sample]) -> list[str]:
    """The lines with the corrected samples' timestamps (the last item of a line)."""
    return [line if old.ts_ms == new.ts_ms else f"{line[:line.rindex(' ')]} {new.ts_ms}"
            for line, old, new in zip(lines, before, after, strict=True)]


# A few minutes ahead covers what clock correction leaves (transit, drift below RESYNC_MS).
DEFAULT_MAX_FUTURE_MS: Final = 5 * 60_000


@dataclass(frozen=True)
class TimeWindow:
    """How far from the collector's clock a (clock-corrected) sample may be.

    ``max_age_ms`` None: no bound into the past (the collector sets it from
    ``write.max_sample_age``: the agents' spool max_age plus a day, by default).
    """

    max_age_ms: int | None = None
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS


def check_window(who: AgentIdentity, seq: int, samples: list[Sample], now_ms: int,
                 window: TimeWindow = TimeWindow()) -> Rejected | None:
    """The batch's reject when a sample's timestamp, after clock correction, is out of window.

    A sample dated in the future would freeze the rules' newest state (a 2100 "internet up")
    and open a new InfluxDB shard whose field types an attacker fixes first; one too old
    rewrites history.  The whole batch is refused once.  A batch too old is named in the
    agent's ack (its spool would evict it anyway); a future one is not: the agent resends it,
    and by then a wrong clock's correction may be confirmed and the batch land.
    """
    latest = now_ms + window.max_future_ms
    earliest = -math.inf if window.max_age_ms is None else now_ms - window.max_age_ms
    for s in samples:
        if s.ts_ms > latest:
            return Rejected("future", f"{s.kind}: ts_ms {s.ts_ms} is "
                            f"{(s.ts_ms - now_ms) // 1000} s ahead of the collector", who)
        if s.ts_ms < earliest:
            return Rejected("too_old", f"{s.kind}: ts_ms {s.ts_ms} is "
                            f"{(now_ms - s.ts_ms) // 86_400_000} days old", who, seq)
    return None


def recover_seq(payload: bytes) -> int | None:
    """The top-level ``seq`` of a rejected envelope, or None when it cannot be known for sure.

    First the anchored head of the agents' own format (cheap, and the only way for a payload
    too large to parse or not valid JSON as a whole); then, for a payload within the size
    limit, a parse that only looks at the top-level object.
    """
    match = _HEAD_RE.match(payload[:_HEAD_BYTES])
    if match is not None:
        return int(match.group(1))
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    seq = obj.get("seq") if isinstance(obj, dict) else None
    if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63:
        return seq
    return None


@dataclass
class RejectCounter:
    """Counts rejects per cause and logs each cause at most once per ``log_every`` seconds.

    ``collector`` (the collector's client id, unique among connected collectors) is a tag of
    every reject point: timestamps are only unique within one process, so without it two
    collectors rejecting in the same millisecond would write the same series and time, and
    InfluxDB would keep one point of the two.
    """

    collector: str = ""
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
        if self.collector:
            tags["collector"] = self.collector
        if reject.who is not None:
            tags.update(district=reject.who.district, school=reject.who.school,
                        agent=reject.who.agent)
        return format_line(REJECT.name, tags,
                           {"count": 1, "detail": reject.detail[:200]}, ts_ms)
