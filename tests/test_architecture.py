"""Dependency direction: edge_agent, ingest and api never import each other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _imported_roots(package: str) -> set[str]:
    roots: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
    return roots


def test_agent_does_not_pull_in_the_server_stack() -> None:
    server_only = {
        "psycopg",
        "psycopg_pool",
        "fastapi",
        "uvicorn",
        "aiomqtt",
        "numpy",
        "pyarrow",
        "argon2",
        "astral",
    }
    for package in ("edge_agent", "territoire_kernel"):
        assert not _imported_roots(package) & server_only, package
