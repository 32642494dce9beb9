"""IPv6: an agent reaches the broker and the speed-test server over IPv6 only, across a shaped
veth pair with IPv6 addresses, configured in the `[v6]:port` form; configs accept that form."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from common.config import MqttSettings, split_host_port
from tests.conftest import schoolmon_cmd, wait_until
from tests.integration.netns_stack import BROKER_PORT, NsStack

pytestmark = pytest.mark.integration
RATE_MBIT = 50.0
COMMUNITY = "v6-public"
ST_PORT = 8080


def add_ipv6(ns: str, address: str) -> None:
    """Give the namespace's veth an IPv6 address (nodad: usable at once)."""
    links = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "type", "veth"],
                           capture_output=True, text=True, check=True).stdout
    dev = links.split(":")[1].strip().split("@")[0]
    subprocess.run(["ip", "-n", ns, "addr", "add", f"{address}/64", "dev", dev, "nodad"],
                   check=True, capture_output=True)


def test_config_forms() -> None:
    """[v6]:port, [v6], a bare v6 address and name:port; a clash or a bad form is an error."""
    assert split_host_port("[2001:db8::1]:8883") == ("2001:db8::1", 8883)
    assert split_host_port("[::1]") == ("::1", None)
    assert split_host_port("2001:db8::1") == ("2001:db8::1", None)
    assert split_host_port("broker.edu.cn:1883") == ("broker.edu.cn", 1883)
    settings = MqttSettings.model_validate({"host": "[2001:db8::1]:8883"})
    assert (settings.host, settings.port) == ("2001:db8::1", 8883)
    for bad in ({"host": "[2001:db8::1]:8883", "port": 1883}, {"host": "[not-v6]:1883"},
                {"host": "[::1]:99999"}):
        with pytest.raises(ValueError, match="host"):
            MqttSettings.model_validate(bad)


def start_snmpd(stack: NsStack, tmp: Path, address: str) -> None:
    """Net-SNMP snmpd on the server namespace's IPv6 address only (UDP/IPv6, port 161)."""
    conf = tmp / "snmpd.conf"
    conf.write_text(f"rocommunity6 {COMMUNITY} fd00:5c:1::/64\n", encoding="utf-8")
    stack.spawn(stack.in_server([
        "env", f"SNMP_PERSISTENT_DIR={tmp / 'snmp-persist'}", "snmpd", "-C", "-c", str(conf),
        "-p", str(tmp / "snmpd.pid"), "-Lf", str(tmp / "snmpd.log"), "-f", "-M", "/nonexistent",
        "-m", "", f"udp6:[{address}]:161"]), tmp / "snmpd.out")


def test_agent_over_ipv6_delivers_and_measures(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Broker, speed-test server, a switch's snmpd on the server side's IPv6 address only; the
    agent's MQTT connection comes from the client's IPv6 address, its speed test measures the
    link, reach (TCP, ICMPv6) and SNMP (UDP/IPv6) answer."""
    from bench.netlab import ShapedLink, available

    why = available()
    assert why is None, why
    with ShapedLink(RATE_MBIT) as link:
        server6, client6 = "fd00:5c:1::1", "fd00:5c:1::2"
        add_ipv6(link.server_ns, server6)
        add_ipv6(link.client_ns, client6)
        stack = NsStack(link, tmp_path)
        monkeypatch.setenv("SCHOOLMON_V6_COMMUNITY", COMMUNITY)  # the agent inherits it
        try:
            start_snmpd(stack, tmp_path, server6)
            stack.start_broker()
            stack.start_influxdb()
            stack.start_collector()
            stack.spawn(stack.in_server(schoolmon_cmd(
                "speedtest", "serve", "--listen", f"[{server6}]:{ST_PORT}")),
                tmp_path / "speedtest.log")
            wait_until(lambda: stack.listening(link.client_ns, server6, ST_PORT), 30,
                       "the speed-test server on IPv6")
            stack.start_agent({
                "agent": {"id": "gw6", "school": "s6", "district": "d6"},
                "mqtt": {"host": f"[{server6}]:{BROKER_PORT}", "session_expiry": "1h"},
                "spool": {"path": str(tmp_path / "spool.db")},
                "publish": {"ack_timeout": "5s"},
                "probes": [
                    {"type": "host", "interval": "2s"},
                    {"type": "reach", "interval": "2s", "count": 3, "timeout": "1s",
                     "targets": [
                         {"name": "hub-tcp", "host": server6, "role": "district",
                          "method": "tcp", "port": BROKER_PORT},
                         {"name": "hub-icmp", "host": server6, "role": "district",
                          "method": "icmp"}]},
                    {"type": "snmp", "interval": "2s", "timeout": "1s", "retries": 1,
                     "targets": [{"name": "hub-sw", "host": server6, "version": "2c",
                                  "community_env": "SCHOOLMON_V6_COMMUNITY"}]},
                    {"type": "speedtest", "interval": "5s", "run_at_start": True,
                     "servers": [f"http://[{server6}]:{ST_PORT}"], "duration": "3s",
                     "streams": 2, "daily_budget_mb": 500}]})
            wait_until(lambda: stack.count("speedtest", "down_mbps") >= 1, 90,
                       "a speed test over IPv6 in InfluxDB")
            row = stack.query("SELECT * FROM speedtest LIMIT 1")[0]
            result = dict(zip(row["columns"], row["values"][0], strict=True))
            wait_until(lambda: stack.count("reach", "up", "target = 'hub-icmp'") >= 1
                       and stack.count("reach", "up", "target = 'hub-tcp'") >= 1, 30,
                       "reach samples over IPv6")
            wait_until(lambda: stack.count("netdev", "uptime_s", "device = 'hub-sw'") >= 1, 30,
                       "SNMP over IPv6: the switch's sysUpTime")
            reach = {s["tags"]["target"]: dict(zip(s["columns"], s["values"][0], strict=True))
                     for s in stack.query("SELECT last(up) AS up, last(rtt_ms) AS rtt_ms "
                                          "FROM reach GROUP BY target")}
        finally:
            stack.close()
    print(f"speed test over IPv6, {RATE_MBIT} Mbit/s link: {result}; reach: {reach}")
    for target in ("hub-tcp", "hub-icmp"):  # TCP connect and ICMPv6 echo to the v6 address
        assert reach[target]["up"] is True and reach[target]["rtt_ms"] > 0, reach
    assert result["server"] == f"http://[{server6}]:{ST_PORT}"
    assert 0.8 * RATE_MBIT <= float(result["down_mbps"]) <= 1.1 * RATE_MBIT, result
    assert 0.5 * RATE_MBIT <= float(result["up_mbps"]) <= 1.1 * RATE_MBIT, result
    # The broker saw the agent arrive from its IPv6 address.
    log = (tmp_path / "mosquitto.log").read_text(errors="replace")
    assert re.search(rf"New client connected from {re.escape(client6)}:\d+ as gw6 ", log), \
        log[-2000:]
