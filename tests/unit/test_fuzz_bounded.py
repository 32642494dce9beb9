"""Bounded fuzzing of the config loader and the wire decoder: only the documented errors.

Hypothesis with a fixed number of examples per test (deadline off: CI machines are shared), so
the whole file runs in well under a minute.  The contract under test:

- ``common.config.load_model`` (with ``read_yaml``) raises only :class:`ConfigError`, whatever the
  file holds: random YAML-ish text, damaged bytes of the example configs (also not UTF-8, also
  nested deeper than the YAML parser recurses), or the examples' data with any node replaced,
  removed or duplicated;
- ``common.wire.decode_envelope`` raises only :class:`WireError` on large, structurally mutated
  envelopes (tests/unit/test_wire.py covers random bytes and small envelopes), and whatever it
  accepts is within the contract and re-encodes to itself.

The device-output parsers are fuzzed in tests/unit/test_fuzz_bounded_parsers.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agent.config import AgentConfig
from agent.runner import build_probes
from collector.config import CollectorConfig
from collector.inventory import Inventory
from common.config import ConfigError, load_model
from common.kinds import KINDS
from common.wire import (
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_BATCH,
    AgentIdentity,
    Sample,
    WireError,
    check_samples,
    decode_envelope,
    encode_envelope,
    encode_samples,
    wrap_envelope,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXAMPLES: dict[str, type[BaseModel]] = {
    "agent.example.yaml": AgentConfig,
    "agent.classroom.example.yaml": AgentConfig,
    "collector.example.yaml": CollectorConfig,
    "inventory.example.yaml": Inventory,
}
MODELS: list[type[BaseModel]] = [AgentConfig, CollectorConfig, Inventory]
# Every secret the examples name, so that an unmutated example is valid.
ENVIRON = {name: "fuzz-secret" for name in re.findall(
    r"_env: *([A-Z_][A-Z0-9_]*)",
    "".join((CONFIGS / name).read_text(encoding="utf-8") for name in EXAMPLES))}
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """One directory for the module (hypothesis re-runs a test body many times per fixture)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-config-") as d:
        yield Path(d)


def load_only_config_error(model: type[BaseModel], path: Path, data: Any = None) -> bool:
    """Load; True when valid, False on ConfigError; any other exception fails the test.

    An agent config that loads must also build its probes: check-config accepting what the
    agent then dies on at start is the same bug as a traceback.
    """
    try:
        config = load_model(model, path, data=data, environ=ENVIRON)
    except ConfigError as exc:
        assert exc.lines and all(line.startswith(str(path)) for line in exc.lines), exc.lines
        return False
    if isinstance(config, AgentConfig):
        build_probes(config)
    return True


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_are_valid_before_mutation(name: str) -> None:
    """The seeds of the mutations below load cleanly (so mutations start from valid data)."""
    assert load_only_config_error(EXAMPLES[name], CONFIGS / name)


# --- text and bytes -------------------------------------------------------------------------

EXAMPLE_LINES = sorted({line for name in EXAMPLES
                        for line in (CONFIGS / name).read_text(encoding="utf-8").splitlines()})
YAML_BITS = ["", ":", "- ", "-", "? ", "{", "}", "[", "]", ",", "&a ", "*a", "!!str ", "!!binary ",
             "!!set ", "!!timestamp ", "!!python/object:os.system ", "<<: *a", "|", ">", "'", '"',
             "#", "%YAML 1.1", "---", "...", "~", "null", "yes", "no", "on", ".nan", ".inf",
             "-.inf", "0x1F", "0o17", "1e400", "99999999999999999999999", "2026-10-01",
             "2026-10-01T07:30:00Z", "10s", "0s", "-1s", "agent", "mqtt", "probes", "type",
             "iface", "host", "reach", "snmp", "ssh", "pjlink", "av", "wifi", "speedtest",
             "interval", "schools", "districts", "classrooms", "devices", "storage", "kind",
             "influxdb1", "influxdb2", "alerts", "timetable", "hours", "days", "holidays", "\t"]
yaml_lines = st.lists(
    st.tuples(st.sampled_from(["", "  ", "    ", "      ", " "]),
              st.one_of(st.sampled_from(EXAMPLE_LINES),
                        st.lists(st.sampled_from(YAML_BITS), max_size=6).map(" ".join),
                        st.text(max_size=30))).map("".join),
    max_size=40).map("\n".join)


@FUZZ
@given(text=yaml_lines, model=st.sampled_from(MODELS))
def test_yamlish_text_raises_only_config_error(workdir: Path, text: str,
                                              model: type[BaseModel]) -> None:
    """Example lines, YAML punctuation and random text in any order and indentation."""
    path = workdir / "random.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    load_only_config_error(model, path)


@st.composite
def damaged_example(draw: st.DrawFn) -> tuple[bytes, type[BaseModel]]:
    """An example config's bytes with flips, cuts, insertions (also of deep nesting)."""
    name = draw(st.sampled_from(sorted(EXAMPLES)))
    data = bytearray((CONFIGS / name).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "nest", "gbk"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "nest":  # deeper than PyYAML's recursive descent can follow
            depth = draw(st.sampled_from([10, 200, 2000]))
            data[pos:pos] = b"[" * depth + b"]" * depth
        elif op == "gbk":  # a file saved by a Chinese Windows editor
            data[pos:pos] = "天河第一小学".encode("gbk")
        elif data:
            del data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data), EXAMPLES[name]


@FUZZ
@given(case=damaged_example())
def test_damaged_example_bytes_raise_only_config_error(
        workdir: Path, case: tuple[bytes, type[BaseModel]]) -> None:
    """Any bytes in the file, also not UTF-8: a config error line, never a traceback."""
    raw, model = case
    path = workdir / "damaged.yaml"
    path.write_bytes(raw)
    load_only_config_error(model, path)


AGENT = b"agent: {id: a, school: b, district: c}\n"


@pytest.mark.parametrize("raw", [
    "agent: {id: a, school: b, district: c}\n# 天河\n".encode("gbk"),
    b"\xff\xfe" + "agent: {}\n".encode("utf-16-le"),
    b"agent: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    b"agent: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n",
    AGENT + b"timetable: {holidays: [2026-02-30]}\n",
    AGENT + b"timetable: {holidays: [!!timestamp 10:00]}\n",
    AGENT + b"spool: {max_mb: !!int 0x}\n",
    AGENT + b"spool: {max_mb: !!bool maybe}\n",
    AGENT + b"timetable: {timezone: Asia/" + b"x" * 300 + b"}\n",
    AGENT + b"probes: [{type: speedtest, servers: ['http://x:1'], timezone: Mars/Base}]\n",
], ids=["gbk", "utf16", "deep-list", "deep-map", "feb-30", "bad-timestamp", "bad-int",
        "bad-bool", "long-zone", "speedtest-zone"])
def test_known_hostile_files_are_config_errors(tmp_path: Path, raw: bytes) -> None:
    """Found by the fuzzing above; each used to escape as a traceback (UnicodeDecodeError,
    RecursionError, ValueError, AttributeError, KeyError, OSError from zoneinfo) or, for the
    speed test's time zone, to pass check-config and stop the agent at start."""
    path = tmp_path / "agent.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as err:
        build_probes(load_model(AgentConfig, path, environ=ENVIRON))
    assert len(err.value.lines) == 1 and err.value.lines[0].startswith(f"{path}: ")


# --- data-level mutations of the examples ---------------------------------------------------

yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
    st.floats(), st.text(max_size=20), st.sampled_from(["10s", "0s", "1h", "07:30-12:00", "mon",
                                                        "iface", "icmp", "2c", "urban", "wan"]),
    st.dates(), st.datetimes(timezones=st.just(dt.UTC)), st.binary(max_size=8))
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.one_of(st.text(max_size=10), st.integers(), st.none(), st.booleans()), inner,
        max_size=4),
    max_leaves=12)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


@st.composite
def mutated_example_data(draw: st.DrawFn) -> tuple[Any, type[BaseModel]]:
    """The data of an example with 1-4 nodes replaced, removed, duplicated or re-keyed."""
    name = draw(st.sampled_from(sorted(EXAMPLES)))
    data = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths[1:] if len(paths) > 1 else paths))
        if not path:
            data = draw(yaml_values)
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        op = draw(st.sampled_from(["replace", "remove", "duplicate", "rekey"]))
        if op == "replace":
            parent[last] = draw(yaml_values)
        elif op == "remove":
            del parent[last]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
        elif op == "rekey" and isinstance(parent, dict):
            parent[draw(st.one_of(st.text(max_size=12), st.integers()))] = parent.pop(last)
    return data, EXAMPLES[name]


@FUZZ
@given(case=mutated_example_data())
def test_mutated_example_data_raises_only_config_error(
        workdir: Path, case: tuple[Any, type[BaseModel]]) -> None:
    """Any node of a valid config changed to any YAML value: valid, or ConfigError lines."""
    data, model = case
    load_only_config_error(model, workdir / "mutated.yaml", data=data)


# --- the wire decoder on large, structurally mutated envelopes -------------------------------

WHO = AgentIdentity("fz-d", "fz-school", "fz-agent")


def _random_sample(rng: random.Random, ts: int) -> Sample:
    kind = rng.choice(sorted(KINDS))
    spec = KINDS[kind]
    tags = {t: "".join(rng.choice("abcXYZ019-_ ./天") for _ in range(rng.choice((1, 8, 128))))
            for t in sorted(spec.tags) if rng.random() < 0.9}
    fields: dict[str, int | float | bool | str] = {}
    for name in rng.sample(sorted(spec.fields), k=rng.randint(1, len(spec.fields))):
        # Each declared field with a value of its declared type, inside its declared range
        # (others are refused): the mutations below are what must break the envelope.
        bounds = spec.range_of(name)
        number: float = 0.0
        if bounds is not None:
            low, high = bounds
            number = rng.choice((low, high, low + (high - low) * rng.random()))
        fields[name] = {"number": number, "bool": rng.random() < 0.5,
                        "string": "x" * rng.choice((0, 10, 256))}[spec.fields[name]]
    return Sample(kind, ts, tags, fields)


@st.composite
def large_mutated_envelope(draw: st.DrawFn) -> bytes:
    """A valid envelope of up to 1000 samples near the size limit, then mutated as JSON."""
    rng = draw(st.randoms(use_true_random=False))
    n = draw(st.sampled_from([1, 50, 400, MAX_SAMPLES_PER_BATCH - 1, MAX_SAMPLES_PER_BATCH]))
    samples = [_random_sample(rng, 1_763_890_000_000 + i) for i in range(n)]
    while samples and len(encode_samples(samples)) > MAX_PAYLOAD_BYTES - 200:
        samples = samples[: len(samples) * 3 // 4]  # big tags: stay just under the limit
    obj = orjson.loads(wrap_envelope(WHO, 7, 1_763_890_000_000, encode_samples(samples)))
    for _ in range(draw(st.integers(0, 3))):
        paths = list(_paths(obj))
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["replace", "remove", "duplicate", "grow"]))
        if op == "replace":
            parent[path[-1]] = draw(st.recursive(
                st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=300),
                lambda inner: st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=70), inner, max_size=3), max_leaves=6))
        elif op == "remove":
            del parent[path[-1]]
        elif op == "duplicate" and isinstance(parent, list):
            parent.extend([parent[path[-1]]] * draw(st.integers(1, 600)))
        elif op == "grow" and isinstance(parent, dict):
            parent[f"k{len(parent)}"] = "y" * draw(st.sampled_from([1, 5000, 300_000]))
    return orjson.dumps(obj)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payload=large_mutated_envelope())
def test_large_mutated_envelopes_raise_only_wire_error(payload: bytes) -> None:
    """Near the size and count limits and mutated: WireError, or a contract-abiding envelope."""
    try:
        env = decode_envelope(payload)
    except WireError as exc:
        assert exc.cause in {"json", "schema", "version", "too_large", "too_many_samples",
                             "unknown_kind", "bad_value", "bad_tag", "bad_field"}
        return
    check_samples(env.samples)
    assert decode_envelope(encode_envelope(env)) == env
