"""A school's status snapshot (for the report, alerts and the school_status points)."""

from __future__ import annotations

from collector.rules.metrics import MetricContext
from collector.rules.results import (
    AgentStatus,
    ClassroomWifi,
    DeviceStatus,
    SchoolStatus,
    tier_of,
)


def school_status(ctx: MetricContext, detail: bool = True) -> SchoolStatus:
    """The status of ``ctx``'s school, with the settings' window, percentile and thresholds.

    Without ``detail`` the per-device, per-classroom and per-agent lists stay empty (the
    counts are still there): what the periodic school_status points need, at a tenth the cost.
    """
    state, settings = ctx.state, ctx.settings
    school = state.school
    window = int(settings.window * 1000)
    access = ctx.value("access_mbps", window)
    tests = state.speedtests
    fresh = ctx.agent_freshness(int(settings.stale_after * 1000))
    internet = ctx.value("internet_up", int(settings.recent * 1000))
    ups = [d.up for d in state.devices.values()]
    status = SchoolStatus(
        school=school.id, district=school.district, category=school.category,
        ownership=school.ownership, access_mbps=access,
        access_state="ok" if access is not None else "no_recent_test",
        tier_mbps=None if access is None else tier_of(access, settings.rate_tolerance_pct),
        last_speedtest_ms=tests[-1][0] if tests else None,
        per_class_mbps=ctx.value("per_class_mbps", window),
        isp_pct=ctx.value("isp_ratio", window),
        internet_up=None if internet is None else internet == 1.0,
        internet_checked_ms=state.internet.ms if state.internet.ms >= 0 else None,
        multimedia_ratio=ctx.value("multimedia_ratio", window),
        wifi_coverage=ctx.value("wifi_coverage", window),
        devices_up=ups.count(True), devices_down=ups.count(False),
        agents_total=len(fresh), agents_fresh=sum(fresh.values()),
        last_seen_ms=state.last_seen_ms)
    if detail:
        _add_detail(ctx, status, fresh, window)
    return status


def _add_detail(ctx: MetricContext, status: SchoolStatus, fresh: dict[str, bool],
                window: int) -> None:
    state = ctx.state
    geometry = state.limits.geometry
    first, last = geometry.first_bucket(ctx.now_ms, window), geometry.bucket(ctx.now_ms)
    status.devices.extend(
        DeviceStatus(dev_id, dev.classroom, dev.type, dev.up, dev.last_ms,
                     dev.counter.share_pct(first, last))
        for dev_id, dev in state.devices.items())
    for room_id, pct in ctx.room_values("wifi_good_pct", window).items():
        room = state.wifi.get(room_id)
        covered = None if pct is None else pct >= ctx.settings.wifi_good_pct
        status.wifi.append(ClassroomWifi(room_id, room.best if room else None,
                                         room.last_ms if room else None, pct, covered))
    status.agents.extend(
        AgentStatus(agent_id, a.status, _newest(a.last_ms, a.status_ms), fresh[agent_id])
        for agent_id, a in state.agents.items())


def _newest(*values: int | None) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None
