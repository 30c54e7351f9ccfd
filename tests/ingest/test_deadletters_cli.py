"""Dead letters listed and replayed after a fix; the db and ingest command lines."""

from __future__ import annotations

import argparse

import psycopg
import pytest

from ingest import cli
from ingest.deadletters import list_dead_letters, replay
from ingest.pipeline import Delivery
from ingest.writer import Writer
from territoire_kernel.errors import ConfigError
from territoire_kernel.wire import Batch

from .helpers import GATEWAY, UP, batch, count, payload, query


def test_replay_after_registering_the_device_stores_the_rows_once(plain_db: str) -> None:
    mixed = Batch(GATEWAY, "boot1", 0, batch(0, n=3).readings + batch(0, n=4, device="new-meter").readings)
    with Writer(plain_db) as writer:
        writer.write([Delivery(UP, payload(mixed))])
        writer.write([Delivery(UP, b"{broken")])
    letters = list_dead_letters(plain_db)
    assert [(d.reason, d.gateway_id) for d in letters] == [
        ("unknown device 'new-meter'", GATEWAY),
        (letters[1].reason, None),
    ]
    # Replaying before the fix changes nothing and says why.
    outcomes = replay(plain_db)
    assert [(o.ok, o.detail) for o in outcomes] == [
        (False, "unknown device 'new-meter'"),
        (False, letters[1].reason),
    ]
    with psycopg.connect(plain_db) as conn:
        conn.execute("INSERT INTO devices (id, tenant_id) VALUES ('new-meter', 'is-sur-tille')")
    outcomes = replay(plain_db, [letters[0].id])
    assert [(o.ok, o.detail) for o in outcomes] == [(True, "4 readings, 0 events stored")]
    assert replay(plain_db, [letters[0].id])[0].detail == "0 readings, 0 events stored"  # idempotent
    assert count(plain_db, "readings") == 7
    assert query(
        plain_db, "SELECT id, replayed_at IS NOT NULL, replay_error FROM dead_letters ORDER BY id"
    ) == [(letters[0].id, True, None), (letters[1].id, False, letters[1].reason)]
    assert [d.id for d in list_dead_letters(plain_db)] == [letters[1].id]
    assert len(list_dead_letters(plain_db, include_replayed=True)) == 2


def test_db_commands_migrate_and_report_status(
    fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.db_main(argparse.Namespace(db_args=["migrate", "--dsn", fresh_database, "--timescale", "off"]))
        == 0
    )
    assert capsys.readouterr().out == "storage: plain; applied: 0001_core, 0002_timeseries.plain\n"
    assert (
        cli.db_main(argparse.Namespace(db_args=["migrate", "--dsn", fresh_database, "--timescale", "off"]))
        == 0
    )
    assert "nothing (already up to date)" in capsys.readouterr().out
    assert cli.db_main(argparse.Namespace(db_args=["status", "--dsn", fresh_database])) == 0
    out = capsys.readouterr().out
    assert out.startswith("storage: plain\n  0001 core") and out.endswith("pending: none\n")


def test_ingest_dead_letter_commands(plain_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Writer(plain_db) as writer:
        writer.write([Delivery(UP, payload(batch(0, device="ghost")))])
    assert cli.main(argparse.Namespace(ingest_args=["dead-letters", "list", "--dsn", plain_db])) == 0
    out = capsys.readouterr().out
    assert "pending\tterritoire/v1/is-sur-tille/gw-mairie/up\tunknown device 'ghost'" in out
    assert out.endswith("1 dead letter(s)\n")
    assert cli.main(argparse.Namespace(ingest_args=["dead-letters", "replay", "--dsn", plain_db])) == 1
    assert "still failing\tunknown device 'ghost'" in capsys.readouterr().out
    args = ["dead-letters", "replay", "--dsn", plain_db, "--auto-register"]
    assert cli.main(argparse.Namespace(ingest_args=args)) == 0
    assert "ok\t10 readings, 0 events stored" in capsys.readouterr().out


def test_cli_config_errors_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERRITOIRE_DSN", raising=False)
    with pytest.raises(ConfigError, match=r"^dsn: give --dsn"):
        cli.main(argparse.Namespace(ingest_args=["dead-letters", "list"]))
    with pytest.raises(ConfigError, match="--mqtt-port: invalid int value"):
        cli.main(argparse.Namespace(ingest_args=["run", "--dsn", "x", "--mqtt-port", "abc"]))
    with pytest.raises(ConfigError, match="--timescale: invalid choice"):
        cli.db_main(argparse.Namespace(db_args=["migrate", "--dsn", "x", "--timescale", "yes"]))
    with pytest.raises(ConfigError, match=r"^share_group: invalid shared subscription group"):
        cli.main(argparse.Namespace(ingest_args=["run", "--dsn", "x", "--share-group", "a/b"]))
