#!/usr/bin/env bash
# Install what a fresh Debian/Ubuntu machine lacks for schoolmon's demo and tests:
# the real services (Debian packages) and the Python environment (.venv).  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(mosquitto mosquitto-clients influxdb victoria-metrics curl iproute2 sqlite3 iperf3 iptables
              snmpd snmp snmpsim openssh-server openssh-client openssl iw util-linux passwd systemd
              chromium fonts-wqy-zenhei faketime nats-server)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    # The packages' own services are not wanted: tests and demo start their own on free ports.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for svc in mosquitto influxdb victoria-metrics nats-server; do
        $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
fi

if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt .venv/.installed ]; then
    echo "setup: creating the Python environment in .venv"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[all,dev]'
    touch .venv/.installed
fi
