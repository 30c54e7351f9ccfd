"""The `territoire` command.

Each subcommand imports its part of the platform only when it runs, so a
gateway with only `territoire[agent]` installed never loads the server stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from territoire_kernel.errors import ConfigError, TerritoireError

EPILOG = """\
Quick start:
  territoire demo                 run everything locally (broker, database, ingest, API, simulators)
  territoire agent check-config /etc/territoire/agent.yaml
  territoire agent doctor /etc/territoire/agent.yaml
  territoire profiles test        run every firmware profile's golden cases
Documentation: README.md and docs/ in the source tree.
"""


class MissingExtraError(TerritoireError):
    pass


def _load(module: str, attribute: str, extra: str) -> Callable[..., Any]:
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {
            "edge_agent",
            "ingest",
            "api",
            "simulators",
            "firmware_profiles",
        }:
            raise
        raise MissingExtraError(
            f"this command needs the '{extra}' extra ({exc.name} is missing): pip install 'territoire[{extra}]'"
        ) from None
    function: Callable[..., Any] = getattr(loaded, attribute)
    return function


def _agent(args: argparse.Namespace) -> int:
    action = args.agent_action
    if action == "schema":
        print(_load("edge_agent.cli", "schema", "agent")())
        return 0
    if action == "scan":
        return int(_load("edge_agent.cli", "scan", "agent")(args))
    function = _load("edge_agent.cli", action.replace("-", "_"), "agent")
    return int(function(Path(args.config)) or 0)


def _ingest(args: argparse.Namespace) -> int:
    return int(_load("ingest.cli", "main", "server")(args) or 0)


def _api(args: argparse.Namespace) -> int:
    return int(_load("api.cli", "main", "server")(args) or 0)


def _db(args: argparse.Namespace) -> int:
    return int(_load("ingest.cli", "db_main", "server")(args) or 0)


def _profiles(args: argparse.Namespace) -> int:
    return int(_load("firmware_profiles.cli", "main", "agent")(args) or 0)


def _simulate(args: argparse.Namespace) -> int:
    return int(_load("simulators.cli", "main", "server")(args) or 0)


def _demo(args: argparse.Namespace) -> int:
    return int(_load("territoire.demo", "main", "server")(args) or 0)


def _doctor(args: argparse.Namespace) -> int:
    return int(_load("territoire.doctor", "main", "server")(args) or 0)


class _LazyVersion(argparse._VersionAction):
    """`--version` that looks the version up only when given: importlib.metadata costs every command start-up."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        self.version = f"territoire {_version()}"
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="territoire",
        description="Smart rural territory platform: gateways, ingest, API and savings metrics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_LazyVersion)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    agent = sub.add_parser("agent", help="edge agent for a gateway (Raspberry Pi)")
    agent_sub = agent.add_subparsers(dest="agent_action", required=True, metavar="ACTION")
    for name, text in (
        ("run", "run the agent with this config"),
        ("check-config", "validate a config file and print what is wrong"),
        ("doctor", "check serial ports, Modbus slaves, broker, clock, disk and buffer"),
    ):
        cmd = agent_sub.add_parser(name, help=text, description=text)
        cmd.add_argument("config", help="path to the agent's YAML config")
    agent_sub.add_parser("schema", help="print the config JSON Schema (for editors)")
    scan = agent_sub.add_parser("scan", help="find Modbus slave ids answering on a bus")
    scan.add_argument("target", help="serial port (/dev/ttyUSB0) or host:port for Modbus TCP")
    scan.add_argument("--baudrate", type=int, default=9600)
    scan.add_argument("--parity", choices=["N", "E", "O"], default="N")
    scan.add_argument("--first", type=int, default=1, help="first slave id to try (default 1)")
    scan.add_argument("--last", type=int, default=247, help="last slave id to try (default 247)")
    scan.add_argument("--timeout", type=float, default=0.2, help="seconds to wait per slave")
    agent.set_defaults(handler=_agent)

    ingest = sub.add_parser("ingest", help="MQTT to database ingestion service")
    ingest.add_argument("ingest_args", nargs=argparse.REMAINDER, help="run | dead-letters list | replay ...")
    ingest.set_defaults(handler=_ingest)

    api = sub.add_parser("api", help="HTTP API and dashboard")
    api.add_argument("api_args", nargs=argparse.REMAINDER, help="run [--host H --port P] ...")
    api.set_defaults(handler=_api)

    db = sub.add_parser("db", help="database schema: migrate, status")
    db.add_argument("db_args", nargs=argparse.REMAINDER, help="migrate --dsn DSN [--timescale auto|on|off]")
    db.set_defaults(handler=_db)

    profiles = sub.add_parser("profiles", help="firmware profiles: list, test golden cases")
    profiles.add_argument("profiles_args", nargs=argparse.REMAINDER, help="list | test [--dir DIR]")
    profiles.set_defaults(handler=_profiles)

    simulate = sub.add_parser("simulate", help="replay realistic sensor streams")
    simulate.add_argument("simulate_args", nargs=argparse.REMAINDER, help="scenario and options")
    simulate.set_defaults(handler=_simulate)

    demo = sub.add_parser("demo", help="run the whole platform locally with embedded defaults")
    demo.add_argument("--data-dir", type=Path, default=None, help="where the demo keeps its data")
    demo.add_argument("--reset", action="store_true", help="start from an empty database")
    demo.add_argument("--api-port", type=int, default=8000)
    demo.add_argument("--no-simulators", action="store_true", help="start services only")
    demo.add_argument(
        "--embedded",
        action="store_true",
        help="use the embedded broker and PostgreSQL even when Mosquitto and PostgreSQL are installed",
    )
    demo.add_argument("--exit-after", type=float, default=None, help=argparse.SUPPRESS)
    demo.set_defaults(handler=_demo)

    doctor = sub.add_parser("doctor", help="check this machine can run the platform")
    doctor.set_defaults(handler=_doctor)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("territoire")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except TerritoireError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
