"""`territoire agent ...`: run, check-config, doctor, schema, scan."""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from territoire_kernel.errors import ConfigError

from .config import AgentConfig, load_config
from .config import schema as config_schema

log = logging.getLogger("edge_agent")


def schema() -> str:
    return config_schema()


def load_catalog(profile_dirs: Sequence[Path] = ()) -> Any:
    """firmware_profiles is imported only here: check-config and schema never need it."""
    module = importlib.import_module("firmware_profiles")
    loader = module.load_catalog
    return loader(extra_dirs=list(profile_dirs)) if profile_dirs else loader()


def check_config(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 2
    devices = sum(len(s.devices) for s in config.sources)
    print(
        f"OK   {path}: gateway {config.tenant}/{config.gateway_id}, broker {config.mqtt.host}:{config.mqtt.port}, "
        f"{len(config.sources)} sources, {devices} devices, buffer {config.buffer.path} "
        f"(cap {config.buffer.max_bytes / 2**20:.0f} MiB)"
    )
    return 0


# --------------------------------------------------------------------------- run


def run(config_path: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    config = load_config(config_path)
    from .lean import import_mqtt_without_openssl, needs_openssl

    if not needs_openssl(config) and import_mqtt_without_openssl():
        log.info("no TLS configured: OpenSSL not loaded")
    from .agent import Agent
    from .notify import sd_notify, watchdog_interval_s

    catalog = load_catalog(config.profile_dirs) if config.sources else None
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent = Agent(config, catalog)
    agent.start()
    # Start-up garbage (YAML documents, validation) goes now; what is left lives as long as
    # the agent: out of the collector's way, so its passes stay short.
    gc.collect()
    gc.freeze()
    metrics = None
    if config.metrics is not None:
        from .metrics import serve

        metrics = serve(agent.health, config.metrics.host, config.metrics.port)
    sd_notify("READY=1")
    tick = watchdog_interval_s() or 10.0
    try:
        while not stop.wait(tick):
            if agent.healthy():
                sd_notify("WATCHDOG=1")
            else:
                log.error("a data thread died; systemd's watchdog will restart the agent")
    finally:
        sd_notify("STOPPING=1")
        if metrics is not None:
            metrics.shutdown()
        agent.stop()
    return 0


# --------------------------------------------------------------------------- doctor


def _line(ok: bool, name: str, detail: str, fix: str = "") -> bool:
    text = f"{'OK  ' if ok else 'FAIL'} {name}: {detail}"
    if not ok and fix:
        text += f" -> {fix}"
    print(text)
    return ok


def doctor(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        _line(False, "config", str(exc), "fix the file; `territoire agent check-config` shows the same error")
        return 1
    results = [_line(True, "config", f"{path} is valid")]
    results += _doctor_profiles(config)
    from .sources.probe import probe

    for source in config.sources:
        for result in probe(source):
            results.append(_line(result.ok, result.name, result.detail, result.fix))
    results.append(_doctor_broker(config))
    results.append(_doctor_clock(config))
    results += _doctor_buffer(config)
    return 0 if all(results) else 1


def _doctor_profiles(config: AgentConfig) -> list[bool]:
    if not config.sources:
        return []
    try:
        catalog = load_catalog(config.profile_dirs)
    except Exception as exc:  # whatever the catalog raises, doctor reports it
        return [_line(False, "profiles", f"cannot load the profile catalog: {exc}", "check profile_dirs")]
    missing = []
    for source in config.sources:
        for device in source.devices:
            try:
                catalog.get(device.profile)
            except Exception:  # the catalog's "unknown profile" error
                missing.append(f"{device.device_id}: {device.profile}")
    if missing:
        return [_line(False, "profiles", "unknown " + ", ".join(missing), "see `territoire profiles list`")]
    return [_line(True, "profiles", "every device's profile is known")]


def _doctor_broker(config: AgentConfig) -> bool:
    from .publisher import probe_broker

    try:
        ok, detail = probe_broker(config.mqtt, f"{config.client_id}-doctor")
    except ConfigError as exc:
        return _line(False, "broker", str(exc), "create the password file, readable by the agent's user")
    return _line(ok, "broker", detail, "check host, port, TLS (ca_file) and this gateway's username/password")


def _doctor_clock(config: AgentConfig) -> bool:
    from .clock import Clock

    clock = Clock(config.clock)
    fix = {
        "kernel": "enable NTP (timedatectl set-ntp true) and check that UDP 123 is allowed out",
        "marker": f"start systemd-timesyncd; it creates {config.clock.marker_file} once synchronised",
        "trusted": "",
    }[config.clock.policy]
    detail = (
        "synchronised" if clock.synced else "not synchronised: readings are flagged and held for correction"
    )
    return _line(clock.synced, "clock", f"{detail} (policy {config.clock.policy})", fix)


def _doctor_buffer(config: AgentConfig) -> list[bool]:
    path = config.buffer.path
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = shutil.disk_usage(existing)
    used = path.stat().st_size if path.exists() else 0
    room = usage.free + used
    need = int(config.buffer.max_bytes * 1.1) + 16 * 2**20  # cap + SQLite overhead + WAL
    results = [
        _line(
            room >= need,
            "disk",
            f"{usage.free / 2**20:.0f} MiB free on {existing}, buffer cap {config.buffer.max_bytes / 2**20:.0f} MiB",
            "free space or lower buffer.max_bytes (the buffer would hit a full disk before its cap)",
        )
    ]
    writable = os.access(folder if folder.exists() else existing, os.W_OK)
    results.append(
        _line(
            writable,
            "buffer directory",
            f"{folder} {'is writable' if writable else 'is not writable by this user'}",
            "run as the agent's user, or fix the StateDirectory permissions",
        )
    )
    if not path.exists():
        results.append(_line(True, "buffer", f"{path} will be created at the first run"))
        return results
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            count, items, oldest = db.execute(
                "SELECT count(*), coalesce(sum(items), 0), min(created_us) FROM batches"
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        results.append(
            _line(
                False,
                "buffer",
                f"{path} cannot be read: {exc}",
                "check the file permissions; a damaged file is set aside by the agent at its next start",
            )
        )
        return results
    age = f", oldest {(time.time() * 1e6 - oldest) / 3.6e9:.1f} h old" if oldest else ""
    results.append(
        _line(
            check == "ok",
            "buffer",
            f"{count} batches ({items} readings) waiting{age}; integrity {check}",
            "stop the agent, move the damaged file away, start it again (it creates an empty buffer)",
        )
    )
    return results


# --------------------------------------------------------------------------- scan


def scan(args: argparse.Namespace) -> int:
    from .sources.probe import scan as probe_scan

    target: str = args.target
    units = range(args.first, args.last + 1)
    if target.startswith("/"):
        found = probe_scan(
            port=target, slave_range=units, baudrate=args.baudrate, parity=args.parity, timeout=args.timeout
        )
    else:
        host, _, port = target.rpartition(":") if ":" in target else (target, "", "502")
        found = probe_scan(host=host, tcp_port=int(port), slave_range=units, timeout=args.timeout)
    if not found:
        print(f"no slave answered on {target} (ids {args.first}..{args.last})")
        return 1
    print(f"{len(found)} slave(s) answer on {target}: {', '.join(map(str, found))}")
    return 0
