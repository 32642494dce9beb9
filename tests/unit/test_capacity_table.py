"""bench/capacity_table.py: the load of the example school and the table it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.capacity_table import (
    CLASSROOMS,
    AgentLoad,
    CollectorFigures,
    Load,
    collector_figures,
    collectors,
    rewrite,
    school_load,
    table,
)

SECTION = """<!-- begin collector_throughput -->
| what | figure |
|---|---|
| InfluxDB ceiling (direct batched writes) | 150,000 points/s |
| 1 collector process | 100,000 samples/s (67% of the ceiling); stored 200,000 of 200,000 |
{small}<!-- end collector_throughput -->"""


def test_example_school_load_by_hand() -> None:
    """Gateway: iface 3 NICs/10 s, host, reach 3/30 s, snmp (28 ports + 32 APs)/60 s,
    ssh 29/5 min, 4 speed tests a day, the agent sample; classroom: host/5 min, pjlink 1,
    av 2 and agent each minute, wifi 4 BSSIDs/5 min."""
    school, minutes = school_load()
    runs = school.gateway.always + school.gateway.school_hours  # one batch per probe run
    assert runs.messages == pytest.approx(6 + 1 + 2 + 1 + 0.2 + 4 / 1440 + 1)
    gateway = school.gateway.peak
    assert gateway.samples == pytest.approx(18 + 1 + 6 + (29 + 33) + 29 / 5 + 4 / 1440 + 1)
    assert gateway.messages == pytest.approx(2)  # publish.linger 30 s (role gateway)
    classroom = school.classroom
    assert classroom.school_hours.messages == pytest.approx(2)  # pjlink and av
    assert classroom.always.samples == pytest.approx(0.2 + 4 / 5 + 1)
    assert classroom.peak.messages == pytest.approx(1)  # 3.4 runs a minute, linger 60 s
    assert school.peak.messages == pytest.approx(2 + CLASSROOMS * 1)
    assert minutes == 270 + 240  # 07:30-12:00 and 13:30-17:30


def test_collector_figures_from_the_benchmark_section() -> None:
    """The 1-collector row, and a small-message row when there is one."""
    assert collector_figures("# Benchmarks\n") is None
    plain = collector_figures(SECTION.format(small=""))
    assert plain is not None
    assert (plain.samples_per_s, plain.messages_per_s) == (100_000, 2_000)
    small = collector_figures(SECTION.format(
        small="| 1 collector process, small messages (3 samples) | 2,500 messages/s |\n"))
    assert small is not None and small.messages_per_s == 2_500


def test_collectors_take_the_busier_limit_at_half_load_plus_a_spare() -> None:
    """Messages bind before samples for small messages."""
    figures = CollectorFigures(100_000, 2_000, "test")
    assert collectors(figures, messages_s=3_000, samples_s=6_000) == str(3 + 1)
    assert collectors(figures, messages_s=10, samples_s=120_000) == str(3 + 1)
    assert collectors(None, 1, 1) == "`{collector_samples_per_s}`"


def test_rewrite_replaces_only_the_marked_block(tmp_path: Path) -> None:
    """Text around the markers stays; the table is the new one."""
    doc = tmp_path / "scaling.md"
    doc.write_text("before\n<!-- begin capacity_table -->\nold\n<!-- end capacity_table -->\n"
                   "after\n")
    block = table(CollectorFigures(100_000, 2_000, "test"))
    rewrite(doc, block)
    text = doc.read_text()
    assert text.startswith("before\n<!-- begin capacity_table -->\nPer school")
    assert "old" not in text and text.endswith("<!-- end capacity_table -->\nafter\n")
    peak = school_load()[0].peak
    assert f"| 30,000 | {peak.messages * 500:,.0f} | {peak.samples * 500:,.0f} |" in text


def test_the_benchmark_small_message_row_is_read() -> None:
    """The row bench/collector_throughput.py writes is the one the table takes its rate from."""
    from bench.collector_throughput import small_row

    row = small_row(1_634.4, 1_210.0, 120_000, 120_000, "2.23")
    figures = collector_figures(SECTION.format(small=row + "\n"))
    assert figures is not None and figures.messages_per_s == 1_634
    assert figures.messages_source == "measured with small messages"


def test_the_drained_50_sample_row_is_preferred_for_samples() -> None:
    """A collector's own ceiling (drained queue) over the run beside its publishers."""
    from bench.collector_throughput import big_row

    row = big_row(61_234.4, 80_000.0, 300_000, 300_000, "1.50")
    figures = collector_figures(SECTION.format(small=row + "\n"))
    assert figures is not None and figures.samples_per_s == 61_234


def test_linger_caps_messages_but_not_below_what_the_wire_needs() -> None:
    """One message per linger at most, never fewer than 1,000-sample envelopes need."""
    busy = AgentLoad(Load(12.0, 3_000.0), Load(0.0, 0.0), linger_s=30.0)
    assert busy.peak == Load(3.0, 3_000.0)  # 3,000 samples a minute: 3 envelopes, not 2
    quiet = AgentLoad(Load(12.0, 40.0), Load(0.0, 0.0), linger_s=30.0)
    assert quiet.peak == Load(2.0, 40.0)
    assert AgentLoad(Load(12.0, 40.0), Load(0.0, 0.0)).peak == Load(12.0, 40.0)  # linger 0
