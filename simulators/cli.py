"""`territoire simulate ...`: scenario streams into a broker, and stream record/replay.

territoire simulate is-sur-tille --mqtt-host H --mqtt-port P --seed 1 --speed 0 [--inventory-dsn DSN]
territoire simulate montbeliard ...   (ChirpStack v4 uplinks with LDDS75 payloads)
territoire simulate parking ...   (ChirpStack v4 uplinks with TPS110 payloads)
territoire simulate record --topic '#' --out FILE [--duration S]
territoire simulate replay FILE --speed 100
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

from . import replay as replay_mod
from .scenarios import is_sur_tille, montbeliard, parking
from .scenarios.common import batches
from .scenarios.transport import Pacer, Publisher, publish_batches, publish_lns, register_inventory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="territoire simulate", description="Scenario simulators and stream replay."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for name, text in (
        ("is-sur-tille", "street lighting 2021-2023 (cabinet meters and controllers, kernel batches)"),
        (
            "montbeliard",
            "bio-waste containers, fixed then sensor-driven rounds (ChirpStack v4 uplinks, LDDS75 payloads)",
        ),
        ("parking", "on-street parking sensors (ChirpStack v4 uplinks, TPS110 payloads)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--mqtt-host", default="127.0.0.1")
        p.add_argument("--mqtt-port", type=int, default=1883)
        p.add_argument("--mqtt-username")
        p.add_argument("--mqtt-password")
        p.add_argument("--tenant", help="tenant id (default: the scenario's)")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument(
            "--speed",
            type=float,
            default=0.0,
            help="simulated seconds per wall second (0: as fast as possible)",
        )
        p.add_argument(
            "--inventory-dsn", help="register tenant, sites, gateways and devices in this database first"
        )
        p.add_argument("--size", type=int, help="cabinets / containers / spaces")
        p.add_argument("--interval", type=int, help="seconds between meter or sensor readings")
        p.add_argument("--start", type=date.fromisoformat)
        p.add_argument("--end", type=date.fromisoformat, help="exclusive")
        p.add_argument(
            "--uplink-interval",
            type=int,
            default=43_200 if name == "montbeliard" else None,
            help="seconds between a container sensor's uplinks (montbeliard; a multiple of --interval)",
        )
        p.add_argument(
            "--application-id",
            default="3d1a0e5c-8e0b-4a1f-9d52-0c5b6a7e8f90",
            help="ChirpStack application (montbeliard, parking)",
        )
    rec = sub.add_parser("record", help="capture a live MQTT stream to a file")
    rec.add_argument("--mqtt-host", default="127.0.0.1")
    rec.add_argument("--mqtt-port", type=int, default=1883)
    rec.add_argument(
        "--topic", action="append", default=None, help="subscription filter (repeatable; default '#')"
    )
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--duration", type=float, help="seconds to record (default: until --count or Ctrl-C)")
    rec.add_argument("--count", type=int)
    rep = sub.add_parser("replay", help="publish a recording again at x1..x10000")
    rep.add_argument("file", type=Path)
    rep.add_argument("--mqtt-host", default="127.0.0.1")
    rep.add_argument("--mqtt-port", type=int, default=1883)
    rep.add_argument("--speed", type=float, default=1.0)
    return parser


def _overrides(args: argparse.Namespace, size_field: str) -> dict[str, object]:
    out: dict[str, object] = {"seed": args.seed}
    for key, value in (
        (size_field, args.size),
        ("start", args.start),
        ("end", args.end),
        ("tenant", args.tenant),
    ):
        if value is not None:
            out[key] = value
    if args.interval is not None and size_field != "spaces":
        out["interval_s"] = args.interval
    return out


def run_scenario(args: argparse.Namespace) -> int:
    publisher = Publisher(
        args.mqtt_host,
        args.mqtt_port,
        f"simulator-{args.action}-{args.seed}",
        username=args.mqtt_username,
        password=args.mqtt_password,
    )
    pacer = Pacer(args.speed)
    try:
        if args.action == "is-sur-tille":
            lcfg = is_sur_tille.LightingConfig(**_overrides(args, "cabinets"))  # type: ignore[arg-type]
            if args.inventory_dsn:
                register_inventory(args.inventory_dsn, is_sur_tille.inventory(lcfg))
            sent = publish_batches(
                publisher, lcfg.tenant, batches(is_sur_tille.chunks(lcfg), lcfg.seed), pacer
            )
        elif args.action == "montbeliard":
            wcfg = montbeliard.WasteConfig(**_overrides(args, "containers"))  # type: ignore[arg-type]
            if args.inventory_dsn:
                register_inventory(args.inventory_dsn, montbeliard.inventory(wcfg))
            if args.uplink_interval is not None:
                wcfg = replace(wcfg, uplink_interval_s=args.uplink_interval)
            sent = publish_lns(publisher, montbeliard.lns_uplinks(wcfg, args.application_id), pacer)
        else:
            overrides = _overrides(args, "spaces")
            overrides.pop("end", None)
            pcfg = parking.ParkingConfig(**overrides)  # type: ignore[arg-type]
            if args.inventory_dsn:
                register_inventory(args.inventory_dsn, parking.inventory(pcfg))
            sent = publish_lns(publisher, parking.lns_uplinks(pcfg, args.application_id), pacer)
    finally:
        publisher.close()
    print(f"{args.action}: {sent} messages published to {args.mqtt_host}:{args.mqtt_port}")
    return 0


def main(args: argparse.Namespace | Sequence[str]) -> int:
    argv = list(args.simulate_args) if isinstance(args, argparse.Namespace) else list(args)
    ns = build_parser().parse_args(argv)
    if ns.action == "record":
        n = replay_mod.record(
            ns.mqtt_host,
            ns.mqtt_port,
            ns.topic or ["#"],
            ns.out,
            duration_s=ns.duration,
            max_messages=ns.count,
        )
        print(f"recorded {n} messages to {ns.out}")
        return 0
    if ns.action == "replay":
        n = replay_mod.replay(ns.file, ns.mqtt_host, ns.mqtt_port, speed=ns.speed)
        print(f"replayed {n} messages at x{ns.speed:g}")
        return 0
    return run_scenario(ns)
