"""The capacity table of docs/scaling.md: schools -> messages/s -> samples/s -> collectors.

A school is the gateway agent of configs/agent.example.yaml plus 30 classroom agents of
configs/agent.classroom.example.yaml; their probes and intervals are read from those files (so
the table follows the examples), with the counts a config does not say (NICs, switch ports,
APs, BSSIDs a scan sees) taken from :data:`ASSUMED`.  Every probe run is one spooled batch and
every agent adds its own ``agent`` sample each minute; with the agent's ``publish.linger`` (the
examples name their ``agent.role``, so the role's default) the batches of one linger go as one
message.  Probes limited to school hours
count at their full rate: the table is for the peak.

The per-collector figures come from docs/benchmarks.md, section ``collector_throughput``
(bench/collector_throughput.py): samples/s of one collector process (50-sample envelopes
drained from a filled queue when that row exists), and messages/s for small messages when
that row exists (else the 50-sample figure divided by 50: conservative, since
the cost of a message is then charged in full to every one).  Without that section the
collectors column says ``{collector_samples_per_s}``: run the benchmark, then this script.

Run: .venv/bin/python -m bench.capacity_table     (rewrites the table in docs/scaling.md)
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.config import AgentConfig
from agent.probes import AnyProbeSettings
from bench.report import DOC as BENCHMARKS
from common.config import load_model

ROOT = Path(__file__).resolve().parents[1]
SCALING = ROOT / "docs" / "scaling.md"
CLASSROOMS = 30
SCHOOLS = (1_000, 5_000, 10_000, 30_000, 100_000, 300_000)
HEADROOM = 0.5  # run collectors at most half loaded: room to drain backlogs after an outage


@dataclass(frozen=True)
class Assumed:
    """Counts the example configs do not state."""

    nics: int = 3  # iface reports every NIC but lo: wan, lan, wlan on a gateway
    switch_ports: int = 28  # 24 access + 4 uplink ports per polled switch
    aps_per_controller: int = CLASSROOMS + 2  # one AP per classroom, plus library and hall
    bssids_per_ssid: int = 4  # a classroom scan sees 2 APs x 2 bands of the school SSID


ASSUMED = Assumed()


@dataclass(frozen=True)
class Load:
    """Messages and samples per minute."""

    messages: float
    samples: float

    def __add__(self, other: Load) -> Load:
        return Load(self.messages + other.messages, self.samples + other.samples)

    def times(self, n: float) -> Load:
        """n of these."""
        return Load(self.messages * n, self.samples * n)


def samples_per_run(p: AnyProbeSettings) -> float:
    """How many samples one run of a probe makes."""
    if p.type == "iface":
        return max(ASSUMED.nics, len(p.roles))
    if p.type == "reach":
        return len(p.targets)
    if p.type == "snmp":
        return sum(1 + (ASSUMED.switch_ports if t.interfaces else 0)
                   + (max(len(t.aps), ASSUMED.aps_per_controller) if t.ap_table else 0)
                   for t in p.targets)
    if p.type == "ssh":
        return len(p.targets) * (1 + ASSUMED.switch_ports)
    if p.type in ("pjlink", "av"):
        return len(p.devices)
    if p.type == "wifi":
        return len(p.ssids) * ASSUMED.bssids_per_ssid
    return 1  # host, speedtest


@dataclass(frozen=True)
class AgentLoad:
    """Per minute: what runs all day, and what runs in school hours only."""

    always: Load
    school_hours: Load
    # publish.linger caps the messages: at most one envelope per linger (a backlog aside), and
    # no fewer than the wire's 1,000-sample envelopes need; 0: one message per probe run.
    linger_s: float = 0.0

    @property
    def peak(self) -> Load:
        """In school hours: both."""
        return self._lingered(self.always + self.school_hours)

    def _lingered(self, load: Load) -> Load:
        if self.linger_s <= 0:
            return load
        floor = math.ceil(load.samples / 1000)
        return Load(min(load.messages, max(60.0 / self.linger_s, floor)), load.samples)


def agent_load(config: AgentConfig) -> AgentLoad:
    """One agent's messages and samples per minute, its own ``agent`` sample included."""
    always, school = Load(1.0, 1.0), Load(0.0, 0.0)  # the agent sample, every 60 s
    for p in config.probes:
        runs = p.max_per_day / 1440 if p.type == "speedtest" else 60.0 / p.interval
        n = samples_per_run(p)
        load = Load(runs * math.ceil(n / 1000), runs * n)
        if p.school_hours_only:
            school += load
        else:
            always += load
    return AgentLoad(always, school, config.linger_s)


def school_minutes(config: AgentConfig) -> int:
    """Minutes of school hours on a school day, from the config's timetable."""
    if config.timetable is None:
        return 0
    total = 0
    for span in config.timetable.hours:
        start, end = (int(t[:2]) * 60 + int(t[3:5]) for t in span.split("-"))
        total += end - start
    return total


def example(name: str) -> AgentConfig:
    """An example agent config (secrets named by *_env get a placeholder)."""
    path = ROOT / "configs" / name
    names = re.findall(r"_env: *([A-Z_][A-Z0-9_]*)", path.read_text(encoding="utf-8"))
    return load_model(AgentConfig, path, environ=dict.fromkeys(names, "placeholder-secret"))


@dataclass(frozen=True)
class School:
    """A school's agents: per-minute loads and the samples of one school day."""

    gateway: AgentLoad
    classroom: AgentLoad

    @property
    def peak(self) -> Load:
        """Per minute in school hours, all agents."""
        return self.gateway.peak + self.classroom.peak.times(CLASSROOMS)

    def samples_per_day(self, minutes: int) -> float:
        """Samples of one school day with ``minutes`` of school hours."""
        agents = [self.gateway] + [self.classroom] * CLASSROOMS
        return sum(a.always.samples * 1440 + a.school_hours.samples * minutes for a in agents)


def school_load() -> tuple[School, int]:
    """The example school and its minutes of school hours a day."""
    classroom = example("agent.classroom.example.yaml")
    school = School(agent_load(example("agent.example.yaml")), agent_load(classroom))
    return school, school_minutes(classroom)


@dataclass(frozen=True)
class CollectorFigures:
    """What one collector process sustains, from docs/benchmarks.md."""

    samples_per_s: float
    messages_per_s: float
    messages_source: str


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def collector_figures(benchmarks: str) -> CollectorFigures | None:
    """The collector_throughput section's figures, or None when it has not been run."""
    match = re.search(r"<!-- begin collector_throughput -->(.*?)<!-- end collector_throughput",
                      benchmarks, re.S)
    if match is None:
        return None
    section = match.group(1)
    # A collector's own ceiling (drained from a filled queue) when measured; else the run
    # beside its publishers, which share its cores.
    one = re.search(r"^\| 1 collector process, 50-sample envelopes[^|]*\| ([\d,.]+) samples/s",
                    section, re.M) or re.search(
        r"^\| 1 collector process \| ([\d,.]+) samples/s", section, re.M)
    if one is None:
        return None
    samples = _number(one.group(1))
    small = re.search(r"^\| 1 collector process, small messages[^|]*\| ([\d,.]+) messages/s",
                      section, re.M)
    if small is not None:
        return CollectorFigures(samples, _number(small.group(1)), "measured with small messages")
    return CollectorFigures(samples, samples / 50,
                            "50-sample figure / 50 (no small-message row yet)")


def table(figures: CollectorFigures | None) -> str:
    """The markdown block that goes between the markers in docs/scaling.md."""
    school, minutes = school_load()
    gateway, classroom, peak = school.gateway.peak, school.classroom.peak, school.peak
    lines = [
        f"Per school (peak, in school hours): the gateway {gateway.messages:.1f} messages and "
        f"{gateway.samples:.0f} samples a minute, each of {CLASSROOMS} classroom agents "
        f"{classroom.messages:.1f} and {classroom.samples:.1f}: **{peak.messages / 60:.2f} "
        f"messages/s and {peak.samples / 60:.2f} samples/s per school**, "
        f"{school.samples_per_day(minutes):,.0f} samples on a school day ({minutes} minutes of "
        f"school hours). Assumed where the examples do not say: {ASSUMED.nics} NICs on the "
        f"gateway, {ASSUMED.switch_ports} ports per polled switch, {ASSUMED.aps_per_controller} "
        f"APs on the controller, {ASSUMED.bssids_per_ssid} BSSIDs per scan.", "",
    ]
    if figures is None:
        lines += ["One collector process: `{collector_samples_per_s}` samples/s (**not measured "
                  "yet**: run `bench/collector_throughput.py`, then `bench/capacity_table.py`).",
                  ""]
    else:
        lines += [f"One collector process: {figures.samples_per_s:,.0f} samples/s and "
                  f"{figures.messages_per_s:,.0f} messages/s ({figures.messages_source}); "
                  f"collectors are counted at {HEADROOM:.0%} load, plus one spare.", ""]
    lines += ["| schools | messages/s | samples/s | samples per school day | collector processes |",
              "|---|---|---|---|---|"]
    for n in SCHOOLS:
        msg_s, smp_s = peak.messages / 60 * n, peak.samples / 60 * n
        lines.append(f"| {n:,} | {msg_s:,.0f} | {smp_s:,.0f} | "
                     f"{school.samples_per_day(minutes) * n / 1e6:,.0f} M | "
                     f"{collectors(figures, msg_s, smp_s)} |")
    return "\n".join(lines)


def collectors(figures: CollectorFigures | None, messages_s: float, samples_s: float) -> str:
    """Collector processes for a load: the busier of the two limits, at HEADROOM, plus a spare."""
    if figures is None:
        return "`{collector_samples_per_s}`"
    busy = max(samples_s / figures.samples_per_s, messages_s / figures.messages_per_s)
    return str(math.ceil(busy / HEADROOM) + 1)


def rewrite(doc: Path, block: str) -> None:
    """Replace the text between the capacity_table markers."""
    begin, end = "<!-- begin capacity_table -->", "<!-- end capacity_table -->"
    text = doc.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise SystemExit(f"{doc}: no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    doc.write_text(f"{head}{begin}\n{block}\n{end}{rest.split(end, 1)[1]}", encoding="utf-8")


def main() -> int:
    """Compute and write the table."""
    benchmarks = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else ""
    block = table(collector_figures(benchmarks))
    print(block)
    rewrite(SCALING, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
