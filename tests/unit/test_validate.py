"""Collector validation of data messages and the reject counter."""

from __future__ import annotations

import logging

import orjson
import pytest

from collector.validate import Accepted, RejectCounter, Rejected, validate
from common.wire import AgentIdentity, Envelope, Sample, Topics, encode_envelope

TS = 1_763_890_000_000
WHO = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")
TOPICS = Topics("schoolmon/v1")


def payload(who: AgentIdentity = WHO, seq: int = 41) -> bytes:
    """A valid envelope from ``who``."""
    return encode_envelope(Envelope(who.district, who.school, who.agent, seq, TS + 500, [
        Sample("iface", TS, {"iface": "eth0", "role": "wan"}, {"rx_bps": 1.5e6, "up": True}),
        Sample("host", TS + 1, {}, {"cpu_pct": 12}),
    ]))


def test_accepted_message_becomes_lines_with_identity() -> None:
    """A valid message gives the seq to ack and one line per sample with identity tags."""
    result = validate(TOPICS, TOPICS.data(WHO), payload())
    assert isinstance(result, Accepted)
    assert result.who == WHO
    assert result.seq == 41
    assert result.lines == [
        "iface,agent=gz-th-001-gw,district=gz-th,iface=eth0,role=wan,school=gz-th-001 "
        "rx_bps=1500000.0,up=true 1763890000000",
        "host,agent=gz-th-001-gw,district=gz-th,school=gz-th-001 cpu_pct=12.0 1763890000001",
    ]


def test_empty_batch_accepted_with_no_lines() -> None:
    """An envelope without samples is still acked."""
    raw = encode_envelope(Envelope(WHO.district, WHO.school, WHO.agent, 3, TS, []))
    result = validate(TOPICS, TOPICS.data(WHO), raw)
    assert isinstance(result, Accepted) and result.lines == [] and result.seq == 3


@pytest.mark.parametrize(
    "claimed",
    [AgentIdentity("gz-th", "gz-th-001", "other-agent"),
     AgentIdentity("gz-th", "gz-th-002", "gz-th-001-gw"),
     AgentIdentity("gz-yx", "gz-th-001", "gz-th-001-gw")],
)
def test_identity_mismatch_rejected(claimed: AgentIdentity) -> None:
    """An agent may only publish as itself: payload identity must equal the topic's."""
    result = validate(TOPICS, TOPICS.data(WHO), payload(claimed))
    assert isinstance(result, Rejected)
    assert result.cause == "identity"
    assert result.who == WHO  # attributed to the topic (the authenticated sender)
    assert claimed.agent in result.detail or claimed.school in result.detail \
        or claimed.district in result.detail


@pytest.mark.parametrize(
    "topic",
    ["schoolmon/v1/gz-th/gz-th-001/data", "other/v1/gz-th/gz-th-001/gz-th-001-gw/data",
     "schoolmon/v1/gz-th/gz th/gz-th-001-gw/data", ""],
)
def test_bad_topic_rejected_without_identity(topic: str) -> None:
    """A topic that does not parse is cause 'topic' from an unknown sender."""
    result = validate(TOPICS, topic, payload())
    assert isinstance(result, Rejected)
    assert result.cause == "topic"
    assert result.who is None


def test_non_data_leaf_rejected_with_identity() -> None:
    """A message on another leaf of a valid agent topic is cause 'topic', sender known."""
    result = validate(TOPICS, TOPICS.status(WHO), payload())
    assert isinstance(result, Rejected)
    assert (result.cause, result.who) == ("topic", WHO)


@pytest.mark.parametrize(
    ("raw", "cause"),
    [(b"{", "json"), (orjson.dumps({"v": 9}), "version"), (b"[]", "schema")],
)
def test_payload_errors_carry_their_cause(raw: bytes, cause: str) -> None:
    """Envelope errors keep the wire cause and the topic's identity."""
    result = validate(TOPICS, TOPICS.data(WHO), raw)
    assert isinstance(result, Rejected)
    assert (result.cause, result.who) == (cause, WHO)


def test_reject_counter_logs_once_per_cause_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    """Each cause is logged at most once per log_every seconds; all are counted."""
    counter = RejectCounter()
    ident = Rejected("identity", "payload says x", WHO)
    topic = Rejected("topic", "not a schoolmon topic", None)
    with caplog.at_level(logging.WARNING, logger="collector.validate"):
        for now in (1000.0, 1000.5, 1030.0, 1059.999):
            counter.record(ident, now=now)
        counter.record(topic, now=1001.0)  # another cause has its own minute
        counter.record(topic, now=1002.0)
        counter.record(ident, now=1060.0)  # a minute after the last log: logged again
        counter.record(ident, now=1061.0)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "rejected message (identity) from gz-th/gz-th-001/gz-th-001-gw: payload says x "
        "[1 so far with this cause]",
        "rejected message (topic) from unknown sender: not a schoolmon topic "
        "[1 so far with this cause]",
        "rejected message (identity) from gz-th/gz-th-001/gz-th-001-gw: payload says x "
        "[5 so far with this cause]",
    ]
    assert counter.counts == {"identity": 6, "topic": 2}


def test_reject_points_have_unique_increasing_timestamps() -> None:
    """Rejects in the same millisecond (or with the clock going back) stay distinct points."""
    counter = RejectCounter()
    reject = Rejected("json", "bad", WHO)
    nows = [1000.0, 1000.0, 1000.0, 1000.0005, 999.0, 1000.01, 2000.0]
    stamps = [int(counter.record(reject, now=now).rsplit(" ", 1)[1]) for now in nows]
    assert stamps == [1_000_000, 1_000_001, 1_000_002, 1_000_003, 1_000_004, 1_000_010,
                      2_000_000]


def test_reject_point_format() -> None:
    """The schoolmon_reject point: cause, collector and identity tags, count and detail."""
    counter = RejectCounter(collector="c-east")
    line = counter.record(Rejected("identity", 'payload says "x"' + "y" * 300, WHO), now=5.0)
    head, fields_and_ts = line.split(" ", 1)
    assert head == ("schoolmon_reject,agent=gz-th-001-gw,cause=identity,collector=c-east,"
                    "district=gz-th,school=gz-th-001")
    assert fields_and_ts.startswith(r'count=1.0,detail="payload says \"x\"yyy')
    assert fields_and_ts.endswith(" 5000")
    detail = fields_and_ts.split('detail="', 1)[1].rsplit('" ', 1)[0]
    assert len(detail.replace('\\"', '"')) == 200  # detail cut to 200 characters
    unknown = counter.record(Rejected("topic", "t", None), now=6.0)
    assert unknown == 'schoolmon_reject,cause=topic,collector=c-east count=1.0,detail="t" 6000'


def test_two_collectors_rejecting_in_one_millisecond_write_two_series() -> None:
    """Same cause, sender and ms on two collectors: the collector tag keeps both points."""
    reject = Rejected("json", "bad", WHO)
    a = RejectCounter(collector="c1").record(reject, now=7.0)
    b = RejectCounter(collector="c2").record(reject, now=7.0)
    assert a.rsplit(" ", 1)[1] == b.rsplit(" ", 1)[1]  # same timestamp ...
    assert a.split(" ", 1)[0] != b.split(" ", 1)[0]  # ... different series


def envelope_obj(**changes: object) -> dict[str, object]:
    """The JSON object of a valid envelope from WHO, with changes."""
    obj: dict[str, object] = orjson.loads(payload(seq=77))
    return {**obj, **changes}


@pytest.mark.parametrize(
    ("raw", "cause"),
    [
        (orjson.dumps(envelope_obj(v=2)), "version"),
        (orjson.dumps(envelope_obj(v=2, samples={"new": "layout"})), "version"),
        (orjson.dumps(envelope_obj(sent_ms="soon")), "schema"),
        (orjson.dumps(envelope_obj(school="gz-th-999")), "identity"),
        # Over 256 KiB: never parsed, the seq comes from the anchored head.
        (payload(seq=77)[:-2] + b"," + b'{"kind":"host"},' * 20_000 + b"{}]}", "too_large"),
        # Cut short: not JSON, but the head is the agents' own format.
        (payload(seq=77)[:200], "json"),
        # Another key order (a newer agent): found by the bounded parse.
        (orjson.dumps({"seq": 77, **envelope_obj(v=2)}), "version"),
    ],
)
def test_rejects_recover_the_seq_for_the_topics_agent(raw: bytes, cause: str) -> None:
    """Batches that can never be accepted carry their seq, for the agent's ack."""
    result = validate(TOPICS, TOPICS.data(WHO), raw)
    assert isinstance(result, Rejected)
    assert (result.cause, result.who, result.seq) == (cause, WHO, 77)


@pytest.mark.parametrize(
    "raw",
    [
        b"{",  # not JSON, not our head
        orjson.dumps({"v": 2, "samples": [{"seq": 5}]}),  # a nested seq is not the batch's
        b'{"v":1,"district":"gz-th","samples":[{"seq":5}]' + b" " * 300_000,
        orjson.dumps(envelope_obj(v=2, seq=-1)),
        orjson.dumps(envelope_obj(v=2, seq=True)),
        orjson.dumps(envelope_obj(v=2, seq="77")),
        b"[77]",
    ],
)
def test_seq_not_guessed(raw: bytes) -> None:
    """No seq unless it is certainly the top-level one: a wrong seq would drop a good batch."""
    result = validate(TOPICS, TOPICS.data(WHO), raw)
    assert isinstance(result, Rejected) and result.seq is None


def test_unknown_sender_gets_no_seq() -> None:
    """Without an identity from the topic there is nobody to ack, whatever the payload says."""
    result = validate(TOPICS, "elsewhere/x/data", orjson.dumps(envelope_obj(v=2)))
    assert isinstance(result, Rejected) and (result.who, result.seq) == (None, None)
