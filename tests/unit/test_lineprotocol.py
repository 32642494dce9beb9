"""InfluxDB line protocol formatting."""

from __future__ import annotations

import pytest

from collector.storage.lineprotocol import escape_key, format_field, format_line, sample_line
from common.wire import AgentIdentity, Sample

TS = 1_763_890_000_000
WHO = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("eth0", "eth0"),
        ("Local Area Connection", r"Local\ Area\ Connection"),
        ("a,b", r"a\,b"),
        ("k=v", r"k\=v"),
        ("a b,c=d", r"a\ b\,c\=d"),
        ("教室 301", r"教室\ 301"),
    ],
)
def test_escape_key(text: str, escaped: str) -> None:
    """Spaces, commas and equals signs are escaped in tag keys and values."""
    assert escape_key(text) == escaped


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0.0"),
        (5, "5.0"),
        (-3, "-3.0"),
        (1000, "1000.0"),
        (0.5, "0.5"),
        (81234567.0, "81234567.0"),
        (1e-7, "1e-07"),
        ("plain", '"plain"'),
        ('say "hi"', r'"say \"hi\""'),
        ("C:\\path", r'"C:\\path"'),
        ("", '""'),
        ("a b,c=d", '"a b,c=d"'),
        ("two\nlines", '"two lines"'),  # never a raw newline inside a point
    ],
)
def test_format_field(value: object, text: str) -> None:
    """Bools as true/false, every number as a float, strings quoted and escaped."""
    assert format_field(value) == text  # type: ignore[arg-type]


def test_ints_and_floats_format_alike() -> None:
    """0 and 0.0 give the same field type, so InfluxDB never sees a type conflict."""
    assert format_field(0) == format_field(0.0)
    assert format_field(1000) == format_field(1000.0)
    assert format_field(True) != format_field(1)


def test_format_line_sorted_tags_and_escaping() -> None:
    """Measurement, sorted escaped tags, fields in order, ms timestamp."""
    line = format_line("iface", {"role": "wan", "iface": "Wi Fi,2=x"},
                       {"rx_bps": 1.5, "up": True, "link_mbps": 1000, "note": 'a "b"'}, TS)
    assert line == (
        r'iface,iface=Wi\ Fi\,2\=x,role=wan rx_bps=1.5,up=true,link_mbps=1000.0,'
        r'note="a \"b\"" 1763890000000'
    )


def test_format_line_without_tags_and_empty_tag_values() -> None:
    """No tags: measurement then fields; empty tag values are left out."""
    assert format_line("host", {}, {"cpu_pct": 3}, TS) == "host cpu_pct=3.0 1763890000000"
    assert format_line("host", {"a": "", "b": "x"}, {"v": 1}, TS) == \
        "host,b=x v=1.0 1763890000000"


def test_measurement_escaping() -> None:
    """Commas and spaces in a measurement name are escaped (equals signs are not)."""
    assert format_line("my meas,x=y", {}, {"v": 1}, TS) == r"my\ meas\,x=y v=1.0 1763890000000"


def test_sample_line_adds_identity_tags() -> None:
    """The agent's district/school/agent become tags, sorted with the sample's."""
    sample = Sample("iface", TS, {"iface": "eth0", "role": "wan"},
                    {"rx_bps": 81234567.0, "up": True, "errors": 0})
    assert sample_line(sample, WHO) == (
        "iface,agent=gz-th-001-gw,district=gz-th,iface=eth0,role=wan,school=gz-th-001 "
        "rx_bps=81234567.0,up=true,errors=0.0 1763890000000"
    )
    assert sample.tags == {"iface": "eth0", "role": "wan"}  # the sample is not changed


def test_sample_line_identity_wins_over_sample_tags() -> None:
    """Even if a sample carried an identity tag, the envelope's identity is written."""
    sample = Sample("host", TS, {"school": "spoofed"}, {"cpu_pct": 1.0})
    line = sample_line(sample, WHO)
    assert "school=gz-th-001" in line
    assert "spoofed" not in line


def test_sample_line_escapes_identity() -> None:
    """Identity values are escaped like any tag (ids allow dots and dashes only, but still)."""
    who = AgentIdentity("d 1", "s,1", "a=1")
    line = sample_line(Sample("host", TS, {}, {"up": False}), who)
    assert line == r"host,agent=a\=1,district=d\ 1,school=s\,1 up=false 1763890000000"
