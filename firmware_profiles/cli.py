"""`territoire profiles ...`: list, show, test golden cases, decode a payload by hand.

Exit codes: 0 success, 1 a golden case failed or a payload did not decode,
2 a profile or the command line is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from territoire_kernel.errors import CodecError, ConfigError

from .catalog import Catalog, Profile, load_catalog
from .golden import run_all
from .schema import JsCodecSpec

CLI_TIME_US = 1_700_000_000_000_000  # decoded values are printed, not stored: any fixed time will do


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="territoire profiles", description="Firmware profiles.")
    # --dir is accepted before or after the action.
    parser.add_argument(
        "--dir", dest="top_dirs", action="append", type=Path, default=[], help=argparse.SUPPRESS
    )
    dirs = argparse.ArgumentParser(add_help=False)
    dirs.add_argument(
        "--dir", action="append", type=Path, default=[], help="also load profiles from DIR (repeatable)"
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", parents=[dirs], help="every profile: id, transport, vendor, model")
    show = sub.add_parser("show", parents=[dirs], help="one profile: codec, metrics, registers")
    show.add_argument("id")
    sub.add_parser("test", parents=[dirs], help="run every golden case; exit 1 if one fails")
    decode = sub.add_parser("decode", parents=[dirs], help="decode an uplink payload given in hex")
    decode.add_argument("id")
    decode.add_argument("hex", help="payload bytes in hex, e.g. 0175640382d204040000")
    decode.add_argument("--port", type=int, required=True, help="LoRaWAN fPort")
    return parser


def main(args: argparse.Namespace | list[str]) -> int:
    argv = list(getattr(args, "profiles_args", args))
    try:
        options = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage
        return int(exc.code or 0)
    try:
        catalog = load_catalog([*options.top_dirs, *options.dir])
        if options.action == "list":
            return _list(catalog)
        if options.action == "show":
            return _show(catalog.get(options.id))
        if options.action == "decode":
            return _decode(catalog.get(options.id), options.hex, options.port)
        return _test(catalog)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _transport(profile: Profile) -> str:
    if profile.register_map is not None:
        return "modbus"
    codec = profile.spec.lorawan.codec if profile.spec.lorawan else None
    return "lorawan/js" if isinstance(codec, JsCodecSpec) else "lorawan"


def _list(catalog: Catalog) -> int:
    for profile in catalog:
        print(f"{profile.id:24} {_transport(profile):10} {profile.spec.vendor} {profile.spec.model}")
    return 0


def _show(profile: Profile) -> int:
    spec = profile.spec
    print(f"{profile.id}: {spec.vendor} {spec.model} ({_transport(profile)})")
    print(f"  follows: {spec.documentation}")
    print(f"  file: {profile.source}")
    if spec.lorawan is not None:
        codec = spec.lorawan.codec
        print(f"  codec: {'js ' + codec.js if isinstance(codec, JsCodecSpec) else 'native ' + codec.native}")
    if spec.downlink is not None:
        print(f"  downlink: native {spec.downlink.native}")
    if profile.register_map is not None:
        for point in profile.register_map.points:
            print(
                f"  {point.metric:22} {point.function:14} {point.address:5} {point.type:4}"
                f" x{point.scale:g} {point.unit}"
            )
        for block in profile.register_map.plan_reads():
            print(f"  read {block.function} {block.address} count {block.count}")
    print(f"  golden cases: {len(spec.golden) + len(spec.downlink_golden)}")
    return 0


def _decode(profile: Profile, text: str, f_port: int) -> int:
    try:
        payload = bytes.fromhex(text)
    except ValueError:
        print(f"cannot decode: {text!r} is not hexadecimal", file=sys.stderr)
        return 1
    try:
        decoded = profile.decode_uplink(payload, f_port, device_id="cli", time_us=CLI_TIME_US)
    except CodecError as exc:
        print(f"cannot decode: {exc}", file=sys.stderr)
        return 1
    for reading in decoded.readings:
        flag = f" [{reading.quality.name}]" if reading.quality else ""
        print(f"{reading.metric:22} {reading.value:g} {reading.unit}{flag}")
    for event in decoded.events:
        print(f"event {event.kind} {dict(event.attrs)}")
    for warning in decoded.warnings:
        print(f"warning: {warning}")
    return 0


def _test(catalog: Catalog) -> int:
    results = run_all(catalog)
    for result in results:
        mark = "ok  " if result.passed else "FAIL"
        print(f"{mark} {result.profile:24} {result.case}")
        if result.detail:
            print(f"     {result.detail}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
