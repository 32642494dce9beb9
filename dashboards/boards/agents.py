"""Agent health: last seen, spool depth, drops, memory, probe errors."""

from __future__ import annotations

from collector.measurements import AGENT_STATUS
from dashboards.influxql import (
    AGENT,
    AGENT_VAR,
    DISTRICT,
    DISTRICT_VAR,
    INTERVAL,
    SCHOOL,
    SCHOOLS_VAR,
    TIME,
    school_link,
    where,
)
from dashboards.model import (
    UP_DOWN,
    ColumnLink,
    Dashboard,
    Panel,
    Row,
    Series,
    Step,
    Table,
    Target,
)

AGENTS = where(DISTRICT, SCHOOL, AGENT, TIME)
PER_AGENT = f'GROUP BY {INTERVAL}, "agent" fill(none)'


def _series(title: str, select: str, unit: str, description: str = "",
            steps: tuple[Step, ...] = ()) -> Panel:
    return Panel(title, Series(), (Target("A", f'SELECT {select} FROM "agent" WHERE {AGENTS} '
                                               f"{PER_AGENT}", alias="$tag_agent"),),
                 w=12, h=8, unit=unit, min=0, description=description, steps=steps)


def dashboard() -> Dashboard:
    """Health of the agents of the selected schools."""
    school_col = ColumnLink("school", school_link())
    return Dashboard(
        uid="schoolmon-agents", title="schoolmon / Agent health",
        description="Is every agent reporting, and is it healthy?",
        variables=(DISTRICT_VAR, SCHOOLS_VAR, AGENT_VAR),
        panels=(
            Row("Reporting"),
            Panel("Last report per agent (stale first)", Table(sort_by="Time"), (Target("A", (
                'SELECT last("rss_mb") AS "rss_mb", last("cpu_pct") AS "cpu_pct", '
                'last("spool_depth") AS "spool_depth", last("dropped_total") AS '
                '"dropped_total", last("probe_errors") AS "probe_errors" FROM "agent" '
                f'WHERE {AGENTS} GROUP BY "school", "agent"'), fmt="table"),),
                  w=14, h=9, column_links=(school_col,),
                  description="Time is the agent's last health sample (every run of its "
                              "scheduler). An agent missing here sent nothing in the range."),
            Panel("MQTT status (last will)", Table(sort_by="online"), (Target("A", (
                f'SELECT last("online") AS "online" FROM "{AGENT_STATUS.name}" '
                f'WHERE {where(DISTRICT, SCHOOL, AGENT)} GROUP BY "school", "agent"'),
                fmt="table"),), w=10, h=9, mappings=UP_DOWN, column_links=(school_col,),
                  description="The retained status each agent publishes (offline is its "
                              "last will); Time: when it changed."),
            Row("Delivery"),
            _series("Spool depth (batches waiting for an ack)", 'max("spool_depth")', "none",
                    "Grows while the uplink, broker, collector or InfluxDB is down; "
                    "drains after.", (Step("green"), Step("orange", 100), Step("red", 1000))),
            _series("Samples dropped (spool full or too old)",
                    'non_negative_difference(max("dropped_total"))', "none",
                    "Batches evicted from a full spool per interval: data lost for good.",
                    (Step("green"), Step("red", 1))),
            Row("Resources and errors"),
            _series("Memory (RSS)", 'max("rss_mb")', "decmbytes"),
            _series("CPU", 'mean("cpu_pct")', "percent"),
            _series("Probe errors (per interval)",
                    'non_negative_difference(max("probe_errors"))', "none",
                    "Failed or timed-out probe runs; the agent's log names the target."),
            Panel("Spool size", Series(), (Target("A", (
                f'SELECT max("spool_bytes") FROM "agent" WHERE {AGENTS} {PER_AGENT}'),
                alias="$tag_agent"),), w=12, h=8, unit="bytes", min=0),
        ),
    )
