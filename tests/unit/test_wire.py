"""The wire contract: envelope encode/decode, limits, acks and topics."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.kinds import KINDS
from common.wire import (
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_BATCH,
    MAX_TS_MS,
    MIN_TS_MS,
    AgentIdentity,
    Envelope,
    Sample,
    Topics,
    WireError,
    check_samples,
    decode_ack,
    decode_envelope,
    encode_ack,
    encode_envelope,
    encode_samples,
    to_ranges,
    wrap_envelope,
)

TS = 1_763_890_000_000
WHO = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")


def iface_sample(**fields: object) -> Sample:
    """A valid iface sample with the given fields (or a default)."""
    return Sample("iface", TS, {"iface": "eth0", "role": "wan"},
                  dict(fields) or {"rx_bps": 81234567.0, "tx_bps": 1234567.0, "up": True})


def envelope(samples: list[Sample], seq: int = 7) -> Envelope:
    """An envelope from WHO."""
    return Envelope(WHO.district, WHO.school, WHO.agent, seq, TS + 123, samples)


def raw_envelope(**over: object) -> bytes:
    """A JSON envelope built by hand, with some keys replaced."""
    obj: dict[str, object] = {
        "v": 1, "district": "gz-th", "school": "gz-th-001", "agent": "gz-th-001-gw",
        "seq": 1, "sent_ms": TS,
        "samples": [{"kind": "host", "ts_ms": TS, "tags": {}, "fields": {"cpu_pct": 1.5}}],
    }
    obj.update(over)
    return orjson.dumps(obj)


# --- round trip -----------------------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    """An encoded envelope decodes to an equal one, field types kept."""
    env = envelope([
        iface_sample(rx_bps=1.5, tx_bps=0.0, link_mbps=1000, up=True, errors=0),
        Sample("host", TS + 1, {}, {"uptime_s": 12345, "cpu_pct": 3.25}),
        Sample("speedtest", TS + 2, {"server": "http://10.20.0.5:8080"},
               {"down_mbps": 95.5, "bytes": 2**40}),
    ])
    decoded = decode_envelope(encode_envelope(env))
    assert decoded == env
    assert decoded.v == 1
    fields = decoded.samples[0].fields
    assert type(fields["link_mbps"]) is int and type(fields["rx_bps"]) is float
    assert fields["up"] is True


def test_wrap_envelope_matches_full_encoding() -> None:
    """Wrapping a spooled samples array gives the same bytes as encoding the whole envelope."""
    samples = [iface_sample(), Sample("host", TS, {}, {"mem_pct": 40.0})]
    env = envelope(samples, seq=42)
    wrapped = wrap_envelope(WHO, 42, env.sent_ms, encode_samples(samples))
    assert wrapped == encode_envelope(env)
    assert decode_envelope(wrapped) == env


def test_missing_tags_default_to_empty() -> None:
    """A sample without "tags" decodes with no tags."""
    payload = raw_envelope(samples=[{"kind": "host", "ts_ms": TS, "fields": {"cpu_pct": 1.0}}])
    assert decode_envelope(payload).samples[0].tags == {}


# --- limits and malformed messages ----------------------------------------------------------


def test_too_many_samples_rejected_on_encode_and_decode() -> None:
    """The batch limit holds both ways; exactly the limit is fine."""
    at_limit = [Sample("host", TS + i, {}, {"cpu_pct": 1.0}) for i in range(MAX_SAMPLES_PER_BATCH)]
    assert len(decode_envelope(encode_envelope(envelope(at_limit))).samples) == len(at_limit)
    over = [*at_limit, Sample("host", TS, {}, {"cpu_pct": 1.0})]
    with pytest.raises(WireError) as enc:
        encode_envelope(envelope(over))
    assert enc.value.cause == "too_many_samples"
    raw = raw_envelope(samples=[s.to_json_obj() for s in over])
    with pytest.raises(WireError) as dec:
        decode_envelope(raw)
    assert dec.value.cause == "too_many_samples"


def test_oversize_payload_rejected() -> None:
    """More than MAX_PAYLOAD_BYTES is too_large on decode (before parsing) and on encode."""
    with pytest.raises(WireError) as dec:
        decode_envelope(b" " * (MAX_PAYLOAD_BYTES + 1))
    assert dec.value.cause == "too_large"
    # 1000 samples with long string fields: each sample well within limits, the batch not.
    big = [Sample("speedtest", TS, {"server": "s" * 128}, {"note": "x" * 256, "bytes": i})
           for i in range(MAX_SAMPLES_PER_BATCH)]
    with pytest.raises(WireError) as enc:
        encode_envelope(envelope(big))
    assert enc.value.cause == "too_large"


@pytest.mark.parametrize(
    ("sample", "cause"),
    [
        (Sample("printer", TS, {}, {"up": True}), "unknown_kind"),
        (Sample("host", TS, {"district": "gz-th"}, {"cpu_pct": 1.0}), "bad_tag"),
        (Sample("host", TS, {"school": "x"}, {"cpu_pct": 1.0}), "bad_tag"),
        (Sample("iface", TS, {"iface": "eth0", "vlan": "3"}, {"up": True}), "bad_tag"),
        (Sample("iface", TS, {"iface": "eth\\0"}, {"up": True}), "bad_tag"),
        (Sample("iface", TS, {"iface": "eth0\n"}, {"up": True}), "bad_tag"),
        (Sample("iface", TS, {"iface": ""}, {"up": True}), "bad_tag"),
        (Sample("iface", TS, {"iface": "e" * 129}, {"up": True}), "bad_tag"),
        (Sample("host", TS, {}, {}), "schema"),
        (Sample("host", TS, {}, {"Cpu": 1.0}), "bad_field"),
        (Sample("host", TS, {}, {"cpu_pct": float("nan")}), "bad_value"),
        (Sample("host", TS, {}, {"cpu_pct": float("inf")}), "bad_value"),
        (Sample("host", TS, {}, {"cpu_pct": 2**63}), "bad_value"),
        (Sample("host", TS, {}, {"note": "x" * 257}), "bad_value"),
        (Sample("host", TS, {}, {"cpu_pct": None}), "bad_value"),  # type: ignore[dict-item]
        (Sample("host", MIN_TS_MS - 1, {}, {"cpu_pct": 1.0}), "bad_value"),
        (Sample("host", MAX_TS_MS + 1, {}, {"cpu_pct": 1.0}), "bad_value"),
        (Sample("host", True, {}, {"cpu_pct": 1.0}), "bad_value"),
        (Sample("host", TS, {}, {f"f{i}": 1 for i in range(33)}), "too_large"),
        # A declared field of another type (InfluxDB would refuse the whole batch).
        (Sample("iface", TS, {}, {"up": "true"}), "bad_value"),
        (Sample("iface", TS, {}, {"up": 1}), "bad_value"),
        (Sample("speedtest", TS, {}, {"down_mbps": True}), "bad_value"),
        (Sample("av", TS, {}, {"online": True, "power": 1}), "bad_value"),
    ],
)
def test_bad_samples_rejected_with_cause(sample: Sample, cause: str) -> None:
    """check_samples (used by encode) names the cause of each broken rule."""
    with pytest.raises(WireError) as exc:
        check_samples([sample])
    assert exc.value.cause == cause
    with pytest.raises(WireError):
        encode_samples([sample])


def test_typed_view_of_samples() -> None:
    """Readers get declared fields typed; an undeclared or mistyped name is a KeyError."""
    s = Sample("speedtest", TS, {}, {"down_mbps": 95, "up_mbps": 30.5, "extra": "x"})
    assert s.number("down_mbps") == 95.0 and isinstance(s.number("down_mbps"), float)
    assert s.number("rtt_ms") is None  # declared, absent
    av = Sample("av", TS, {}, {"online": False, "power": "on", "err_lamp": 2})
    assert (av.flag("online"), av.text("power"), av.number("err_lamp")) == (False, "on", 2.0)
    with pytest.raises(KeyError, match=r"speedtest\.down_mpbs is not a declared number"):
        s.number("down_mpbs")
    with pytest.raises(KeyError, match=r"av\.online is not a declared number"):
        av.number("online")
    assert KINDS["iface"].fields["up"] == "bool" and KINDS["av"].fields["power"] == "string"
    check_samples([s, av])  # an undeclared extra field of any type is still accepted


def test_nan_cannot_be_encoded() -> None:
    """NaN would become JSON null: the encoder refuses it instead."""
    with pytest.raises(WireError) as exc:
        encode_envelope(envelope([iface_sample(rx_bps=float("nan"))]))
    assert exc.value.cause == "bad_value"


def test_unencodable_string_is_a_wire_error() -> None:
    """A lone surrogate (e.g. from surrogateescape) is a WireError, not orjson's TypeError."""
    with pytest.raises(WireError) as exc:
        encode_samples([Sample("wifi", TS, {"ssid": "School"}, {"note": "caf\udce9"})])
    assert exc.value.cause == "bad_value"


@pytest.mark.parametrize(
    ("payload", "cause"),
    [
        (b"not json", "json"),
        (b"\xff\xfe", "json"),
        (b"[1, 2]", "schema"),
        (raw_envelope(v=2), "version"),
        (raw_envelope(district="bad/id"), "schema"),
        (raw_envelope(agent=None), "schema"),
        (raw_envelope(seq=True), "schema"),
        (raw_envelope(sent_ms=False), "schema"),
        (raw_envelope(seq=-1), "schema"),
        (raw_envelope(seq=1.0), "schema"),
        (raw_envelope(samples={}), "schema"),
        (raw_envelope(samples=[1]), "schema"),
        (raw_envelope(samples=[{"kind": "host", "ts_ms": TS, "tags": [], "fields": {}}]),
         "schema"),
        (raw_envelope(samples=[{"kind": "nope", "ts_ms": TS, "fields": {"a": 1}}]),
         "unknown_kind"),
        (raw_envelope(samples=[{"kind": "host", "ts_ms": TS, "tags": {"agent": "x"},
                                "fields": {"a": 1}}]), "bad_tag"),
        (raw_envelope(samples=[{"kind": "iface", "ts_ms": TS, "tags": {"iface": "a\\b"},
                                "fields": {"a": 1}}]), "bad_tag"),
        (raw_envelope(samples=[{"kind": "host", "ts_ms": TS, "fields": {"a": [1]}}]),
         "bad_value"),
        (raw_envelope(samples=[{"kind": "host", "ts_ms": float(TS), "fields": {"a": 1}}]),
         "bad_value"),
    ],
)
def test_bad_payloads_rejected_with_cause(payload: bytes, cause: str) -> None:
    """Each malformed message is one WireError with a stable cause word."""
    with pytest.raises(WireError) as exc:
        decode_envelope(payload)
    assert exc.value.cause == cause


# --- acks and ranges ------------------------------------------------------------------------


def test_ack_round_trip() -> None:
    """encode_ack / decode_ack keep the ranges."""
    ranges = [(1, 5), (7, 7), (10, 12)]
    assert orjson.loads(encode_ack(ranges)) == {"v": 1, "acked": [[1, 5], [7, 7], [10, 12]]}
    assert decode_ack(encode_ack(ranges)).acked == ranges
    assert decode_ack(encode_ack(ranges)).rejected == []
    assert decode_ack(encode_ack([])).acked == []
    both = decode_ack(encode_ack([(3, 4)], rejected=[(5, "too_large"), (9, "version")]))
    assert both.acked == [(3, 4)]
    assert both.rejected == [(5, "too_large"), (9, "version")]


@pytest.mark.parametrize(
    "payload",
    [b"{", b"[]", b'{"v": 2, "acked": []}', b'{"v": 1}', b'{"v": 1, "acked": [[3, 1]]}',
     b'{"v": 1, "acked": [[1]]}', b'{"v": 1, "acked": [[1, 2, 3]]}',
     b'{"v": 1, "acked": [[true, 2]]}', b'{"v": 1, "acked": [[1.0, 2]]}',
     b'{"v": 1, "acked": [5]}', b'{"v": 1, "acked": [], "rejected": {}}',
     b'{"v": 1, "acked": [], "rejected": [[1]]}', b'{"v": 1, "acked": [], "rejected": [[1, 2]]}'],
)
def test_bad_acks_rejected(payload: bytes) -> None:
    """A malformed ack is a WireError."""
    with pytest.raises(WireError):
        decode_ack(payload)


@pytest.mark.parametrize(
    ("seqs", "ranges"),
    [
        ([], []),
        ([5], [(5, 5)]),
        ([3, 1, 2], [(1, 3)]),
        ([1, 2, 4, 5, 5, 9], [(1, 2), (4, 5), (9, 9)]),
        ([10, 8, 6], [(6, 6), (8, 8), (10, 10)]),
    ],
)
def test_to_ranges(seqs: list[int], ranges: list[tuple[int, int]]) -> None:
    """Seqs compress into sorted, merged inclusive ranges."""
    assert to_ranges(seqs) == ranges


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=200))
@settings(max_examples=300, deadline=None)
def test_to_ranges_covers_exactly_the_seqs(seqs: list[int]) -> None:
    """The ranges cover exactly the given seqs, disjoint and not adjacent."""
    ranges = to_ranges(seqs)
    covered = [n for a, b in ranges for n in range(a, b + 1)]
    assert covered == sorted(set(seqs))
    for (_, last), (first, _) in itertools.pairwise(ranges):
        assert first > last + 1


# --- topics ---------------------------------------------------------------------------------


def test_topics_build_and_parse() -> None:
    """Topic names parse back to the identity and leaf."""
    topics = Topics("schoolmon/v1/")
    assert topics.data(WHO) == "schoolmon/v1/gz-th/gz-th-001/gz-th-001-gw/data"
    assert topics.parse(topics.data(WHO)) == (WHO, "data")
    assert topics.parse(topics.ack(WHO)) == (WHO, "ack")
    assert topics.parse(topics.status(WHO)) == (WHO, "status")
    assert topics.shared_data_subscription("collectors") == \
        "$share/collectors/schoolmon/v1/+/+/+/data"


@pytest.mark.parametrize(
    "topic",
    ["other/v1/a/b/c/data", "schoolmon/v1/a/b/data", "schoolmon/v1/a/b/c/d/data",
     "schoolmon/v1/a/-b/c/data", "schoolmon/v1/a//c/data"],
)
def test_foreign_topics_rejected(topic: str) -> None:
    """A topic that is not ours is WireError('topic')."""
    with pytest.raises(WireError) as exc:
        Topics().parse(topic)
    assert exc.value.cause == "topic"


# --- properties -----------------------------------------------------------------------------

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z")
names = st.from_regex(r"\A[a-z][a-z0-9_]{0,15}\Z")
tag_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"),
    min_size=1, max_size=40,
)
field_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=60),
)


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    """A valid sample of any kind, with allowed tags only."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    allowed = sorted(KINDS[kind].tags)
    tags = draw(st.dictionaries(st.sampled_from(allowed), tag_values)) if allowed else {}
    raw = draw(st.dictionaries(names, field_values, min_size=1, max_size=6))
    # A declared field carries its declared type (the validator refuses another).
    declared = KINDS[kind].fields
    fields = {k: v for k, v in raw.items() if k not in declared or _wire_type(v) == declared[k]}
    if not fields:
        fields = {"x_extra": 1.5}
    return Sample(kind, draw(st.integers(MIN_TS_MS, MAX_TS_MS)), tags, fields)


def _wire_type(value: object) -> str:
    return ("bool" if isinstance(value, bool) else "string" if isinstance(value, str)
            else "number")


envelopes = st.builds(
    Envelope,
    district=ids, school=ids, agent=ids,
    seq=st.integers(min_value=0, max_value=2**63 - 1),
    sent_ms=st.integers(min_value=0, max_value=2**63 - 1),
    samples=st.lists(samples(), max_size=8),
)


@given(envelopes)
@settings(max_examples=300, deadline=None)
def test_valid_envelopes_round_trip_exactly(env: Envelope) -> None:
    """Whatever a well-behaved agent builds decodes to exactly the same envelope."""
    decoded = decode_envelope(encode_envelope(env))
    assert decoded == env
    for got, sent in zip(decoded.samples, env.samples, strict=True):
        assert [type(v) for v in got.fields.values()] == [type(v) for v in sent.fields.values()]


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_random_bytes_only_raise_wire_error(payload: bytes) -> None:
    """Garbage is rejected with WireError and nothing else."""
    try:
        decode_envelope(payload)
    except WireError as exc:
        assert exc.cause in {"json", "schema", "version", "too_large"}


VALID = encode_envelope(envelope([
    iface_sample(rx_bps=1.5, tx_bps=2.5, link_mbps=1000, up=True),
    Sample("host", TS, {}, {"uptime_s": 100, "cpu_pct": 3.5, "note": "ok"}),
    Sample("av", TS, {"device": "proj-301", "classroom": "301", "device_type": "projector"},
           {"online": True, "lamp_hours": 1200}),
]))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """VALID with byte flips, truncation or insertions."""
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[pos]
    return bytes(data)


@given(mutated())
@settings(max_examples=300, deadline=None)
def test_mutated_payloads_only_raise_wire_error(payload: bytes) -> None:
    """A damaged valid payload either still decodes to valid samples or is a WireError."""
    try:
        env = decode_envelope(payload)
    except WireError:
        return
    check_samples(env.samples)  # whatever got through is within the contract
    assert decode_envelope(encode_envelope(env)) == env


def test_decode_of_valid_fixture_succeeds() -> None:
    """The unmutated payload used by the mutation test is itself valid."""
    assert len(decode_envelope(VALID).samples) == 3


@pytest.mark.parametrize("version", [True, 1.0, "1", None])
def test_version_must_be_the_integer_1(version: object) -> None:
    """`"v": true` or `1.0` compare equal to 1 in Python but are not version 1."""
    payload = orjson.dumps({"v": version, "district": "d", "school": "s", "agent": "a",
                            "seq": 1, "sent_ms": 1, "samples": []})
    with pytest.raises(WireError) as err:
        decode_envelope(payload)
    assert err.value.cause == "version"
