"""The background loop the application starts in its lifespan: evaluate, commit, deliver
(and audit the commands that expired without a result)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from api.alerting.delivery import DeliveryConfig, deliver_pending
from api.alerting.engine import evaluate
from api.routers.commands import audit_expired

log = logging.getLogger("territoire.api.alerts")


async def run_once(pool: Any, config: DeliveryConfig, now: datetime | None = None) -> None:
    moment = now or datetime.now(UTC)
    async with pool.connection() as conn:  # commits on exit
        for change in await evaluate(conn, moment):
            log.info("alert %s %s: %s (%s)", change.alert_id, change.change, change.message, change.subject)
    async with pool.connection() as conn:
        report = await deliver_pending(conn, config, moment)
        if report.retrying or report.failed:
            log.warning(
                "alert notifications: %d sent, %d to retry, %d given up",
                report.sent,
                report.retrying,
                report.failed,
            )


async def audit_expired_commands(pool: Any) -> None:
    async with pool.connection() as conn:  # commits on exit
        expired = await audit_expired(conn)
    if expired:
        log.info("%d commands expired without a result", expired)


async def _guarded(
    step: Callable[[], Awaitable[object]], what: str, failing: bool, interval_s: float
) -> bool:
    """Run one step of the loop; returns whether it is failing. Logs the transitions, not every failure."""
    try:
        await step()
    except asyncio.CancelledError:
        raise
    except Exception:
        if not failing:
            log.exception("%s failed; retrying every %.0f s", what, interval_s)
        return True
    if failing:
        log.info("%s recovered", what)
    return False


async def run_alert_loop(app_state: Any, interval_s: float = 60.0) -> None:
    """Run until cancelled. `app_state` carries `pool` (AsyncConnectionPool) and `settings`."""
    config = DeliveryConfig.from_settings(app_state.settings)
    pool = app_state.pool
    failing = auditing_failed = False
    while True:
        # Separate steps: a failure of one must not hold the other back.
        auditing_failed = await _guarded(
            lambda: audit_expired_commands(pool), "auditing expired commands", auditing_failed, interval_s
        )
        failing = await _guarded(lambda: run_once(pool, config), "alert loop pass", failing, interval_s)
        await asyncio.sleep(interval_s)
