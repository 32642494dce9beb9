"""Policy targets: profiles, streaming per-school metrics, evaluation, compliance points.

The public API (stable, used by the report and alert code) is re-exported here; see
docs/policies.md, "For other code".
"""

from collector.rules.engine import RulesEngine, build_rules_engine, wall_clock_ms
from collector.rules.policy import (
    METRICS,
    PolicyProfile,
    Rule,
    load_policies,
    load_policy,
)
from collector.rules.results import (
    COMPLIANCE_MEASUREMENT,
    STATUS_MEASUREMENT,
    AgentStatus,
    ClassroomWifi,
    ComplianceResult,
    DeviceStatus,
    SchoolStatus,
    compliance_lines,
    status_lines,
    tier_label,
    tier_of,
)
from collector.rules.settings import RulesSettings

__all__ = [
    "COMPLIANCE_MEASUREMENT",
    "METRICS",
    "STATUS_MEASUREMENT",
    "AgentStatus",
    "ClassroomWifi",
    "ComplianceResult",
    "DeviceStatus",
    "PolicyProfile",
    "Rule",
    "RulesEngine",
    "RulesSettings",
    "SchoolStatus",
    "build_rules_engine",
    "compliance_lines",
    "load_policies",
    "load_policy",
    "status_lines",
    "tier_label",
    "tier_of",
    "wall_clock_ms",
]
