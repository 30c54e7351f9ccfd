"""The alert engine against a real PostgreSQL: each rule kind, deduplication, resolution, delivery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg.types.json import Jsonb

from api.alerting.delivery import DeliveryConfig, DeliveryReport, deliver_pending
from api.alerting.engine import AlertChange, evaluate

from .seed import T0, add_event, add_readings, execute
from .sinks import smtp_sink, webhook_receiver

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def add_rule(dsn: str, kind: str, params: dict[str, Any] | None = None, channels: list[dict[str, Any]] | None = None,
             tenant: str = "tenant-a") -> int:  # fmt: skip
    rows = execute(
        dsn,
        "INSERT INTO alert_rules (tenant_id, kind, params, channels) VALUES (%s, %s, %s, %s) RETURNING id",
        [tenant, kind, Jsonb(params or {}), Jsonb(channels or [])],
    )
    return int(rows[0][0])


async def _evaluate(dsn: str, now: datetime) -> list[AlertChange]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        return await evaluate(conn, now)  # the context manager commits


def changes(dsn: str, now: datetime) -> list[tuple[str, str]]:
    return [(c.change, c.subject) for c in run(_evaluate(dsn, now))]


async def _deliver(dsn: str, config: DeliveryConfig, now: datetime) -> DeliveryReport:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        return await deliver_pending(conn, config, now)


def test_gateway_offline_opens_once_resolves_and_stays_in_its_tenant(data_dsn: str) -> None:
    add_rule(data_dsn, "gateway_offline", channels=[{"type": "webhook", "url": "http://127.0.0.1:9/x"}])
    execute(
        data_dsn, "UPDATE gateways SET state = 'offline'"
    )  # gw-b (tenant-b) too: not this rule's business
    assert changes(data_dsn, T0) == [("opened", "gateway:gw-a")]
    assert changes(data_dsn, T0 + timedelta(minutes=1)) == []  # deduplicated
    assert execute(data_dsn, "SELECT count(*) FROM alerts WHERE state = 'open'") == [(1,)]
    execute(data_dsn, "UPDATE gateways SET state = 'online', last_seen = %s WHERE id = 'gw-a'", [T0])
    assert changes(data_dsn, T0 + timedelta(minutes=2)) == [("resolved", "gateway:gw-a")]
    assert execute(data_dsn, "SELECT event FROM alert_notifications ORDER BY id") == [
        ("opened",),
        ("resolved",),
    ]
    # An online gateway whose last status is too old counts as offline when the rule asks for it.
    add_rule(data_dsn, "gateway_offline", {"stale_after_s": 600})
    assert changes(data_dsn, T0 + timedelta(minutes=11)) == [("opened", "gateway:gw-a")]


def test_device_silent_after_n_expected_intervals(readings_dsn: str) -> None:
    add_rule(readings_dsn, "device_silent", {"intervals": 3})
    # compteur-a reports every minute up to T0+9 min; relais-a reported once at T0; others are slow.
    assert changes(readings_dsn, T0 + timedelta(minutes=11)) == [("opened", "device:relais-a")]
    assert changes(readings_dsn, T0 + timedelta(minutes=13)) == [("opened", "device:compteur-a")]
    add_readings(
        readings_dsn, [(T0 + timedelta(minutes=12, seconds=30), "compteur-a", "power_w", 1.0, "tenant-a")]
    )
    assert changes(readings_dsn, T0 + timedelta(minutes=14)) == [("resolved", "device:compteur-a")]


def test_container_full_with_hysteresis(readings_dsn: str) -> None:
    add_rule(readings_dsn, "container_full", {"threshold": 0.7, "hysteresis": 0.05})
    now = T0 + timedelta(minutes=10)
    found = run(_evaluate(readings_dsn, now))  # distance 450 mm in 1200 mm, blind zone 200 mm: 75 %
    assert [(c.change, c.subject) for c in found] == [("opened", "device:bac-1")]
    assert found[0].details["filling_level"] == 0.75
    add_readings(
        readings_dsn, [(T0 + timedelta(minutes=20), "bac-1", "distance_mm", 490.0, "tenant-a")]
    )  # 71 %
    assert changes(readings_dsn, T0 + timedelta(minutes=21)) == []
    add_readings(
        readings_dsn, [(T0 + timedelta(minutes=30), "bac-1", "distance_mm", 560.0, "tenant-a")]
    )  # 64 %
    assert changes(readings_dsn, T0 + timedelta(minutes=31)) == [("resolved", "device:bac-1")]


def test_lighting_fault_power_against_commanded_state(readings_dsn: str) -> None:
    add_rule(readings_dsn, "lighting_fault", {"on_threshold_w": 50, "settle_s": 120})
    assert changes(readings_dsn, T0 + timedelta(minutes=10)) == []  # relay on, about 1 kW: healthy
    switched = T0 + timedelta(minutes=10)
    add_event(readings_dsn, switched, "relais-a", "circuit_switched", attrs={"on": False}, tenant="tenant-a")
    add_readings(readings_dsn, [(T0 + timedelta(minutes=11), "compteur-a", "power_w", 1100.0, "tenant-a")])
    assert changes(readings_dsn, T0 + timedelta(minutes=11)) == []  # still settling: no verdict
    add_readings(readings_dsn, [(T0 + timedelta(minutes=13), "compteur-a", "power_w", 1100.0, "tenant-a")])
    opened = run(_evaluate(readings_dsn, T0 + timedelta(minutes=13)))
    assert [(c.change, c.subject) for c in opened] == [("opened", "site:armoire-centre")]
    assert "allumé" in opened[0].message and opened[0].details["commanded_on"] is False
    add_readings(readings_dsn, [(T0 + timedelta(minutes=14), "compteur-a", "power_w", 5.0, "tenant-a")])
    assert changes(readings_dsn, T0 + timedelta(minutes=14)) == [("resolved", "site:armoire-centre")]
    # The reverse: the relay reading says on, the meter sees nothing.
    add_readings(readings_dsn, [(T0 + timedelta(minutes=20), "relais-a", "relay_on", 1.0, "tenant-a"),
                                (T0 + timedelta(minutes=23), "compteur-a", "power_w", 3.0, "tenant-a")])  # fmt: skip
    reverse = run(_evaluate(readings_dsn, T0 + timedelta(minutes=23)))
    assert [(c.change, c.subject) for c in reverse] == [("opened", "site:armoire-centre")]
    assert "sans puissance" in reverse[0].message


def test_low_battery_with_hysteresis(readings_dsn: str) -> None:
    add_rule(readings_dsn, "low_battery", {"pct": 20})
    add_readings(readings_dsn, [(T0, "place-1", "battery_pct", 15.0, "tenant-a"),
                                (T0, "compteur-b", "battery_pct", 5.0, "tenant-b")])  # fmt: skip
    assert changes(readings_dsn, T0 + timedelta(minutes=1)) == [("opened", "device:place-1")]
    add_readings(readings_dsn, [(T0 + timedelta(minutes=2), "place-1", "battery_pct", 22.0, "tenant-a")])
    assert changes(readings_dsn, T0 + timedelta(minutes=3)) == []  # inside the 5-point band
    add_readings(readings_dsn, [(T0 + timedelta(minutes=4), "place-1", "battery_pct", 30.0, "tenant-a")])
    assert changes(readings_dsn, T0 + timedelta(minutes=5)) == [("resolved", "device:place-1")]


def test_disabled_rule_and_deleted_rule_do_nothing(data_dsn: str) -> None:
    rule = add_rule(data_dsn, "gateway_offline")
    execute(data_dsn, "UPDATE alert_rules SET enabled = false WHERE id = %s", [rule])
    execute(data_dsn, "UPDATE gateways SET state = 'offline'")
    assert changes(data_dsn, T0) == []


def test_webhook_and_email_delivery_with_retry_and_resolved_notice(data_dsn: str) -> None:
    with webhook_receiver() as hook, smtp_sink() as sink:
        hook.fail_next = 1
        add_rule(data_dsn, "gateway_offline", channels=[
            {"type": "webhook", "url": hook.url}, {"type": "email", "to": ["astreinte@commune-a.fr"]}])  # fmt: skip
        config = DeliveryConfig(smtp_host="127.0.0.1", smtp_port=sink.port, smtp_from="alertes@territoire.test",
                                backoff_s=30, timeout_s=5)  # fmt: skip
        execute(data_dsn, "UPDATE gateways SET state = 'offline' WHERE id = 'gw-a'")
        changes(data_dsn, T0)
        assert run(_deliver(data_dsn, config, T0)) == DeliveryReport(sent=1, retrying=1, failed=0)
        assert run(_deliver(data_dsn, config, T0 + timedelta(seconds=10))) == DeliveryReport(
            0, 0, 0
        )  # not due
        assert run(_deliver(data_dsn, config, T0 + timedelta(seconds=31))) == DeliveryReport(1, 0, 0)
        assert [m["event"] for m in hook.received] == ["opened"]
        alert = hook.received[0]["alert"]
        assert (alert["tenant"], alert["kind"], alert["subject"], alert["state"]) == (
            "tenant-a",
            "gateway_offline",
            "gateway:gw-a",
            "open",
        )
        assert sink.recipients == [["astreinte@commune-a.fr"]]
        assert sink.messages[0]["Subject"] == "[territoire] Alerte : Passerelle Mairie hors ligne"
        assert "collectivité tenant-a" in sink.messages[0].get_content()

        execute(data_dsn, "UPDATE gateways SET state = 'online' WHERE id = 'gw-a'")
        assert changes(data_dsn, T0 + timedelta(minutes=5)) == [("resolved", "gateway:gw-a")]
        assert run(_deliver(data_dsn, config, T0 + timedelta(minutes=5))) == DeliveryReport(2, 0, 0)
        assert [m["event"] for m in hook.received] == ["opened", "resolved"]
        assert hook.received[1]["alert"]["resolved_at"] is not None
        assert sink.messages[1]["Subject"].startswith("[territoire] Alerte résolue : ")


def test_delivery_gives_up_after_max_attempts(data_dsn: str) -> None:
    add_rule(data_dsn, "gateway_offline", channels=[{"type": "email", "to": ["x@commune-a.fr"]}])
    execute(data_dsn, "UPDATE gateways SET state = 'offline' WHERE id = 'gw-a'")
    changes(data_dsn, T0)
    config = DeliveryConfig(smtp_host=None, max_attempts=2, backoff_s=1)
    assert run(_deliver(data_dsn, config, T0)) == DeliveryReport(0, 1, 0)
    assert run(_deliver(data_dsn, config, T0 + timedelta(seconds=5))) == DeliveryReport(0, 0, 1)
    status, attempts, error = execute(
        data_dsn, "SELECT status, attempts, last_error FROM alert_notifications"
    )[0]
    assert (status, attempts) == ("failed", 2) and "SMTP" in error


def test_a_broken_rule_does_not_stop_the_others(data_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    add_rule(data_dsn, "container_full", {"threshold": "plein"})  # written behind the API's back
    add_rule(data_dsn, "gateway_offline")
    execute(data_dsn, "UPDATE gateways SET state = 'offline' WHERE id = 'gw-a'")
    assert changes(data_dsn, T0) == [("opened", "gateway:gw-a")]
    assert "could not be evaluated" in caplog.text


def test_background_loop_evaluates_commits_and_delivers(data_dsn: str) -> None:
    from psycopg_pool import AsyncConnectionPool

    from api.alerting.loop import run_alert_loop

    async def scenario(url: str, received: list[dict[str, Any]]) -> None:
        async with AsyncConnectionPool(data_dsn, min_size=1, max_size=2, open=False) as pool:
            state = SimpleNamespace(pool=pool, settings=SimpleNamespace(smtp_host=None))
            task = asyncio.create_task(run_alert_loop(state, interval_s=0.05))
            # Delivered is not enough: the loop must also have recorded it before we stop it.
            for _ in range(200):
                if received:
                    async with pool.connection() as conn:
                        cursor = await conn.execute("SELECT status FROM alert_notifications")
                        if [r[0] for r in await cursor.fetchall()] == ["sent"]:
                            break
                await asyncio.sleep(0.05)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    with webhook_receiver() as hook:
        add_rule(data_dsn, "gateway_offline", channels=[{"type": "webhook", "url": hook.url}])
        execute(data_dsn, "UPDATE gateways SET state = 'offline' WHERE id = 'gw-a'")
        run(scenario(hook.url, hook.received))
        assert [m["event"] for m in hook.received] == ["opened"]
    assert execute(data_dsn, "SELECT status FROM alert_notifications") == [("sent",)]
