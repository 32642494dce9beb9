"""Agent health: fleet (release, last contact), spool depth, drops, memory, probe errors;
and the collectors' own counters (what they accepted, held and left to the agents' resend)."""

from __future__ import annotations

from collector.measurements import AGENT_CLOCK, AGENT_STATUS, COLLECTOR_STATS
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
# Last contact does not depend on the dashboard's range: an agent silent for the whole range
# is the one to see.  400 days: InfluxDB's default retention in the influxdb role.
EVER = "time > now() - 400d"
# The fleet states (docs/deploy.md "Which schools run what"; the district report uses the same).
FLEET_STATES = ("live: heard within 1 h; at risk: 1 h to 7 days ago; "
                "dropped off: more than 7 days ago")


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
            Row("Fleet"),
            Panel("Release and last contact per agent (stale first)", Table(sort_by="Time"), (
                Target("A", (
                    'SELECT last("version") AS "version", last("config_hash") AS "config", '
                    'last("started_s") * 1000 AS "started" FROM "agent" '
                    f'WHERE {where(DISTRICT, SCHOOL, AGENT, EVER)} GROUP BY "school", "agent"'),
                    fmt="table"),),
                  w=24, h=9, unit="dateTimeFromNow", column_links=(school_col,),
                  description="Time: the agent's last health sample (last contact), whatever "
                              f"the dashboard's range. {FLEET_STATES}. version: the installed "
                              "release; config: fingerprint of its agent.yaml (agents with "
                              "the same one run the same config); started: when the agent "
                              "process started. Sort by version to see who is not upgraded."),
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
            *_clock_panels(school_col),
            *_collector_panels(),
        ),
    )


def _collector_panels() -> tuple[Row | Panel, ...]:
    """The collectors' own counters (collector_stats, every write.stats_interval)."""
    stats = COLLECTOR_STATS
    # The counters run from each collector's start: their differences point to point (one
    # per write.stats_interval, a minute by default); a restart's drop to 0 is left out.
    per_collector = f'FROM "{stats.name}" WHERE {TIME} GROUP BY "collector"'

    def rate(field: str, alias: str) -> Target:
        return Target(alias[0].upper(), f'SELECT non_negative_difference('
                                        f'"{stats.field(field)}") {per_collector}',
                      alias=f"{alias} $tag_collector")
    return (
        Row("Collectors"),
        Panel("Messages accepted, shed and resends recognised (per stats interval)", Series(), (
            rate("messages_accepted", "accepted"), rate("messages_shed", "shed"),
            rate("resends_joined", "joined"), rate("resends_stored", "recognised")),
              w=12, h=8, unit="none", min=0,
              description="accepted: messages stored. shed: messages left to their agents' "
                          "resend because the write queue was full (not lost: the agents keep "
                          "them). joined / recognised: resends written once (joined to their "
                          "first copy, or known to be stored already)."),
        Panel("Write queue (bytes held) and storage retries", Series(), (
            Target("A", f'SELECT "{stats.field("queue_bytes")}" {per_collector}',
                   alias="held $tag_collector"),
            rate("write_retries", "retries")),
              w=12, h=8, unit="none", min=0,
              description="What each collector holds between receipt and ack (bounded by "
                          "write.queue_bytes), and its storage write retries: a rising line "
                          "means InfluxDB refuses or is away."),
    )


def _clock_panels(school_col: ColumnLink) -> tuple[Row | Panel, ...]:
    """Agents whose PC clock is wrong: the offset the collector measures and corrects."""
    offset, applied = AGENT_CLOCK.field("offset_ms"), AGENT_CLOCK.field("applied_ms")
    return (
        Row("Clocks"),
        Panel("Agents with wrong clocks", Table(sort_by="Time"), (Target("A", (
            f'SELECT last("{offset}") / 60000 AS "offset_min", last("{applied}") / 60000 AS '
            f'"corrected_min" FROM "{AGENT_CLOCK.name}" WHERE {AGENTS} '
            'GROUP BY "school", "agent"'), fmt="table"),),
              w=12, h=8, column_links=(school_col,),
              description="Agents whose clock is off by over half of clocks.tolerance "
                          "(collector.yaml, 2 min by default): offset_min is the collector's "
                          "clock minus the agent's (positive: the agent is slow); "
                          "corrected_min is what the collector adds to its timestamps (0: "
                          "within tolerance, stored as sent). Fix the PC's clock: CMOS "
                          "battery, NTP through the school firewall."),
        Panel("Clock offset (minutes, positive: agent slow)", Series(), (Target("A", (
            f'SELECT last("{offset}") / 60000 FROM "{AGENT_CLOCK.name}" WHERE {AGENTS} '
            f"{PER_AGENT}"), alias="$tag_agent"),), w=12, h=8, unit="m",
              description="Only clocks worth a look are recorded (once a minute each)."),
    )
