"""The ``schoolmon`` command: one entry point for agent, collector, checks and the demo."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from agent.spool import SpoolWriteError
from common.config import ConfigError, read_yaml

EXIT_USAGE = 2


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _version() -> str:
    try:
        return version("schoolmon")
    except PackageNotFoundError:
        return "unknown"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def config_kind(data: Any) -> str:
    """Tell an agent, collector or inventory file by its top-level keys."""
    if isinstance(data, dict):
        if "agent" in data:
            return "agent"
        if "storage" in data:
            return "collector"
        if "rules" in data and "name" in data:
            return "policy"
        if "districts" in data or "schools" in data:
            return "inventory"
    return "unknown"


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate each file; print one line per problem."""
    from agent.config import AgentConfig
    from collector.config import CollectorConfig
    from collector.inventory import Inventory
    from collector.rules.policy import PolicyProfile
    from common.config import UnresolvedSecret, load_model, secret_paths

    models: dict[str, Any] = {
        "agent": AgentConfig, "collector": CollectorConfig, "inventory": Inventory,
        "policy": PolicyProfile,
    }
    problems: list[str] = []
    for file in args.files:
        unresolved: list[UnresolvedSecret] | None = [] if args.no_secrets else None
        try:
            data = read_yaml(file)
            kind = config_kind(data)
            if kind == "unknown":
                problems.append(f"{file}: (top): not an agent (agent:), collector (storage:), "
                                "inventory (districts:) or policy (name:, rules:) file")
                continue
            config = load_model(models[kind], file, data=data, unresolved_secrets=unresolved)
            if kind == "collector":
                # The inventory against the policies: a school lacking an attribute a rule
                # needs (region, levels) is an error here, not only when the collector starts.
                from collector.rules import build_rules_engine

                build_rules_engine(config.rules, config.inventory, config.policies, file)
                from collector.sharding import resolve_shard

                resolve_shard(config, file)  # a districts: pattern matching no district
            for line in secret_paths(config, unresolved or []):
                print(f"{file}: {line} (secret not checked)")
            print(f"{file}: ok ({kind})")
        except ConfigError as exc:
            problems.extend(exc.lines)
    for line in problems:
        print(line, file=sys.stderr)
    return EXIT_USAGE if problems else 0


def cmd_agent_run(args: argparse.Namespace) -> int:
    """Run the agent (or once with --once)."""
    from agent.config import load_agent_config
    from agent.runner import Agent

    config = load_agent_config(args.config)
    agent = Agent(config)
    if args.once:
        return 0 if agent.run_once(timeout=args.timeout) else 1
    agent.run(_stop_on_signals())
    return 0


def cmd_agent_probe(args: argparse.Namespace) -> int:
    """Run one probe and print its samples as JSON lines."""
    import orjson

    from agent.config import load_agent_config
    from agent.probes import build_probe

    config = load_agent_config(args.config)
    names = {p.instance_name(p.type): p for p in config.probes}
    if args.name not in names:
        raise UserError(f"{args.config}: no probe named {args.name!r} "
                        f"(have: {', '.join(sorted(names)) or 'none'})")
    probe = build_probe(names[args.name])
    for _ in range(max(1, args.count)):
        for sample in probe.collect():
            print(orjson.dumps(sample.to_json_obj()).decode())
        if args.count > 1:
            threading.Event().wait(args.every)
    return 0


def cmd_agent_discover(args: argparse.Namespace) -> int:
    """Propose an av inventory for a subnet (scapy is loaded only here)."""
    from agent.discover import cmd_agent_discover as run

    return run(args)


def cmd_collector_run(args: argparse.Namespace) -> int:
    """Run the collector until SIGINT/SIGTERM."""
    from collector.config import load_collector_config
    from collector.service import AlertStateError, CollectorService

    config = load_collector_config(args.config)
    service = CollectorService(config, args.config, evaluate_at=args.evaluate_at)
    try:
        return service.run(_stop_on_signals())
    except AlertStateError as exc:
        raise UserError(str(exc), 1) from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Compliance points of past school days, evaluated from the stored samples."""
    from collector.rules.history import cmd_evaluate as run

    return run(args)


def cmd_speedtest_serve(args: argparse.Namespace) -> int:
    """Serve the LibreSpeed backend API until SIGINT/SIGTERM."""
    import asyncio

    from agent.speedtest.classroom import ClassroomResults
    from agent.speedtest.server import SpeedtestServer, parse_listen, serve

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    # Classroom browser results go into the spool of the agent beside this server.
    classroom = ClassroomResults(args.agent_config) if args.agent_config else None
    handler = SpeedtestServer(name=args.name, telemetry_path=args.telemetry,
                              classroom=classroom)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(host, port, stop=stop, handler=handler)

    try:
        asyncio.run(main())
    except OSError as exc:
        raise UserError(f"cannot listen on {args.listen}: {exc.strerror or exc}", 1) from None
    return 0


def cmd_speedtest_run(args: argparse.Namespace) -> int:
    """One test against a server (or the lowest-latency of several)."""
    import dataclasses

    import orjson

    from agent.speedtest.client import pick_server, run_speedtest

    try:
        server = pick_server(args.server) if len(args.server) > 1 else args.server[0]
        result = run_speedtest(server, streams=args.streams, duration=args.duration,
                               byte_cap=int(args.max_mb * 2**20))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"speed test failed: {exc}", 1) from None
    if args.json:
        print(orjson.dumps(dataclasses.asdict(result)).decode())
    else:
        print(f"server {result.server}\n  download {result.down_mbps:10.2f} Mbit/s\n"
              f"  upload   {result.up_mbps:10.2f} Mbit/s\n  latency  {result.rtt_ms:10.2f} ms"
              f" (jitter {result.jitter_ms:.2f} ms)\n  {result.bytes / 2**20:.0f} MiB in "
              f"{result.duration_s:.1f} s")
    return 0


def cmd_broker_config(args: argparse.Namespace) -> int:
    """Write the Mosquitto password file and ACL for every agent of the inventory."""
    from collector.brokerconfig import generate
    from collector.config import load_collector_config
    from collector.inventory import load_inventory

    config = load_collector_config(args.config)
    if not config.inventory:
        raise UserError(f"{args.config}: inventory: needed to know the agents")
    inventory_path = Path(args.config).parent / config.inventory
    try:
        files = generate(config, load_inventory(inventory_path), Path(args.out))
    except ValueError as exc:
        raise UserError(f"{args.config}: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}", 1) from None
    print(f"wrote {files.password_file} and {files.acl_file}; "
          f"{len(files.agent_passwords)} agent password files in {files.password_file.parent}"
          "/passwords (mode 0600: ship each to its agent as mqtt.password_file)")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Virtual schools publishing through the real broker."""
    from schoolmon.simulate import cmd_simulate as run

    return run(args)


def cmd_report(args: argparse.Namespace) -> int:
    """District compliance report: report.html and report.csv from InfluxDB."""
    from collector.reports.command import cmd_report as run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the local district and show whether each school is on target."""
    from schoolmon.demo import run_demo

    return run_demo(duration=args.duration, workdir=Path(args.dir) if args.dir else None,
                    lang=args.lang, schools=args.schools)


def _add_district_commands(sub: Any) -> None:
    """report and simulate: the district-level commands."""
    p = sub.add_parser("report", help="district compliance report (report.html, report.csv)")
    p.add_argument("-c", "--config", required=True, help="collector.yaml")
    p.add_argument("--policy", required=True, help="policy profile name, e.g. cn-moe-2017")
    p.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last day, YYYY-MM-DD")
    p.add_argument("--out", required=True, help="directory for report.html and report.csv")
    p.add_argument("--lang", choices=["zh-CN", "en"], default=None,
                   help="labels (default: alerts.language of collector.yaml, else zh-CN)")
    p.add_argument("--tz", default=None,
                   help="time zone of the days (default: the inventory's, else Asia/Shanghai)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("evaluate", help="compliance points of past school days, from storage")
    p.add_argument("-c", "--config", required=True, help="collector.yaml")
    p.add_argument("--policy", default=None, help="only this profile (default: every one of "
                   "collector.yaml's policies)")
    p.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last day, YYYY-MM-DD")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("simulate", help="virtual schools publishing through the real broker")
    p.add_argument("-c", "--config", required=True,
                   help="collector.yaml (its mqtt: settings are used)")
    p.add_argument("--schools", type=int, required=True, help="number of schools")
    p.add_argument("--interval", type=float, default=60.0,
                   help="seconds between samples (also the backfill step)")
    p.add_argument("--duration", type=float, default=None,
                   help="live seconds (0: until Ctrl-C; default: until Ctrl-C, or none "
                        "after --backfill)")
    p.add_argument("--seed", type=int, default=1, help="same seed, same district")
    p.add_argument("--backfill", type=int, default=0, metavar="DAYS",
                   help="first publish the last DAYS school days")
    p.add_argument("--spec", help="YAML with the district's shares (SimulationSpec)")
    p.add_argument("--inventory-out", help="write the district's inventory.yaml here")
    p.add_argument("--plan-out", help="write what was planned (JSON) here")
    p.add_argument("--ack-timeout", type=float, default=300.0,
                   help="give up when the collector acknowledges nothing for this long")
    p.set_defaults(func=cmd_simulate)


def _add_speedtest_commands(sub: Any) -> None:
    """speedtest serve, speedtest run."""
    st = sub.add_parser("speedtest", help="speed-test server and client").add_subparsers(
        dest="speedtest_command", required=True)
    p = st.add_parser("serve", help="serve the LibreSpeed backend API")
    p.add_argument("--listen", default="0.0.0.0:8080", help="HOST:PORT or [IPv6]:PORT")
    p.add_argument("--name", default="schoolmon", help="name in the LibreSpeed server list")
    p.add_argument("--telemetry", metavar="FILE",
                   help="append LibreSpeed telemetry results here (JSON lines)")
    p.add_argument("--agent-config", metavar="AGENT_YAML",
                   help="store classroom browser tests in this agent's spool")
    p.set_defaults(func=cmd_speedtest_serve)
    p = st.add_parser("run", help="measure download, upload and latency")
    p.add_argument("--server", action="append", required=True,
                   help="http://HOST:PORT (repeat: the lowest-latency one is used)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per direction")
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--max-mb", type=float, default=2000.0, help="byte cap for the whole test")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_speedtest_run)


def cmd_enrol(args: argparse.Namespace) -> int:
    """One-time enrolment tokens (district side) and an agent fetching its credential."""
    from schoolmon.enrol import main as enrol_main

    # main() hands every call with arguments to schoolmon/enrol.py directly; this is the
    # bare ``schoolmon enrol`` / ``schoolmon agent enrol``, which prints enrol's usage.
    return enrol_main([*args.enrol_prefix, *args.enrol_args])


def _add_enrol_commands(sub: Any, agent: Any) -> None:
    """``schoolmon enrol issue|serve`` (district) and ``schoolmon agent enrol`` (a school)."""
    # The options are schoolmon/enrol.py's own (its --help lists them); parsed there.
    p = sub.add_parser("enrol", help="one-time enrolment tokens: issue, serve (district side)",
                       add_help=False)
    p.add_argument("enrol_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_enrol, enrol_prefix=[])
    p = agent.add_parser("enrol", help="fetch this agent's MQTT credential with a one-time "
                         "token (--url, --ca, --token-file, --out)", add_help=False)
    p.add_argument("enrol_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_enrol, enrol_prefix=["agent"])


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="schoolmon", description=__doc__)
    parser.add_argument("--version", action="version", version=f"schoolmon {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate agent/collector/inventory YAML files")
    p.add_argument("files", nargs="+")
    p.add_argument("--no-secrets", action="store_true",
                   help="where secrets are not set (CI, a control node): check the rest and "
                        "list each unresolved secret, exit 0 if nothing else is wrong")
    p.set_defaults(func=cmd_check_config)

    agent = sub.add_parser("agent", help="run or inspect the agent").add_subparsers(
        dest="agent_command", required=True)
    p = agent.add_parser("run", help="measure and deliver")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--once", action="store_true",
                   help="run every probe once, deliver, wait for the ack, exit")
    p.add_argument("--timeout", type=float, default=60.0, help="with --once: seconds to wait")
    p.set_defaults(func=cmd_agent_run)
    p = agent.add_parser("probe", help="print one probe's samples as JSON lines")
    p.add_argument("name")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--count", type=int, default=1, help="collect this many times")
    p.add_argument("--every", type=float, default=1.0, help="seconds between collects")
    p.set_defaults(func=cmd_agent_probe)

    p = agent.add_parser("discover", help="find classroom devices on a subnet; print an av "
                         "inventory proposal (YAML)")
    p.add_argument("--subnet", required=True, help="IPv4 CIDR of the classroom LAN, e.g. "
                   "192.168.3.0/24")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds to wait for ARP and PJLink answers")
    p.set_defaults(func=cmd_agent_discover)

    coll = sub.add_parser("collector", help="run the collector").add_subparsers(
        dest="collector_command", required=True)
    p = coll.add_parser("run")
    p.add_argument("-c", "--config", required=True)
    # Tests: every rules pass evaluates at this instant (epoch ms); samples keep wall time.
    p.add_argument("--evaluate-at", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_collector_run)

    p = sub.add_parser("broker-config",
                       help="Mosquitto dynamic-security state and broker.conf from the "
                            "inventory")
    p.add_argument("-c", "--config", required=True, help="collector.yaml (names the inventory)")
    p.add_argument("--out", required=True, help="directory to write into")
    p.set_defaults(func=cmd_broker_config)

    _add_speedtest_commands(sub)
    _add_district_commands(sub)
    _add_enrol_commands(sub, agent)

    p = sub.add_parser("demo", help="run a local district and show whether schools are on "
                                    "target")
    p.add_argument("--duration", type=float, default=30.0, help="seconds (0: until Ctrl-C)")
    p.add_argument("--dir", help="work directory (default: a new temporary one)")
    p.add_argument("--lang", choices=["zh-CN", "en"], default=None,
                   help="language of the table and the mails (default: by locale)")
    p.add_argument("--schools", type=int, default=20, help="simulated schools")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a subcommand; user mistakes are one line on stderr, exit 2."""
    words = list(sys.argv[1:] if argv is None else argv)
    # Enrolment parses its own options (schoolmon/enrol.py); argparse cannot hand a
    # sub-command's leading options through unparsed.
    if words[:1] == ["enrol"] or words[:2] == ["agent", "enrol"]:
        from schoolmon.enrol import main as enrol_main

        return enrol_main(words[1:] if words[0] == "enrol" else ["agent", *words[2:]])
    args = build_parser().parse_args(words)
    _setup_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except UserError as exc:
        print(f"schoolmon: {exc}", file=sys.stderr)
        return exc.code
    except SpoolWriteError as exc:
        print(f"schoolmon: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
