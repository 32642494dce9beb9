"""Every virtual agent of a district: batches for a past period (backfill) or one live tick."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from common.wire import AgentIdentity, Sample
from schoolmon.sim.plan import SimulationPlan
from schoolmon.sim.samples import Calendar, SchoolSim, TickInfo

# Samples per envelope when an agent sends a backlog (well under the wire limit of 1000).
BACKLOG_BATCH = 500


@dataclass(frozen=True)
class Batch:
    """One envelope's worth of samples of one agent."""

    who: AgentIdentity
    samples: list[Sample]


class DistrictSim:
    """Sample generators of all schools on one tick grid."""

    def __init__(self, plan: SimulationPlan, step_s: float, outage_from_ms: int | None) -> None:
        self.plan = plan
        self.calendar = Calendar(plan.spec, step_s)
        self.schools = [SchoolSim(plan.seed, plan.spec, s, outage_from_ms) for s in plan.schools]

    def agents(self) -> list[AgentIdentity]:
        """Every virtual agent."""
        return [AgentIdentity(s.district, s.id, agent) for s in self.plan.schools
                for agent in s.agents]

    def backfill(self, start_ms: int, end_ms: int,
                 batch: int = BACKLOG_BATCH) -> Iterator[Batch]:
        """All samples of [start_ms, end_ms), agent by agent, oldest first, in envelopes."""
        ticks = [self.calendar.info(ts) for ts in self.calendar.grid(start_ms, end_ms)]
        school_ticks = [t for t in ticks if t.school_index is not None]
        for sim in self.schools:
            school = sim.school
            gateway = AgentIdentity(school.district, school.id, school.gateway_agent)
            yield from _chunks(gateway, (s for t in ticks for s in sim.gateway(t)), batch)
            for room in school.classrooms:
                if room.agent:
                    who = AgentIdentity(school.district, school.id, room.agent)
                    samples = (s for t in school_ticks for s in sim.classroom(room, t))
                    yield from _chunks(who, samples, batch)

    def tick(self, ts_ms: int, skip: frozenset[str] = frozenset()) -> Iterator[Batch]:
        """One live tick: a batch per agent that has samples now (agents in ``skip`` are off)."""
        info: TickInfo = self.calendar.info(ts_ms)
        for sim in self.schools:
            school = sim.school
            if school.gateway_agent not in skip:
                yield Batch(AgentIdentity(school.district, school.id, school.gateway_agent),
                            sim.gateway(info))
            for room in school.classrooms:
                if room.agent and room.agent not in skip:
                    samples = sim.classroom(room, info)
                    if samples:
                        yield Batch(AgentIdentity(school.district, school.id, room.agent),
                                    samples)


def _chunks(who: AgentIdentity, samples: Iterator[Sample], size: int) -> Iterator[Batch]:
    chunk: list[Sample] = []
    for sample in samples:
        chunk.append(sample)
        if len(chunk) == size:
            yield Batch(who, chunk)
            chunk = []
    if chunk:
        yield Batch(who, chunk)
