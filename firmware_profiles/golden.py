"""Golden cases: each profile's own examples, run as tests and by `territoire profiles test`."""

from __future__ import annotations

from dataclasses import dataclass

from territoire_kernel.errors import CodecError

from .catalog import Catalog, Profile
from .registers import ReadBlock
from .schema import GoldenCase

DEVICE, TIME_US = "golden-device", 1_700_000_000_000_000


@dataclass(frozen=True)
class GoldenResult:
    profile: str
    case: str
    passed: bool
    detail: str = ""


def _run(profile: Profile, case: GoldenCase) -> str:
    """Empty when the case passes, else what differed."""
    try:
        if case.payload_hex is not None:
            assert case.f_port is not None
            decoded = profile.decode_uplink(bytes.fromhex(case.payload_hex), case.f_port, device_id=DEVICE, time_us=TIME_US)  # fmt: skip
            readings, kinds, warnings = decoded.readings, [e.kind for e in decoded.events], decoded.warnings
        else:
            if profile.register_map is None:
                return "register values given to a profile without a register map"
            values = {
                ReadBlock(r.function, r.address, len(r.values)): list(r.values) for r in case.registers or []
            }
            readings = tuple(profile.register_map.decode(values, device_id=DEVICE, time_us=TIME_US))
            kinds, warnings = [], ()
    except CodecError as exc:
        return "" if case.expect.error else f"unexpected codec error: {exc}"
    if case.expect.error:
        return "a codec error was expected"
    got = {r.metric: r.value for r in readings}
    problems = []
    for metric, value in case.expect.readings.items():
        if metric not in got:
            problems.append(f"{metric} missing")
        elif abs(got[metric] - value) > 1e-6 * max(1.0, abs(value)):
            problems.append(f"{metric} = {got[metric]}, expected {value}")
    problems += [f"unexpected reading {m} = {v}" for m, v in got.items() if m not in case.expect.readings]
    if case.expect.events != kinds:
        problems.append(f"events {kinds}, expected {case.expect.events}")
    for text in case.expect.warnings:
        if not any(text in warning for warning in warnings):
            problems.append(f"no warning containing {text!r} (got {list(warnings)})")
    return "; ".join(problems)


def run_profile(profile: Profile) -> list[GoldenResult]:
    results = []
    for case in profile.spec.golden:
        detail = _run(profile, case)
        results.append(GoldenResult(profile.id, case.name, not detail, detail))
    for down in profile.spec.downlink_golden:
        try:
            f_port, payload = profile.encode_downlink(down.action, down.params)
            detail = "" if (f_port, payload.hex()) == (down.expect_f_port, down.expect_hex.lower()) else (
                f"got fPort {f_port} {payload.hex()}, expected fPort {down.expect_f_port} {down.expect_hex}"
            )  # fmt: skip
        except CodecError as exc:
            detail = f"unexpected codec error: {exc}"
        results.append(GoldenResult(profile.id, f"downlink: {down.name}", not detail, detail))
    return results


def run_all(catalog: Catalog) -> list[GoldenResult]:
    return [result for profile in catalog for result in run_profile(profile)]
