"""The classroom browser test: a page of our own, and its result stored as a school sample.

A teacher opens ``http://<speed-test server>/?classroom=<room id>`` on a classroom PC; the page
(static/classroom.html) measures download, upload and latency against this server and POSTs
the result to ``/results/classroom``. The server runs beside the school's agent (started with
``--agent-config agent.yaml``) and appends the result to that agent's spool as a ``speedtest``
sample, which the agent delivers with its own samples: no second MQTT credential, and a test
made while the uplink is down is delivered when it is back.

The sample is marked: fields ``method: "browser"`` and ``classroom: <room id>`` (the speedtest
kind declares only the ``server`` tag, so they are fields, not tags). It measures the path from
one classroom PC (its Wi-Fi, its switch, the school's uplink), not the uplink alone; see
docs/probes.md for how the rules should treat it.
"""

from __future__ import annotations

import math
import time
from functools import cache
from importlib.resources import files
from typing import Final

import orjson

from common.vocab import BROWSER_METHOD
from common.wire import ID_RE, Sample, encode_samples

# What a browser result may claim: the speedtest kind's own bounds (common/kinds.py).
_BOUNDS: Final = {"down_mbps": (0.0, 1e7), "up_mbps": (0.0, 1e7), "rtt_ms": (0.0, 3.6e6),
                  "jitter_ms": (0.0, 3.6e6), "bytes": (0.0, 2.0**53),
                  "duration_s": (0.0, 86400.0)}
REQUIRED: Final = ("down_mbps", "up_mbps", "rtt_ms")


@cache
def classroom_page() -> bytes:
    """The page's HTML (read once from the package)."""
    return files("agent.speedtest").joinpath("static/classroom.html").read_bytes()


def browser_sample(body: bytes, server: str, now_ms: int) -> Sample:
    """The speedtest sample of a posted result; raises ValueError naming what is wrong."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the result must be a JSON object") from None
    if not isinstance(raw, dict):
        raise ValueError("the result must be a JSON object")
    room = raw.get("classroom")
    if not isinstance(room, str) or not ID_RE.fullmatch(room):
        raise ValueError("classroom: a room id like c-101 (letters, digits, . _ -)")
    fields: dict[str, float | str] = {"method": BROWSER_METHOD, "classroom": room}
    for name, (low, high) in _BOUNDS.items():
        value = raw.get(name)
        if value is None and name not in REQUIRED:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"{name}: a number in {low:g}..{high:g}")
        fields[name] = round(float(value), 3)
    return Sample("speedtest", now_ms, {"server": server[:200]}, fields)


class ClassroomResults:
    """Appends browser results to the spool of the agent whose config is given."""

    def __init__(self, agent_config: str) -> None:
        from agent.config import AgentConfig
        from agent.spool import Spool
        from common.config import load_model

        config = load_model(AgentConfig, agent_config)
        self.school = config.agent.school
        # The same SQLite file the agent uses (WAL: two processes may write it); the agent
        # sends what is due with its next batch and removes it when the collector acks.
        self.spool = Spool(config.spool.path, int(config.spool.max_mb * 2**20),
                           config.spool.max_age).open()

    def store(self, body: bytes, client: str, server: str) -> dict[str, object]:
        """Spool one result (``server``: our URL as the page used it); returns what was stored."""
        sample = browser_sample(body, server, int(time.time() * 1000))
        self.spool.append(encode_samples([sample]), 1)
        return {"stored": True, "school": self.school, "client": client, **sample.fields}
