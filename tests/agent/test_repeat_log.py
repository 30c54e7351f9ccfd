"""A failure repeated every second is logged once, a new one again, the recovery once."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from edge_agent.repeat_log import RepeatLog


def test_repeats_are_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.repeat")
    failures = RepeatLog(log, "storing readings")
    with caplog.at_level(logging.INFO, logger="test.repeat"):
        for _ in range(100):
            failures.failed(sqlite3.OperationalError("disk I/O error"))
        failures.failed(sqlite3.OperationalError("database is locked"))
        failures.ok()
        failures.ok()
        failures.failed(sqlite3.OperationalError("disk I/O error"))
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert records == [
        ("ERROR", "storing readings failed: OperationalError: disk I/O error"),
        ("ERROR", "storing readings failed: OperationalError: database is locked"),
        ("WARNING", "storing readings works again (after 0 more failures)"),
        ("ERROR", "storing readings failed: OperationalError: disk I/O error"),
    ]
    assert caplog.records[0].exc_info is not None  # the first one keeps its traceback
