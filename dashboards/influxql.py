"""InfluxQL pieces shared by the dashboards: variable filters, variables, links.

Variables are matched as regular expressions (``=~ /^$school$/``): Grafana formats a
multi-value or "All" selection as an escaped alternation, so one query serves one school,
several, or the whole district.
"""

from __future__ import annotations

from common.figures import RATE_TOLERANCE_PCT, TIERS_MBPS, limit
from dashboards.model import Link, Variable

DISTRICT = '"district" =~ /^$district$/'
SCHOOL = '"school" =~ /^$school$/'
CLASSROOM = '"classroom" =~ /^$classroom$/'
AGENT = '"agent" =~ /^$agent$/'
TIME = "$timeFilter"
SCOPE_SCHOOL = "\"scope\" = 'school'"  # compliance points about one school
SCOPE_DISTRICT = "\"scope\" = 'district_share'"  # the rules engine's district roll-ups
INTERVAL = "time($__interval)"

# Every agent sends its own health (`agent` measurement): the cheapest complete list of
# districts, schools and agents.
DISTRICT_VAR = Variable("district", "District",
                        'SHOW TAG VALUES FROM "agent" WITH KEY = "district"')
SCHOOL_VAR = Variable("school", "School",
                      f'SHOW TAG VALUES FROM "agent" WITH KEY = "school" WHERE {DISTRICT}')
SCHOOLS_VAR = Variable("school", "School",
                       f'SHOW TAG VALUES FROM "agent" WITH KEY = "school" WHERE {DISTRICT}',
                       multi=True, include_all=True)
CLASSROOM_VAR = Variable(
    "classroom", "Classroom",
    f'SHOW TAG VALUES FROM "av", "wifi" WITH KEY = "classroom" WHERE {SCHOOL}',
    multi=True, include_all=True)
AGENT_VAR = Variable("agent", "Agent",
                     f'SHOW TAG VALUES FROM "agent" WITH KEY = "agent" WHERE {SCHOOL}',
                     multi=True, include_all=True)

# Access tiers of the policy (common/figures.py). A school's tier is the rules' own figure
# (school_status.tier_mbps); colours of a measured rate start where the default rate tolerance
# lets it meet the tier (9.2 for 10M at 8 %), the rules' meets().
TIER_FLOORS = tuple(float(limit(t, RATE_TOLERANCE_PCT)) for t in TIERS_MBPS)
RSSI_GOOD_DBM = -67
RSSI_FAIR_DBM = -75
# The wifi probe's default interval: one scan per bucket when taking the best AP per scan.
WIFI_SCAN = "5m"
# Projector lamps typically last 3,000-5,000 h (eco mode longer): warn before the end.
LAMP_WARN_H = 3000
LAMP_CRIT_H = 4500


def where(*conditions: str) -> str:
    """Conditions joined with AND."""
    return " AND ".join(conditions)


def school_link(title: str = "School: ${__value.raw}") -> Link:
    """Open the school dashboard for the school in the clicked cell."""
    return Link(title, "/d/schoolmon-school/school?${district:queryparam}"
                       "&var-school=${__value.raw}&${__url_time_range}")


def dashboard_link(uid: str, slug: str, title: str, *variables: str) -> Link:
    """Open another schoolmon dashboard with the current variables and time range."""
    # ${v:queryparam} gives var-v=a&var-v=b for a multi-value selection.
    params = "".join(f"&${{{v}:queryparam}}" for v in variables)
    return Link(title, f"/d/{uid}/{slug}?${{__url_time_range}}{params}")
