"""An agent that does not use snmp, ssh or sniff never loads pysnmp, netmiko or scapy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import yaml

SCRIPT = """
import sys, orjson
from agent.config import load_agent_config
from agent.runner import build_probes
config = load_agent_config(sys.argv[1])
for p in build_probes(config):
    try:
        p.probe.collect()
    except Exception:
        pass  # devices of the example do not exist here; loading is what is measured
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"pysnmp", "netmiko", "scapy",
                                                          "paramiko", "pyasn1"})
print(orjson.dumps(heavy).decode())
"""


def loaded_heavy(tmp_path: Path, probes: list[dict[str, object]]) -> list[str]:
    """Heavy top-level modules imported by building and running these probes once."""
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump({"agent": {"id": "a", "school": "s", "district": "d"},
                                   "spool": {"path": str(tmp_path / "s.db")},
                                   "probes": probes}))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(cfg)], capture_output=True,
                         text=True, timeout=120, check=True)
    result: list[str] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return result


LIGHT = [
    {"type": "iface"}, {"type": "host"},
    {"type": "reach", "count": 1, "timeout": "200ms",
     "targets": [{"name": "lo", "host": "127.0.0.1", "role": "gateway", "method": "tcp",
                  "port": 9}]},
    {"type": "pjlink", "devices": [{"name": "p", "classroom": "1", "host": "127.0.0.1",
                                    "port": 9}]},
    {"type": "av", "devices": [{"name": "pc", "classroom": "1", "device_type": "pc",
                                "host": "127.0.0.1", "method": "tcp", "port": 9}]},
    {"type": "wifi", "classroom": "1", "method": "iw", "ssids": ["School"]},
]


def test_light_agent_loads_no_heavy_library(tmp_path: Path) -> None:
    """iface, host, reach, pjlink, av and wifi (iw): none of pysnmp, netmiko, scapy."""
    assert loaded_heavy(tmp_path, LIGHT) == []


def test_the_check_can_see_a_heavy_import(tmp_path: Path) -> None:
    """The same check reports pysnmp once an snmp probe runs (so the test above can fail)."""
    snmp = {"type": "snmp", "timeout": "200ms", "retries": 0,
            "targets": [{"name": "sw", "host": "127.0.0.1", "port": 9, "version": "2c",
                         "community_file": None, "community_env": "HOME"}]}
    assert "pysnmp" in loaded_heavy(tmp_path, [*LIGHT, snmp])
