"""Edge agent vs thingsboard-gateway: same Modbus TCP simulator, same register map, same broker.

    .venv/bin/python bench/compare_tb_gateway.py [--runs 3] [--devices 20] [--interval 1]
        [--steady 60] [--outage 60] [--tb-storage memory|sqlite] [--only agent|tb]

thingsboard-gateway is installed from PyPI into its own virtualenv
(bench/results/tb-venv, never the project's .venv). One Modbus TCP simulator
(iEM3155 meters, one unit id per device) and one local Mosquitto serve both
gateways, measured one after the other in each run (order alternating). Both
poll the schneider-iem3155 profile's 14 registers per device every --interval
seconds and publish at QoS 1 through a byte-counting loopback proxy.

Per gateway and run: CPU seconds (user+system of its process tree) per
100,000 readings polled, and bytes on the wire per reading (MQTT stream both
ways, through the proxy) over a --steady window; then the broker is stopped
for --outage seconds and restarted, and every poll the simulator answered from
10 s before the cut to 10 s after the restart is matched with the readings that
reached a subscriber: the difference is the loss. Peak resident memory is the
process tree's VmHWM at the end. Medians and min–max of --runs runs.
Targets (issue 8): ≤ 1/3 of its CPU per reading, ≤ 1/2 of its memory, no loss where it loses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tb_gateway.contenders import (
    TB_DEFAULT_SPEC,
    Contender,
    EdgeAgent,
    Simulator,
    TbGateway,
    TbServerStub,
    ensure_tb_gateway,
    profile_points,
)
from bench.tb_gateway.measure import (
    ByteCountingProxy,
    ReadingCounter,
    cpu_seconds,
    match_polls,
    peak_rss_mb,
    wait_stable,
)
from territoire.services import MosquittoServer

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Result:
    gateway: str
    run: int
    readings_polled: int  # over the steady window
    cpu_s: float
    cpu_s_per_100k: float
    peak_rss_mb: float
    bytes_up: int
    bytes_down: int
    readings_arrived: int  # over the steady window
    bytes_per_reading: float  # both directions
    outage_s: float
    outage_expected: int
    outage_received: int
    outage_lost: int
    duplicates: int


def wait_for(predicate: object, timeout: float, what: str, contender: Contender) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if not contender.alive():
            raise RuntimeError(f"{contender.name} exited:\n{contender.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{contender.name}: no {what} after {timeout:.0f} s:\n{contender.log_tail()}")
        time.sleep(0.2)


def measure(
    contender: Contender, run: int, broker: MosquittoServer, sim: Simulator, args: argparse.Namespace
) -> Result:
    per_poll = len(profile_points())
    proxy = ByteCountingProxy(broker.port)
    counter = ReadingCounter(broker.port, contender.topics, contender.decode, f"bench-sub-{time.time_ns()}")
    stub = TbServerStub(broker.port) if isinstance(contender, TbGateway) else None
    try:
        pid = contender.start(proxy.port)
        wait_for(lambda: counter.snapshot()[1] > 0, 60, "reading on the broker", contender)
        time.sleep(args.warmup)

        # Steady state: CPU and bytes per reading.
        def snapshot() -> tuple[float, float, tuple[int, int], tuple[int, int]]:
            return time.time(), cpu_seconds(pid), proxy.counts(), counter.snapshot()

        t_a, cpu_a, (up_a, down_a), (arr_a, _) = snapshot()
        time.sleep(args.steady)
        t_b, cpu_b, (up_b, down_b), (arr_b, _) = snapshot()
        polled = sim.count(t_a, t_b) * per_poll
        cpu = cpu_b - cpu_a
        arrived = arr_b - arr_a

        # Broker outage: stop, wait, restart on the same port; persistence keeps our subscriber's session.
        t_cut = time.time()
        broker.stop()
        time.sleep(args.outage)
        broker.start()
        t_back = time.time()
        print(f"    broker back after {t_back - t_cut:.1f} s; waiting for the backlog", flush=True)
        t0, t1 = t_cut - 10, t_back + 10
        time.sleep(max(0.0, t1 - time.time()))
        tol = 0.45 * args.interval
        window_ms = int((t0 - tol) * 1000), int((t1 + tol) * 1000)

        def in_window() -> int:
            received = counter.times_by_device(*window_ms)
            return sum(sum(c.values()) for c in received.values())

        wait_stable(in_window, quiet_s=max(10.0, 3 * args.interval), timeout_s=args.outage + 180)
        received = counter.times_by_device(*window_ms)
        loss = match_polls(sim.polls(t0, t1), received, per_poll, tol)
        peak = peak_rss_mb(pid)
        arrivals, distinct = counter.snapshot()
        if not contender.alive():
            raise RuntimeError(f"{contender.name} exited during the run:\n{contender.log_tail()}")
    finally:
        contender.stop()
        counter.close()
        if stub is not None:
            stub.close()
        proxy.close()
    return Result(
        gateway=contender.name,
        run=run,
        readings_polled=polled,
        cpu_s=cpu,
        cpu_s_per_100k=cpu / polled * 100_000 if polled else float("nan"),
        peak_rss_mb=peak,
        bytes_up=up_b - up_a,
        bytes_down=down_b - down_a,
        readings_arrived=arrived,
        bytes_per_reading=(up_b - up_a + down_b - down_a) / arrived if arrived else float("nan"),
        outage_s=t_back - t_cut,
        outage_expected=loss.expected,
        outage_received=loss.received,
        outage_lost=loss.lost,
        duplicates=arrivals - distinct,
    )


def spread(values: Sequence[float], fmt: str) -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def report(results: list[Result], args: argparse.Namespace, tb_version: str | None) -> str:
    names = [n for n in (EdgeAgent.name, TbGateway.name) if any(r.gateway == n for r in results)]
    by = {n: [r for r in results if r.gateway == n] for n in names}
    rows = [
        ("CPU s per 100,000 readings", "cpu_s_per_100k", ".2f"),
        ("peak RSS, MB (VmHWM)", "peak_rss_mb", ".1f"),
        ("bytes on the wire per reading (MQTT, both ways)", "bytes_per_reading", ".1f"),
        (f"readings lost, broker down {args.outage:g} s", "outage_lost", ".0f"),
        ("  of readings polled in that window", "outage_expected", ".0f"),
        ("readings delivered twice (whole run)", "duplicates", ".0f"),
    ]
    med = {
        n: {a: statistics.median(float(getattr(r, a)) for r in by[n]) for _l, a, _f in rows} for n in names
    }
    header = ["", *[f"{n} ({len(by[n])} runs)" for n in names]]
    if len(names) == 2:
        header.append("agent / TB (medians)")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for label, attr, fmt in rows:
        cells = [label, *(spread([float(getattr(r, attr)) for r in by[n]], fmt) for n in names)]
        if len(names) == 2:
            a, b = (med[n][attr] for n in names)
            cells.append(
                f"{a / b:.2f}" if b and attr in ("cpu_s_per_100k", "peak_rss_mb", "bytes_per_reading") else ""
            )
        lines.append(" | ".join(cells))
    out = "\n".join("| " + line + " |" for line in lines)
    out += (
        f"\n\n{args.devices} devices × {len(profile_points())} registers every {args.interval:g} s, "
        f"steady window {args.steady:g} s, outage {args.outage:g} s"
    )
    if tb_version:
        out += f"; thingsboard-gateway {tb_version}, {args.tb_storage} storage"
    if len(names) == 2:
        agent, tb = med[EdgeAgent.name], med[TbGateway.name]
        agent_lost = max(r.outage_lost for r in by[EdgeAgent.name])
        tb_lost = max(r.outage_lost for r in by[TbGateway.name])
        verdicts = [
            (
                "CPU ≤ 1/3 of TB's",
                "met" if agent["cpu_s_per_100k"] <= tb["cpu_s_per_100k"] / 3 else "NOT met",
            ),
            ("memory ≤ 1/2 of TB's", "met" if agent["peak_rss_mb"] <= tb["peak_rss_mb"] / 2 else "NOT met"),
            (
                "no loss where TB loses",
                ("met" if agent_lost == 0 else "NOT met")
                if tb_lost
                else f"not exercised (TB lost nothing either; agent lost {agent_lost})",
            ),
        ]
        out += "\ntargets: " + ", ".join(f"{what}: {verdict}" for what, verdict in verdicts)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="poll period, seconds")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--steady", type=float, default=60.0, help="CPU and bytes window, seconds")
    parser.add_argument("--outage", type=float, default=60.0, help="broker down, seconds")
    parser.add_argument("--tb-storage", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--tb-spec", default=TB_DEFAULT_SPEC, help="pip requirement for thingsboard-gateway")
    parser.add_argument("--tb-venv", type=Path, default=RESULTS / "tb-venv")
    parser.add_argument("--only", choices=("agent", "tb"))
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args(argv)

    tb_version = None
    if args.only != "agent":
        try:
            tb_version = ensure_tb_gateway(args.tb_venv, args.tb_spec)
        except (RuntimeError, OSError) as exc:
            print(f"thingsboard-gateway is NOT available, so no comparison is made: {exc}", file=sys.stderr)
            if args.only == "tb":
                return 2
            print("measuring the edge agent alone", file=sys.stderr)
    TbGateway.venv, TbGateway.storage = args.tb_venv, args.tb_storage

    workdir = Path(tempfile.mkdtemp(prefix="compare-tb-"))
    workdir.chmod(0o755)  # the broker may run as the unprivileged mosquitto account
    broker = MosquittoServer(workdir / "mosquitto")
    broker.start()
    sim = Simulator(args.devices)
    kinds: list[type[Contender]] = []
    if args.only != "tb":
        kinds.append(EdgeAgent)
    if args.only != "agent" and tb_version is not None:
        kinds.append(TbGateway)
    results: list[Result] = []
    try:
        for run in range(1, args.runs + 1):
            order = kinds if run % 2 else kinds[::-1]
            for kind in order:
                print(f"run {run}/{args.runs}: {kind.name}", flush=True)
                contender = kind(workdir / f"{kind.__name__}-{run}", args.devices, args.interval, sim.port)
                result = measure(contender, run, broker, sim, args)
                results.append(result)
                print(
                    f"    CPU {result.cpu_s_per_100k:.2f} s/100k, peak RSS {result.peak_rss_mb:.1f} MB, "
                    f"{result.bytes_per_reading:.1f} B/reading, lost {result.outage_lost} of "
                    f"{result.outage_expected} in the outage window, {result.duplicates} duplicates",
                    flush=True,
                )
    finally:
        sim.close()
        broker.stop()
    print()
    print(report(results, args, tb_version))
    if tb_version is None and args.only != "agent":
        print("\nthingsboard-gateway could not be installed: agent figures only, no comparison.")
    path = args.json or RESULTS / f"compare_tb_gateway-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "tb_version": tb_version,
                                "results": [asdict(r) for r in results]}, indent=2))  # fmt: skip
    print(f"figures of every run: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
