"""The wire contract between agents and collectors: topics, envelope, sample kinds, limits.

Everything that crosses MQTT is defined here and nowhere else.  Decoding is written as plain
code (not per-sample pydantic) because the collector decodes tens of thousands of samples a
second; every failure raises exactly one type, :class:`WireError`, whose ``cause`` is a short
stable word used for counting and for the ``schoolmon_reject`` measurement.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

import orjson

from common.kinds import KINDS, FieldType, declared

VERSION: Final = 1
DEFAULT_PREFIX: Final = "schoolmon/v1"

# Limits, enforced on decode (and on encode, so an agent never builds what a collector rejects).
MAX_PAYLOAD_BYTES: Final = 256 * 1024
MAX_SAMPLES_PER_BATCH: Final = 1000
MAX_TAGS_PER_SAMPLE: Final = 16
MAX_FIELDS_PER_SAMPLE: Final = 32
MAX_NAME_LEN: Final = 64  # tag and field names
MAX_TAG_VALUE_LEN: Final = 128
MAX_STRING_FIELD_LEN: Final = 256
MAX_ID_LEN: Final = 64  # district, school, agent ids

# Use with fullmatch: Python's "$" also matches before a trailing newline.  (The patterns keep
# "^...$" because pydantic's regex engine, where "$" is the very end, reads them too.)
ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# These tags are added by the collector from the envelope; a sample may not set them.
RESERVED_TAGS: Final = frozenset({"district", "school", "agent"})
# Backslashes and control characters cannot be written safely as InfluxDB tag values; C1
# controls (U+0085 is a line break to many readers) and U+2028/U+2029 never belong in a name.
# As a regex character-class body: probes clean device names with it, settings are checked
# against TAG_PATTERN, and the collector refuses a batch whose tags hold any of it.
TAG_FORBIDDEN: Final = r"\\\x00-\x1f\x7f-\x9f\u2028\u2029"
TAG_PATTERN: Final = rf"^[^{TAG_FORBIDDEN}]{{1,{MAX_TAG_VALUE_LEN}}}$"
_BAD_TAG_CHARS: Final = re.compile(f"[{TAG_FORBIDDEN}]")

FieldValue = int | float | bool | str


class WireError(ValueError):
    """A message that does not follow the contract; ``cause`` is a short stable word."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


@dataclass(frozen=True)
class Sample:
    """One measurement at one time: an InfluxDB point without the agent identity tags."""

    kind: str
    ts_ms: int
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldValue] = field(default_factory=dict)

    def to_json_obj(self) -> dict[str, object]:
        """The sample as the JSON object of the envelope."""
        return {"kind": self.kind, "ts_ms": self.ts_ms, "tags": self.tags, "fields": self.fields}

    # The typed view: a reader names a declared field of its kind (KeyError if it is not one,
    # so a misspelt name fails in the first test) and gets its value typed, or None.
    def number(self, name: str) -> float | None:
        """A declared number field as a float; None when absent."""
        value = self.fields.get(declared(self.kind, name, "number"))
        return None if isinstance(value, bool | str) or value is None else float(value)

    def flag(self, name: str) -> bool | None:
        """A declared bool field; None when absent."""
        value = self.fields.get(declared(self.kind, name, "bool"))
        return value if isinstance(value, bool) else None

    def text(self, name: str) -> str | None:
        """A declared string field; None when absent."""
        value = self.fields.get(declared(self.kind, name, "string"))
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Envelope:
    """One batch of samples from one agent, as published on its data topic."""

    district: str
    school: str
    agent: str
    seq: int
    sent_ms: int
    samples: list[Sample]
    v: int = VERSION


@dataclass(frozen=True)
class AgentIdentity:
    """district/school/agent: who an agent is, as named in topics and envelopes."""

    district: str
    school: str
    agent: str


class Topics:
    """Topic names under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix.strip("/")
        self._depth = len(self.prefix.split("/"))

    def _agent(self, who: AgentIdentity) -> str:
        return f"{self.prefix}/{who.district}/{who.school}/{who.agent}"

    def data(self, who: AgentIdentity) -> str:
        """Agent -> collector batches."""
        return self._agent(who) + "/data"

    def status(self, who: AgentIdentity) -> str:
        """Retained online/offline (last will)."""
        return self._agent(who) + "/status"

    def ack(self, who: AgentIdentity) -> str:
        """Collector -> agent acknowledgements."""
        return self._agent(who) + "/ack"

    def shared_data_subscription(self, share_group: str) -> str:
        """What collectors subscribe to, sharing the load."""
        return f"$share/{share_group}/{self.prefix}/+/+/+/data"

    def data_filter(self, district: str = "+", share_group: str | None = None) -> str:
        """One district's (or, with "+", every district's) data, shared when a group is given."""
        topic = f"{self.prefix}/{district}/+/+/data"
        return topic if share_group is None else f"$share/{share_group}/{topic}"

    def status_filter(self, district: str = "+") -> str:
        """The retained statuses of one district's agents (or every district's)."""
        return f"{self.prefix}/{district}/+/+/status"

    def parse(self, topic: str) -> tuple[AgentIdentity, str]:
        """Split a topic into (identity, leaf); raises WireError('topic') if it is not ours."""
        parts = topic.split("/")
        if len(parts) != self._depth + 4 or "/".join(parts[: self._depth]) != self.prefix:
            raise WireError("topic", f"not a schoolmon topic: {topic[:200]!r}")
        district, school, agent, leaf = parts[self._depth :]
        for value in (district, school, agent):
            if not ID_RE.fullmatch(value):
                raise WireError("topic", f"bad id in topic: {value[:80]!r}")
        return AgentIdentity(district, school, agent), leaf


def encode_samples(samples: list[Sample]) -> bytes:
    """The JSON array of samples, as stored in the agent's spool."""
    check_samples(samples)
    try:
        return orjson.dumps([s.to_json_obj() for s in samples])
    except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate from surrogateescape
        raise WireError("bad_value", str(exc)[:200]) from None


def wrap_envelope(who: AgentIdentity, seq: int, sent_ms: int, samples_json: bytes) -> bytes:
    """Build the envelope around an already encoded samples array (no re-encoding)."""
    head = orjson.dumps(
        {"v": VERSION, "district": who.district, "school": who.school, "agent": who.agent,
         "seq": seq, "sent_ms": sent_ms}
    )
    return head[:-1] + b',"samples":' + samples_json + b"}"


def encode_envelope(env: Envelope) -> bytes:
    """Encode a whole envelope; raises WireError if it would break a limit."""
    who = AgentIdentity(env.district, env.school, env.agent)
    payload = wrap_envelope(who, env.seq, env.sent_ms, encode_samples(env.samples))
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    return payload


def check_samples(samples: list[Sample]) -> None:
    """Raise WireError if any sample breaks the contract."""
    if len(samples) > MAX_SAMPLES_PER_BATCH:
        raise WireError("too_many_samples", f"{len(samples)} > {MAX_SAMPLES_PER_BATCH}")
    for s in samples:
        _check_sample(s.kind, s.ts_ms, s.tags, s.fields)


def decode_envelope(payload: bytes) -> Envelope:
    """Parse and check a data message; raises WireError only."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:  # also covers invalid UTF-8
        raise WireError("json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise WireError("schema", "envelope is not an object")
    version = obj.get("v")
    if not isinstance(version, int) or isinstance(version, bool) or version != VERSION:
        raise WireError("version", f"v={str(obj.get('v'))[:20]!r}, expected {VERSION}")
    ids = [obj.get(k) for k in ("district", "school", "agent")]
    for key, value in zip(("district", "school", "agent"), ids, strict=True):
        if not isinstance(value, str) or not ID_RE.fullmatch(value):
            raise WireError("schema", f"{key} missing or not an id")
    seq, sent_ms = obj.get("seq"), obj.get("sent_ms")
    if not (isinstance(seq, int) and isinstance(sent_ms, int)) or isinstance(seq, bool) \
            or isinstance(sent_ms, bool) or seq < 0 or sent_ms < 0:
        raise WireError("schema", "seq and sent_ms must be non-negative integers")
    raw_samples = obj.get("samples")
    if not isinstance(raw_samples, list):
        raise WireError("schema", "samples is not a list")
    if len(raw_samples) > MAX_SAMPLES_PER_BATCH:
        raise WireError("too_many_samples", f"{len(raw_samples)} > {MAX_SAMPLES_PER_BATCH}")
    samples = [_decode_sample(raw) for raw in raw_samples]
    return Envelope(str(ids[0]), str(ids[1]), str(ids[2]), seq, sent_ms, samples)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode_sample(raw: object) -> Sample:
    if not isinstance(raw, dict):
        raise WireError("schema", "sample is not an object")
    kind, ts_ms = raw.get("kind"), raw.get("ts_ms")
    tags, fields = raw.get("tags", {}), raw.get("fields")
    if not isinstance(tags, dict) or not isinstance(fields, dict):
        raise WireError("schema", "tags and fields must be objects")
    _check_sample(kind, ts_ms, tags, fields)
    return Sample(cast(str, kind), cast(int, ts_ms), cast(dict[str, str], tags),
                  cast(dict[str, FieldValue], fields))


# Timestamps InfluxDB accepts in ms precision and that are plausible for a monitoring sample.
MIN_TS_MS: Final = 946_684_800_000  # 2000-01-01
MAX_TS_MS: Final = 4_102_444_800_000  # 2100-01-01


def _check_sample(kind: object, ts_ms: object, tags: Mapping[Any, object],
                  fields: Mapping[Any, object]) -> None:
    if not isinstance(kind, str) or kind not in KINDS:
        raise WireError("unknown_kind", f"kind {str(kind)[:40]!r}")
    if not _is_int(ts_ms) or not MIN_TS_MS <= ts_ms <= MAX_TS_MS:  # type: ignore[operator]
        raise WireError("bad_value", f"{kind}: ts_ms out of range")
    if len(tags) > MAX_TAGS_PER_SAMPLE or len(fields) > MAX_FIELDS_PER_SAMPLE:
        raise WireError("too_large", f"{kind}: too many tags or fields")
    _check_tags(kind, tags)
    if not fields:
        raise WireError("schema", f"{kind}: no fields")
    for name, expected, bounds in _field_plan(kind, tuple(fields)):
        value = fields[name]
        _check_field_value(kind, name, value)
        # A declared field of another type would make InfluxDB refuse the whole batch.
        if expected is not None and _field_type(value) != expected:
            raise WireError("bad_value", f"{kind}.{name}: must be a {expected}")
        if bounds is not None and not bounds[0] <= value <= bounds[1]:  # type: ignore[operator]
            raise WireError("out_of_range", f"{kind}.{name}: outside [{bounds[0]:g}, "
                                            f"{bounds[1]:g}]")


# The checks of a sample that depend only on its kind and its tags, or its kind and its field
# names, repeat in every batch of an agent: remembered once passed (the collector's hottest
# path, issue 11).  Bounded: a flood of new tag values only stops the remembering.
_MEMO_MAX: Final = 65_536
_TAGS_PASSED: set[tuple[str, tuple[tuple[object, object], ...]]] = set()
_FIELD_PLANS: dict[tuple[str, tuple[object, ...]],
                   list[tuple[str, FieldType | None, tuple[float, float] | None]]] = {}


def _check_tags(kind: str, tags: Mapping[Any, object]) -> None:
    try:
        key: tuple[str, tuple[tuple[object, object], ...]] | None = (kind, tuple(tags.items()))
        if key in _TAGS_PASSED:
            return
    except TypeError:  # an unhashable value (a list): checked below, refused there
        key = None
    allowed = KINDS[kind].tags
    for name, value in tags.items():
        if not isinstance(name, str) or name not in allowed:
            raise WireError("bad_tag", f"{kind}: tag {str(name)[:40]!r} not allowed")
        if (not isinstance(value, str) or not 0 < len(value) <= MAX_TAG_VALUE_LEN
                or _BAD_TAG_CHARS.search(value)):
            raise WireError("bad_tag", f"{kind}: tag {name} must be a short printable string")
    if key is not None and len(_TAGS_PASSED) < _MEMO_MAX:
        _TAGS_PASSED.add(key)


def _field_plan(kind: str, names: tuple[object, ...]
                ) -> list[tuple[str, FieldType | None, tuple[float, float] | None]]:
    """Each field name checked, with its declared type and bounds (remembered per kind)."""
    plan = _FIELD_PLANS.get((kind, names))
    if plan is not None:
        return plan
    spec = KINDS[kind]
    plan = []
    for name in names:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise WireError("bad_field", f"{kind}: field name {str(name)[:40]!r}")
        plan.append((name, spec.fields.get(name), spec.range_of(name)))
    if len(_FIELD_PLANS) < _MEMO_MAX:
        _FIELD_PLANS[(kind, names)] = plan
    return plan


def _field_type(value: object) -> FieldType:
    if isinstance(value, bool):
        return "bool"
    return "string" if isinstance(value, str) else "number"


def _check_field_value(kind: str, name: str, value: object) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise WireError("bad_value", f"{kind}.{name}: integer out of int64 range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise WireError("bad_value", f"{kind}.{name}: not finite")
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING_FIELD_LEN:
            raise WireError("bad_value", f"{kind}.{name}: string too long")
        return
    raise WireError("bad_value", f"{kind}.{name}: type {type(value).__name__} not allowed")


@dataclass(frozen=True)
class Ack:
    """The collector's answer to an agent: seqs stored, and seqs it will never accept.

    ``rejected`` names batches the collector refuses for good (too large, a newer wire
    version, malformed): the agent drops them from its spool, counts their samples in
    ``dropped_total`` and moves on, so one poison batch can never block delivery.
    """

    acked: list[tuple[int, int]]
    rejected: list[tuple[int, str]] = field(default_factory=list)


def encode_ack(ranges: list[tuple[int, int]],
               rejected: list[tuple[int, str]] | None = None) -> bytes:
    """The collector's ack naming stored seqs as inclusive ranges (and refused seqs with why)."""
    obj: dict[str, object] = {"v": VERSION, "acked": [[a, b] for a, b in ranges]}
    if rejected:
        obj["rejected"] = [[seq, cause] for seq, cause in rejected]
    return orjson.dumps(obj)


def decode_ack(payload: bytes) -> Ack:
    """Parse an ack; raises WireError."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise WireError("json", str(exc)[:200]) from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION or not isinstance(
        obj.get("acked"), list
    ):
        raise WireError("schema", "ack must be {'v': 1, 'acked': [[first, last], ...]}")
    ranges: list[tuple[int, int]] = []
    for item in obj["acked"]:
        if (not isinstance(item, list) or len(item) != 2 or not all(_is_int(x) for x in item)
                or item[0] > item[1]):
            raise WireError("schema", "ack range must be [first, last] with first <= last")
        ranges.append((item[0], item[1]))
    rejected: list[tuple[int, str]] = []
    raw_rejected = obj.get("rejected", [])
    if not isinstance(raw_rejected, list):
        raise WireError("schema", "ack 'rejected' must be [[seq, cause], ...]")
    for item in raw_rejected:
        if (not isinstance(item, list) or len(item) != 2 or not _is_int(item[0])
                or not isinstance(item[1], str) or len(item[1]) > MAX_NAME_LEN):
            raise WireError("schema", "ack 'rejected' entry must be [seq, cause]")
        rejected.append((item[0], item[1]))
    return Ack(ranges, rejected)


def to_ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Compress seq numbers into sorted inclusive ranges."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges
