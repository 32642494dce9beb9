"""The collector's fast ingest path says what the plain one said, byte for byte and cause for cause.

``reference_*`` below is the checker and line formatter as they were before the one-pass path
(commit 1400180: common/wire.py ``_check_sample``, storage/lineprotocol.py ``sample_line``),
kept here as the oracle: written for clarity, one isinstance at a time.  Varied samples (every
kind, declared and undeclared fields, escapes, bools, ints at the int64 and 2**53 edges, strings
with quotes, backslashes and newlines, reserved and empty tags) must give the same lines through
``validate``, and broken ones the same reject cause, through ``validate`` and ``check_samples``.
"""

from __future__ import annotations

import enum
import math
import random
import re
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from collector.clocks import ClockBook
from collector.config import ClockSettings
from collector.storage import lineprotocol
from collector.storage.lineprotocol import sample_line
from collector.validate import Accepted, Rejected, TimeWindow, check_window, validate
from common import sample_rules, wire
from common.kinds import KINDS
from common.wire import (
    MAX_FIELDS_PER_SAMPLE,
    AgentIdentity,
    Sample,
    Topics,
    WireError,
    check_samples,
)

WHO = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")
TOPICS = Topics("schoolmon/v1")
TS = 1_763_890_000_000

# ---- the oracle: the checks and the formatter as they were --------------------------------

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_BAD_TAG = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]")
_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def reference_check(kind: object, ts_ms: object, tags: Mapping[Any, object],
                    fields: Mapping[Any, object]) -> None:
    """common/wire.py _check_sample before the one-pass path."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise WireError("unknown_kind", "")
    if not _is_int(ts_ms) or not 946_684_800_000 <= ts_ms <= 4_102_444_800_000:  # type: ignore
        raise WireError("bad_value", "")
    if len(tags) > 16 or len(fields) > 32:
        raise WireError("too_large", "")
    spec = KINDS[kind]
    for name, value in tags.items():
        if not isinstance(name, str) or name not in spec.tags:
            raise WireError("bad_tag", "")
        if not isinstance(value, str) or not 0 < len(value) <= 128 or _BAD_TAG.search(value):
            raise WireError("bad_tag", "")
    if not fields:
        raise WireError("schema", "")
    for name in fields:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise WireError("bad_field", "")
    for name, value in fields.items():
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise WireError("bad_value", "")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise WireError("bad_value", "")
        elif isinstance(value, str):
            if len(value) > 256:
                raise WireError("bad_value", "")
        else:
            raise WireError("bad_value", "")
        expected = spec.fields.get(name)
        actual = "bool" if isinstance(value, bool) else (
            "string" if isinstance(value, str) else "number")
        if expected is not None and actual != expected:
            raise WireError("bad_value", "")
        bounds = spec.range_of(name)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:  # type: ignore
            raise WireError("out_of_range", "")


def reference_field(value: object) -> str:
    """storage/lineprotocol.py format_field before."""
    if type(value) is float:
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value))
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def reference_line(sample: Sample, who: AgentIdentity) -> str:
    """storage/lineprotocol.py sample_line before, with its tags sorted by key.

    (Sorted since: InfluxDB stores tags sorted and writes a sorted line 25 % faster.)
    """
    fields = ",".join(f"{k.translate(_KEY_ESC)}={reference_field(v)}"
                      for k, v in sample.fields.items())
    tags = [(k, f",{k.translate(_KEY_ESC)}={v.translate(_KEY_ESC)}")
            for k, v in sample.tags.items() if v and k not in ("district", "school", "agent")]
    tags += [(k, f",{k}={v.translate(_KEY_ESC)}") for k, v in
             (("agent", who.agent), ("district", who.district), ("school", who.school))]
    head = "".join(text for _k, text in sorted(tags))
    return f"{sample.kind.translate(_MEAS_ESC)}{head} {fields} {sample.ts_ms}"


def reference_validate(raws: list[dict[str, Any]]) -> list[str] | str:
    """The lines of a batch of raw samples, or its reject cause."""
    try:
        for raw in raws:  # common/wire.py _decode_sample before
            tags, fields = raw.get("tags", {}), raw.get("fields")
            if not isinstance(tags, dict) or not isinstance(fields, dict):
                raise WireError("schema", "")
            reference_check(raw.get("kind"), raw.get("ts_ms"), tags, fields)
    except WireError as exc:
        return exc.cause
    return [reference_line(Sample(r["kind"], r["ts_ms"], r.get("tags", {}), r["fields"]), WHO)
            for r in raws]


# ---- varied samples ------------------------------------------------------------------------

class Level(enum.IntEnum):
    """An int subclass a probe might hand to check_samples."""

    HIGH = 2


GOOD_VALUES: list[object] = [
    0, 1, 7, -3, 1000, 2**53, 2**53 + 1, -(2**53) - 1, 2**62, 2**63 - 1, -(2**63),
    0.0, -0.0, 0.5, 81234567.5, 1e-7, 1.5e300, -2.5, 1e16, 99.99999999999999,
    True, False, "", "on", 'say "hi"', "C:\\path\\", "two\nlines", "a b,c=d", "教室 301",
    "x" * 256,
]
BAD_VALUES: list[object] = [2**63, -(2**63) - 1, 2**64, "x" * 257, None, [1], {"a": 1}]
TAG_VALUES = ["eth0", "Wi Fi,2=x", "教室 301", "a" * 128, "lan", "k=v", "", "a\\b",
              "tab\there", "a" * 129, "\u2028"]
GOOD_TAGS = 6  # the first ones are valid tag values


def random_sample(rng: random.Random, broken: bool) -> dict[str, Any]:
    """A raw sample of a random kind; with ``broken``, maybe one rule broken somewhere."""
    kind = rng.choice(sorted(KINDS))
    spec = KINDS[kind]
    tags: dict[str, Any] = {}
    for name in sorted(spec.tags):
        if rng.random() < 0.7:
            tags[name] = rng.choice(TAG_VALUES[:GOOD_TAGS])
    fields: dict[str, Any] = {}
    for name, declared in sorted(spec.fields.items()):
        if rng.random() < 0.6:
            fields[name] = good_value(rng, kind, name, declared)
    if rng.random() < 0.3:
        fields[f"extra_{rng.randrange(3)}"] = rng.choice(GOOD_VALUES)
    if not fields:
        fields[next(iter(spec.fields))] = good_value(rng, kind, next(iter(spec.fields)),
                                                     spec.fields[next(iter(spec.fields))])
    raw: dict[str, Any] = {"kind": kind, "ts_ms": TS + rng.randrange(1000), "tags": tags,
                           "fields": fields}
    if broken:
        break_one(rng, raw)
    return raw


def good_value(rng: random.Random, kind: str, name: str, declared: str) -> object:
    """A value the contract accepts for a declared field."""
    if declared == "bool":
        return rng.choice([True, False])
    if declared == "string":
        return rng.choice([v for v in GOOD_VALUES if isinstance(v, str)])
    low, high = KINDS[kind].range_of(name) or (0.0, 1.0)
    value = rng.choice([low, high, (low + high) / 2, low + (high - low) * rng.random()])
    return int(value) if rng.random() < 0.4 and value == int(value) < 2**63 else value


def break_one(rng: random.Random, raw: dict[str, Any]) -> None:
    """Break one rule of a raw sample (or none, now and then)."""
    fields, tags = raw["fields"], raw["tags"]
    name = rng.choice(sorted(fields))
    choice = rng.randrange(14)
    if choice == 0:
        raw["kind"] = rng.choice(["nope", 3, None])
    elif choice == 1:
        raw["ts_ms"] = rng.choice([0, 4_102_444_800_001, "1", True, 1.5e12])
    elif choice == 2:
        fields[rng.choice(["Bad", "1x", "a-b", "x" * 65])] = 1.0
    elif choice == 3:
        tags[rng.choice(["nope", "district"])] = "x"
        if raw["kind"] in ("host", "agent"):
            tags["x"] = "y"
    elif choice == 4:
        tags.update(dict.fromkeys(KINDS[raw["kind"]].tags, rng.choice(TAG_VALUES[GOOD_TAGS:])))
        tags.setdefault("zz", "")
    elif choice == 5:
        raw["fields"] = {}
    elif choice == 6:
        raw["fields"] = {f"f{i}": 1.0 for i in range(MAX_FIELDS_PER_SAMPLE + 1)}
    elif choice in (7, 8, 9):
        fields[name] = rng.choice(BAD_VALUES + GOOD_VALUES)
    elif choice == 10:
        fields[name] = rng.choice([-1.0, -1, 1e14, 2.0**63, 10**14, -0.5])
    elif choice == 11:
        fields[name] = rng.choice(["1", True, 1.0])
    elif choice == 12:
        raw["tags"] = rng.choice([[], "x", {"iface": ["x"]}, {"iface": 3}])


def as_payload(raws: list[dict[str, Any]], seq: int) -> bytes:
    """The envelope of raw samples from WHO (orjson: big ints beyond 64 bits written by hand)."""
    head = orjson.dumps({"v": 1, "district": WHO.district, "school": WHO.school,
                         "agent": WHO.agent, "seq": seq, "sent_ms": TS})
    return head[:-1] + b',"samples":[' + b",".join(map(dump, raws)) + b"]}"


def dump(obj: object) -> bytes:
    """JSON of one raw object; ints outside 64 bits as their digits."""
    if isinstance(obj, dict):
        return b"{" + b",".join(orjson.dumps(str(k)) + b":" + dump(v)
                                for k, v in obj.items()) + b"}"
    if isinstance(obj, list):
        return b"[" + b",".join(map(dump, obj)) + b"]"
    if isinstance(obj, int) and not isinstance(obj, bool):
        return str(obj).encode()
    return orjson.dumps(obj)


def through_validate(payload: bytes) -> list[str] | str:
    """What validate makes of a payload: its lines, or its reject cause."""
    clocks = ClockBook(ClockSettings())
    result = validate(TOPICS, TOPICS.data(WHO), payload, clocks, TS + 1000,
                      window=TimeWindow(max_age_ms=None, max_future_ms=10**13))
    if isinstance(result, Rejected):
        return result.cause
    assert isinstance(result, Accepted)
    return result.lines


@pytest.mark.parametrize("seed", range(8))
def test_valid_batches_give_the_same_lines(seed: int) -> None:
    """Valid samples of every kind: byte-identical lines to the plain formatter's."""
    rng = random.Random(seed)
    for seq in range(150):
        raws = [random_sample(rng, broken=False) for _ in range(rng.randrange(1, 6))]
        payload = as_payload(raws, seq)
        expected = reference_validate(orjson.loads(payload)["samples"])
        assert isinstance(expected, list), expected
        assert through_validate(payload) == expected


@pytest.mark.parametrize("seed", range(8))
def test_broken_batches_give_the_same_cause(seed: int) -> None:
    """Samples with a broken rule: the same reject cause (or the same lines) as before."""
    rng = random.Random(1000 + seed)
    causes = set()
    for seq in range(300):
        raws = [random_sample(rng, broken=rng.random() < 0.6)
                for _ in range(rng.randrange(1, 4))]
        payload = as_payload(raws, seq)
        expected = reference_validate(orjson.loads(payload)["samples"])
        assert through_validate(payload) == expected, raws
        causes.add(expected if isinstance(expected, str) else "ok")
    assert causes >= {"ok", "bad_value", "out_of_range", "bad_tag", "bad_field", "schema",
                      "unknown_kind", "too_large"}


def test_sample_line_skips_reserved_and_empty_tags_as_before() -> None:
    """Samples built in-process (rules, benches) may carry identity or empty tags."""
    rng = random.Random(7)
    for _ in range(300):
        raw = random_sample(rng, broken=False)
        raw["tags"].update({rng.choice(["district", "school", "agent"]): "spoofed",
                            "empty": ""})
        sample = Sample(raw["kind"], raw["ts_ms"], raw["tags"], raw["fields"])
        who = rng.choice([WHO, AgentIdentity("d 1", "s,1", "a=1")])
        assert sample_line(sample, who) == reference_line(sample, who)


@pytest.mark.parametrize("value", [*GOOD_VALUES, *BAD_VALUES, math.nan, math.inf, -math.inf,
                                   Level.HIGH, 2.0**63, -1, -1.0, 1e14])
@pytest.mark.parametrize("name", ["rx_bps", "up", "errors", "extra"])
def test_check_samples_same_cause_for_any_python_value(value: object, name: str) -> None:
    """An agent's own values (non-finite floats, int subclasses) pass or fail as before."""
    fields = {name: value}
    try:
        reference_check("iface", TS, {"iface": "eth0"}, fields)
        expected = "ok"
    except WireError as exc:
        expected = exc.cause
    try:
        check_samples([Sample("iface", TS, {"iface": "eth0"}, fields)])  # type: ignore[arg-type]
        got = "ok"
    except WireError as exc:
        got = exc.cause
    assert got == expected


def test_full_memos_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every memo full (a flood of new shapes), lines and causes are still the same."""
    for module, limit in ((wire, "MEMO_MAX"), (sample_rules, "MEMO_MAX"),
                          (lineprotocol, "_MEMO_MAX")):
        monkeypatch.setattr(module, limit, 0)
    for name in ("SHAPES", "_FIELD_PLANS", "IDS_PASSED"):  # wire reads two of them directly
        fresh = type(getattr(sample_rules, name))()
        for module in (sample_rules, wire):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, fresh)
    for name in ("_IDENTS", "_MAKERS", "_SEGMENTS", "_LINE_PLANS", "_COMPILED"):
        monkeypatch.setattr(lineprotocol, name, type(getattr(lineprotocol, name))())
    topics = Topics("schoolmon/v1")  # its parsed-topic memo is empty, and stays so
    rng = random.Random(99)
    for seq in range(200):
        raws = [random_sample(rng, broken=rng.random() < 0.5) for _ in range(2)]
        payload = as_payload(raws, seq)
        result = validate(topics, topics.data(WHO), payload)
        got = result.cause if isinstance(result, Rejected) else result.lines
        assert got == reference_validate(orjson.loads(payload)["samples"])
    assert not sample_rules.SHAPES and not wire.SHAPES and not lineprotocol._COMPILED
    assert not topics._parsed


def test_corrected_samples_lines_carry_the_corrected_time() -> None:
    """An agent whose clock is corrected: each line is its corrected sample's line."""
    clocks = ClockBook(ClockSettings())
    offset = 3 * 86_400_000
    clocks.restore(WHO, offset, TS)
    rng = random.Random(5)
    raws = [random_sample(rng, broken=False) for _ in range(4)]
    result = validate(TOPICS, TOPICS.data(WHO), as_payload(raws, 1), clocks, TS + offset,
                      window=TimeWindow(max_age_ms=None, max_future_ms=10**13))
    assert isinstance(result, Accepted)
    assert [s.ts_ms for s in result.samples] == [r["ts_ms"] + offset for r in raws]
    assert result.lines == [reference_line(s, WHO) for s in result.samples]


@pytest.mark.parametrize(("offsets", "max_age", "cause"), [
    ((0, 300_000), 1000, None),  # exactly max_future ahead: in
    ((0, 300_001), 1000, "future"),
    ((-1000, 0), 1000, None),  # exactly max_age old: in
    ((0, -1001), 1000, "too_old"),
    ((-10**12, 0), None, None),  # no bound into the past
    ((-1001, 300_001), 1000, "too_old"),  # the first sample out of the window names the cause
    ((300_001, -1001), 1000, "future"),
])
def test_time_window_edges(offsets: tuple[int, ...], max_age: int | None,
                           cause: str | None) -> None:
    """check_window: inclusive edges, the first offending sample's cause, seq only if old."""
    now = TS + 10**12
    samples = [Sample("host", now + o, {}, {"uptime_s": 1}) for o in offsets]
    got = check_window(WHO, 9, samples, now, TimeWindow(max_age_ms=max_age))
    assert (got.cause if got else None) == cause
    if got is not None:
        assert got.seq == (9 if cause == "too_old" else None)
