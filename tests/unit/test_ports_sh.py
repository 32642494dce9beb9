"""scripts/ports.sh: a service's port is chosen once and never one another service in the
directory already has (two free-port picks in a row returned the same port in CI: InfluxDB's
HTTP and RPC ports, and it could not bind)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT


def port_of(tmp_path: Path, names: list[str], picks: list[int]) -> list[str]:
    """Source ports.sh with free_port answering ``picks`` in turn; port_of for each name."""
    picks_file = tmp_path / "picks"
    picks_file.write_text("".join(f"{p}\n" for p in picks))
    script = (
        f'source "{ROOT / "scripts/ports.sh"}"\n'
        # The picker's answers in turn (bash's own, so the real free_port is not raced).
        f'free_port() {{ local p; p=$(head -n1 "{picks_file}"); '
        f'sed -i 1d "{picks_file}"; echo "$p"; }}\n'
        + "".join(f'port_of "{tmp_path}" {n}\n' for n in names))
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                         text=True, check=True)
    return out.stdout.split()


def test_a_port_already_given_in_the_directory_is_picked_again(tmp_path: Path) -> None:
    """The second pick repeats the first: the port file gets the next pick instead."""
    assert port_of(tmp_path, ["influxdb", "influxdb-rpc"], [40963, 40963, 40964]) == \
        ["40963", "40964"]
    assert (tmp_path / "influxdb-rpc.port").read_text() == "40964\n"


def test_a_chosen_port_is_reused(tmp_path: Path) -> None:
    """Asked again (a restart in the same directory), a service keeps its port."""
    assert port_of(tmp_path, ["mosquitto"], [41000]) == ["41000"]
    assert port_of(tmp_path, ["mosquitto", "influxdb"], [41000, 41001]) == ["41000", "41001"]


def test_the_real_picker_gives_distinct_ports(tmp_path: Path) -> None:
    """Twenty services from the real free_port: twenty different ports."""
    script = f'source "{ROOT / "scripts/ports.sh"}"\n' + "".join(
        f'port_of "{tmp_path}" s{n}\n' for n in range(20))
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                         text=True, check=True)
    assert len(set(out.stdout.split())) == 20
