"""`territoire profiles ...`: list, show, test golden cases, decode a payload by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from territoire_kernel.errors import CodecError

from .catalog import load_catalog
from .golden import run_all


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="territoire profiles", description="Firmware profiles.")
    parser.add_argument("--dir", action="append", type=Path, default=[], help="also load profiles from DIR")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="every profile: id, vendor, model, transport")
    show = sub.add_parser("show", help="one profile's metrics and registers")
    show.add_argument("id")
    sub.add_parser("test", help="run every golden case; exit 1 if one fails")
    decode = sub.add_parser("decode", help="decode an uplink payload given in hex")
    decode.add_argument("id")
    decode.add_argument("hex")
    decode.add_argument("--port", type=int, required=True, help="LoRaWAN fPort")
    return parser


def main(args: argparse.Namespace | list[str]) -> int:
    argv = list(getattr(args, "profiles_args", args))
    options = _parser().parse_args(argv)
    catalog = load_catalog(options.dir)
    if options.action == "list":
        for profile in catalog:
            transport = "modbus" if profile.register_map is not None else "lorawan"
            print(f"{profile.id:24} {transport:8} {profile.spec.vendor} {profile.spec.model}")
        return 0
    if options.action == "show":
        profile = catalog.get(options.id)
        print(
            f"{profile.id}: {profile.spec.vendor} {profile.spec.model}\n  follows: {profile.spec.documentation}"
        )
        for point in profile.register_map.points if profile.register_map else ():
            print(
                f"  {point.metric:22} {point.function:8} {point.address:5} {point.type:4} x{point.scale} {point.unit}"
            )
        return 0
    if options.action == "decode":
        try:
            decoded = catalog.get(options.id).decode_uplink(
                bytes.fromhex(options.hex), options.port, device_id="cli", time_us=1_700_000_000_000_000
            )
        except (CodecError, ValueError) as exc:
            print(f"cannot decode: {exc}", file=sys.stderr)
            return 1
        for reading in decoded.readings:
            print(f"{reading.metric:22} {reading.value:g} {reading.unit}")
        for event in decoded.events:
            print(f"event {event.kind} {event.attrs}")
        for warning in decoded.warnings:
            print(f"warning: {warning}")
        return 0
    results = run_all(catalog)
    for result in results:
        mark = "ok  " if result.passed else "FAIL"
        print(
            f"{mark} {result.profile:24} {result.case}" + (f"\n     {result.detail}" if result.detail else "")
        )
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
