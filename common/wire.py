"""The wire contract between agents and collectors: topics, envelope, sample kinds, limits.

Everything that crosses MQTT is defined here and nowhere else.  Decoding is written as plain
code (not per-sample pydantic) because the collector decodes tens of thousands of samples a
second; every failure raises exactly one type, :class:`WireError`, whose ``cause`` is a short
stable word used for counting and for the ``schoolmon_reject`` measurement.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

import orjson

from common.kinds import KINDS, Bounds, FieldType, declared

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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Envelope:
    """One batch of samples from one agent, as published on its data topic."""

    district: str
    school: str
    agent: str
    seq: int
    sent_ms: int
    samples: list[Sample]
    v: int = VERSION


# A frozen dataclass's __init__ sets each field through object.__setattr__ (~0.8 us a sample,
# issue 11); the decoder, whose values are all checked, fills the slots directly instead.
_new = object.__new__
_SAMPLE_SLOTS: Final = tuple(Sample.__dict__[n].__set__
                             for n in ("kind", "ts_ms", "tags", "fields"))
_ENVELOPE_SLOTS: Final = tuple(Envelope.__dict__[n].__set__ for n in (
    "district", "school", "agent", "seq", "sent_ms", "samples", "v"))


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """district/school/agent: who an agent is, as named in topics and envelopes.

    Its hash is computed once: the collector looks identities up several times per message
    (queue keys, clocks, acks, rules), and a dataclass hash is a Python call over three fields
    each time (3 % of a collector's busy time, issue 11).
    """

    district: str
    school: str
    agent: str
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.district, self.school, self.agent)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[AgentIdentity], tuple[str, str, str]]:
        # A string's hash differs between processes: a copy recomputes its own.
        return AgentIdentity, (self.district, self.school, self.agent)


class Topics:
    """Topic names under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix.strip("/")
        self._depth = len(self.prefix.split("/"))
        # Every message of an agent names the same topic: parsed once (bounded, issue 11).
        self._parsed: dict[str, tuple[AgentIdentity, str]] = {}

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
        parsed = self._parsed.get(topic)
        if parsed is not None:
            return parsed
        parts = topic.split("/")
        if len(parts) != self._depth + 4 or "/".join(parts[: self._depth]) != self.prefix:
            raise WireError("topic", f"not a schoolmon topic: {topic[:200]!r}")
        district, school, agent, leaf = parts[self._depth :]
        for value in (district, school, agent):
            if not ID_RE.fullmatch(value):
                raise WireError("topic", f"bad id in topic: {value[:80]!r}")
        parsed = AgentIdentity(district, school, agent), leaf
        if len(self._parsed) < _MEMO_MAX:
            self._parsed[topic] = parsed
        return parsed


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
        check_fields(_check_sample(s.kind, s.ts_ms, s.tags, s.fields), s.ts_ms, s.fields)


_T = TypeVar("_T")
TagItems = tuple[tuple[str, str], ...]
# One field's rule, compiled from its kind's declaration (the contract stays in common/kinds.py
# and the limits above): the values of each Python type it accepts, as cheap comparisons.
# (name, floats in [flo, fhi], ints in [ilo, ihi], bools accepted, strs up to smax characters,
#  declared type, bounds).  An empty range (flo > fhi, ilo > ihi, smax -1) accepts none; a
# value not accepted goes to check_value, the one place that says why it is refused.
FieldRule = tuple[str, float, float, int, int, bool, int, FieldType | None, Bounds | None]
FieldPlan = tuple[FieldRule, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """What a sample's checks depend on besides its time and values: kind, tags, field names.

    One object per shape seen (remembered, bounded), compared and hashed by identity: consumers
    key their own memos on it cheaply.
    """

    kind: str
    tags: TagItems
    plan: FieldPlan  # in the order of the sample's fields


# Checks one sample's field values against its shape's plan (raising WireError as check_value
# does) and makes of the sample what its caller needs: nothing (check_fields), or its line.
FieldsHook = Callable[[Shape, int, Mapping[str, FieldValue]], _T]


def decode_envelope(payload: bytes) -> Envelope:
    """Parse and check a data message; raises WireError only."""
    return decode_batch(payload, check_fields)[0]


def decode_batch(payload: bytes, fields_hook: FieldsHook[_T]) -> tuple[Envelope, list[_T]]:
    """Parse and check a data message, and what ``fields_hook`` made of each sample.

    ``fields_hook`` checks the field values (check_fields does only that): the collector's
    formats each sample's line in the same pass (collector/storage/lineprotocol.py).
    """
    env: Envelope = _new(Envelope)
    raw_samples = _decode_head(payload, env)
    samples: list[Sample] = []
    made: list[_T] = []
    raw: Any
    kind: Any
    ts_ms: Any
    set_kind, set_ts, set_tags, set_fields = _SAMPLE_SLOTS
    for raw in raw_samples:
        if not isinstance(raw, dict):
            raise WireError("schema", "sample is not an object")
        kind, ts_ms = raw.get("kind"), raw.get("ts_ms")
        tags, fields = raw.get("tags", {}), raw.get("fields")
        if not isinstance(tags, dict) or not isinstance(fields, dict):
            raise WireError("schema", "tags and fields must be objects")
        try:
            shape = _SHAPES.get((kind, tuple(tags.items()), tuple(fields)))
        except TypeError:  # unhashable: refused by _check_sample
            shape = None
        if shape is None or type(ts_ms) is not int or not MIN_TS_MS <= ts_ms <= MAX_TS_MS:
            shape = _check_sample(kind, ts_ms, tags, fields)
        made.append(fields_hook(shape, ts_ms, fields))
        sample: Sample = _new(Sample)
        set_kind(sample, kind)
        set_ts(sample, ts_ms)
        set_tags(sample, tags)
        set_fields(sample, fields)
        samples.append(sample)
    _ENVELOPE_SLOTS[5](env, samples)
    return env, made


def _decode_head(payload: bytes, env: Envelope) -> list[Any]:
    """Check the envelope around the samples, fill ``env`` but its samples, return those."""
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
    district, school, agent = obj.get("district"), obj.get("school"), obj.get("agent")
    if not (type(district) is str and type(school) is str and type(agent) is str
            and district in _IDS_PASSED and school in _IDS_PASSED and agent in _IDS_PASSED):
        for key, value in (("district", district), ("school", school), ("agent", agent)):
            if not _is_id(value):
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
    set_district, set_school, set_agent, set_seq, set_sent, _, set_v = _ENVELOPE_SLOTS
    set_district(env, district)
    set_school(env, school)
    set_agent(env, agent)
    set_seq(env, seq)
    set_sent(env, sent_ms)
    set_v(env, version)
    return raw_samples


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: object) -> bool:
    """A district, school or agent id (those that passed are remembered: they repeat)."""
    if type(value) is str and value in _IDS_PASSED:
        return True
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        return False
    if len(_IDS_PASSED) < _MEMO_MAX:
        _IDS_PASSED.add(value)
    return True


# Timestamps InfluxDB accepts in ms precision and that are plausible for a monitoring sample.
MIN_TS_MS: Final = 946_684_800_000  # 2000-01-01
MAX_TS_MS: Final = 4_102_444_800_000  # 2100-01-01


def _check_sample(kind: object, ts_ms: object, tags: Mapping[Any, object],
                  fields: Mapping[Any, object]) -> Shape:
    """Everything but the field values (the caller's FieldsHook checks them): their Shape."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise WireError("unknown_kind", f"kind {str(kind)[:40]!r}")
    if not _is_int(ts_ms) or not MIN_TS_MS <= ts_ms <= MAX_TS_MS:  # type: ignore[operator]
        raise WireError("bad_value", f"{kind}: ts_ms out of range")
    tag_items, names = tuple(tags.items()), tuple(fields)
    try:
        shape = _SHAPES.get((kind, tag_items, names))
    except TypeError:  # an unhashable tag value (a list): refused below
        shape = None
    if shape is not None:
        return shape
    if len(tags) > MAX_TAGS_PER_SAMPLE or len(fields) > MAX_FIELDS_PER_SAMPLE:
        raise WireError("too_large", f"{kind}: too many tags or fields")
    _check_tags(kind, tag_items)
    if not fields:
        raise WireError("schema", f"{kind}: no fields")
    shape = Shape(kind, cast(TagItems, tag_items), field_plan(kind, names))
    if len(_SHAPES) < _MEMO_MAX:
        _SHAPES[(kind, tag_items, names)] = shape
    return shape


# The checks of a sample that depend only on its kind, tags and field names repeat in every
# batch of an agent: remembered once passed (the collector's hottest path, issue 11), with the
# plan of each kind's field-name set.  Bounded: a flood of new tag values only stops the
# remembering.  (Values, types, ranges and the time are checked every time.)
_MEMO_MAX: Final = 65_536
_SHAPES: dict[tuple[str, tuple[tuple[object, object], ...], tuple[object, ...]], Shape] = {}
_IDS_PASSED: set[str] = set()
_FIELD_PLANS: dict[tuple[str, tuple[object, ...]], FieldPlan] = {}


def _check_tags(kind: str, tag_items: tuple[tuple[object, object], ...]) -> None:
    allowed = KINDS[kind].tags
    for name, value in tag_items:
        if not isinstance(name, str) or name not in allowed:
            raise WireError("bad_tag", f"{kind}: tag {str(name)[:40]!r} not allowed")
        if (not isinstance(value, str) or not 0 < len(value) <= MAX_TAG_VALUE_LEN
                or _BAD_TAG_CHARS.search(value)):
            raise WireError("bad_tag", f"{kind}: tag {name} must be a short printable string")


def field_plan(kind: str, names: tuple[object, ...]) -> FieldPlan:
    """Each field name checked, with its rule (remembered per kind and names)."""
    plan = _FIELD_PLANS.get((kind, names))
    if plan is not None:
        return plan
    spec = KINDS[kind]
    for name in names:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise WireError("bad_field", f"{kind}: field name {str(name)[:40]!r}")
    plan = tuple(_rule(cast(str, name), spec.fields.get(cast(str, name)),
                       spec.range_of(cast(str, name))) for name in names)
    if len(_FIELD_PLANS) < _MEMO_MAX:
        _FIELD_PLANS[(kind, names)] = plan
    return plan


_INT64: Final = (-(2**63), 2**63 - 1)
_FINITE: Final = (-sys.float_info.max, sys.float_info.max)


def _rule(name: str, expected: FieldType | None, bounds: Bounds | None) -> FieldRule:
    """What check_value accepts for one field, per exact Python type (a subset is enough)."""
    numbers = expected in (None, "number")
    flo, fhi = (max(bounds[0], _FINITE[0]), min(bounds[1], _FINITE[1])) if bounds else _FINITE
    ilo, ihi = _INT64
    if bounds:  # an int is within [lo, hi] exactly when it is within [ceil(lo), floor(hi)]
        ilo, ihi = max(ilo, math.ceil(flo)), min(ihi, math.floor(fhi))
    if not numbers:
        flo, fhi, ilo, ihi = math.inf, -math.inf, 1, 0
    strings = MAX_STRING_FIELD_LEN if expected in (None, "string") else -1
    return (name, flo, fhi, ilo, ihi, expected in (None, "bool"), strings, expected, bounds)


def check_fields(shape: Shape, ts_ms: int, fields: Mapping[str, FieldValue]) -> None:
    """Check a sample's field values against its shape's plan (fields in the plan's order)."""
    for rule, value in zip(shape.plan, fields.values(), strict=True):
        kind_of = type(value)
        if kind_of is float:
            if rule[1] <= value <= rule[2]:  # type: ignore[operator]
                continue
        elif kind_of is int:
            if rule[3] <= value <= rule[4]:  # type: ignore[operator]
                continue
        elif kind_of is bool:
            if rule[5]:
                continue
        elif kind_of is str and len(value) <= rule[6]:  # type: ignore[arg-type]
            continue
        check_value(shape.kind, rule, value)


def check_value(kind: str, rule: FieldRule, value: object) -> None:
    """Raise the WireError a field value deserves; returns when it is accepted after all."""
    name, expected, bounds = rule[0], rule[7], rule[8]
    _check_field_value(kind, name, value)
    # A declared field of another type would make InfluxDB refuse the whole batch.
    if expected is not None and _field_type(value) != expected:
        raise WireError("bad_value", f"{kind}.{name}: must be a {expected}")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:  # type: ignore[operator]
        raise WireError("out_of_range", f"{kind}.{name}: outside [{bounds[0]:g}, "
                                        f"{bounds[1]:g}]")


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
    if not rejected and len(ranges) == 1:
        # The usual ack (one message of the agent in the write): the bytes orjson would
        # write, made without building the object (the writer sends thousands a second).
        return b'{"v":%d,"acked":[[%d,%d]]}' % (VERSION, ranges[0][0], ranges[0][1])
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
