"""`territoire doctor`: can this machine run the platform locally?

Each check says what it found and, when it fails, what to do about it.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from territoire.services import ServiceError, find_mosquitto, find_postgres_bindir, timescaledb_installed


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return Check(
        "Python ≥ 3.11",
        sys.version_info >= (3, 11),
        version,
        "install Python 3.11 (Debian bookworm's python3)",
    )


def _mosquitto() -> Check:
    try:
        return Check("Mosquitto broker", True, find_mosquitto())
    except ServiceError as exc:
        return Check("Mosquitto broker", False, str(exc), "apt-get install mosquitto")


def _postgres() -> list[Check]:
    try:
        bindir = find_postgres_bindir()
    except ServiceError as exc:
        return [Check("PostgreSQL server", False, str(exc), "apt-get install postgresql")]
    has_ts = timescaledb_installed(bindir)
    return [
        Check("PostgreSQL server", True, str(bindir)),
        Check(
            "TimescaleDB extension",
            has_ts,
            "installed" if has_ts else "absent: plain PostgreSQL partitions and rollup tables are used",
            "optional; install TimescaleDB for compression and continuous aggregates",
            required=False,
        ),
    ]


def _modules() -> list[Check]:
    groups = {
        "agent extra": ["paho.mqtt", "pymodbus", "serial"],
        "server extra": ["psycopg", "fastapi", "uvicorn", "aiomqtt", "numpy"],
    }
    checks = []
    for group, modules in groups.items():
        missing = [m for m in modules if importlib.util.find_spec(m.split(".")[0]) is None]
        extra = group.split()[0]
        checks.append(
            Check(
                f"Python packages ({group})",
                not missing,
                "all present" if not missing else f"missing: {', '.join(missing)}",
                f"pip install 'territoire[{extra}]'",
            )
        )
    return checks


def _disk(path: Path) -> Check:
    free_gb = shutil.disk_usage(path).free / 1e9
    return Check("Free disk space", free_gb >= 2, f"{free_gb:.1f} GB free in {path}", "free at least 2 GB")


def run_checks(path: Path) -> list[Check]:
    return [_python(), _mosquitto(), *_postgres(), *_modules(), _disk(path)]


def main(args: argparse.Namespace) -> int:
    checks = run_checks(Path.cwd())
    for check in checks:
        mark = "ok " if check.ok else ("FAIL" if check.required else "note")
        print(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"       → {check.fix}")
    failed = [c for c in checks if c.required and not c.ok]
    print("All required checks passed." if not failed else f"{len(failed)} required check(s) failed.")
    return 1 if failed else 0
