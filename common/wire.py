"""The wire contract between agents and collectors: topics, envelope, samples, acks.

Everything that crosses MQTT is defined here and in the two modules it builds on: the limits
and the error type (common/limits.py, importable from here too) and the checks of one sample
(common/sample_rules.py).  Decoding is written as plain code (not per-sample pydantic)
because the collector decodes tens of thousands of samples a second; every failure raises
exactly one type, :class:`WireError`, whose ``cause`` is a short stable word used for
counting and for the ``schoolmon_reject`` measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import orjson

from common.kinds import declared
from common.limits import (
    ID_RE,
    MAX_FIELDS_PER_SAMPLE,
    MAX_ID_LEN,
    MAX_NAME_LEN,
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_BATCH,
    MAX_STRING_FIELD_LEN,
    MAX_TAG_VALUE_LEN,
    MAX_TAGS_PER_SAMPLE,
    MAX_TS_MS,
    MIN_TS_MS,
    NAME_RE,
    RESERVED_TAGS,
    TAG_FORBIDDEN,
    TAG_PATTERN,
    FieldValue,
    WireError,
)
from common.sample_rules import (
    IDS_PASSED,
    MEMO_MAX,
    SHAPES,
    Shape,
    check_fields,
    check_sample,
    is_id,
    is_int,
)

VERSION: Final = 1
DEFAULT_PREFIX: Final = "schoolmon/v1"

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
        if len(self._parsed) < MEMO_MAX:
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
        check_fields(check_sample(s.kind, s.ts_ms, s.tags, s.fields), s.ts_ms, s.fields)



# Defined here, and the limits and error type of common/limits.py (for the many importers
# that name them from here).
__all__ = [
    "DEFAULT_PREFIX",
    "ID_RE",
    "MAX_FIELDS_PER_SAMPLE",
    "MAX_ID_LEN",
    "MAX_NAME_LEN",
    "MAX_PAYLOAD_BYTES",
    "MAX_SAMPLES_PER_BATCH",
    "MAX_STRING_FIELD_LEN",
    "MAX_TAGS_PER_SAMPLE",
    "MAX_TAG_VALUE_LEN",
    "MAX_TS_MS",
    "MIN_TS_MS",
    "NAME_RE",
    "RESERVED_TAGS",
    "TAG_FORBIDDEN",
    "TAG_PATTERN",
    "VERSION",
    "Ack",
    "AgentIdentity",
    "Envelope",
    "FieldValue",
    "FieldsHook",
    "Sample",
    "Topics",
    "WireError",
    "check_samples",
    "decode_ack",
    "decode_batch",
    "decode_envelope",
    "encode_ack",
    "encode_envelope",
    "encode_samples",
    "to_ranges",
    "wrap_envelope",
]

_T = TypeVar("_T")
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
            shape = SHAPES.get((kind, tuple(tags.items()), tuple(fields)))
        except TypeError:  # unhashable: refused by check_sample
            shape = None
        if shape is None or type(ts_ms) is not int or not MIN_TS_MS <= ts_ms <= MAX_TS_MS:
            shape = check_sample(kind, ts_ms, tags, fields)
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
            and district in IDS_PASSED and school in IDS_PASSED and agent in IDS_PASSED):
        for key, value in (("district", district), ("school", school), ("agent", agent)):
            if not is_id(value):
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
        if (not isinstance(item, list) or len(item) != 2 or not all(is_int(x) for x in item)
                or item[0] > item[1]):
            raise WireError("schema", "ack range must be [first, last] with first <= last")
        ranges.append((item[0], item[1]))
    rejected: list[tuple[int, str]] = []
    raw_rejected = obj.get("rejected", [])
    if not isinstance(raw_rejected, list):
        raise WireError("schema", "ack 'rejected' must be [[seq, cause], ...]")
    for item in raw_rejected:
        if (not isinstance(item, list) or len(item) != 2 or not is_int(item[0])
                or not isinstance(item[1], str) or len(item[1]) > MAX_NAME_LEN):
            raise WireError("schema", "ack 'rejected' entry must be [seq, cause]")
        rejected.append((item[0], item[1]))
    return Ack(ranges, rejected)


def to_ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Compress seq numbers into sorted inclusive ranges."""
    if len(seqs) == 1:  # the usual ack: one batch of one agent in a write
        return [(seqs[0], seqs[0])]
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges
