"""The background loop the application starts in its lifespan: evaluate, commit, deliver
(and audit the commands that expired without a result)."""

from __future__ import annotations

import asyncio
import logging
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


async def run_alert_loop(app_state: Any, interval_s: float = 60.0) -> None:
    """Run until cancelled. `app_state` carries `pool` (AsyncConnectionPool) and `settings`."""
    config = DeliveryConfig.from_settings(app_state.settings)
    failing = auditing_failed = False
    while True:
        # Its own step: a failure there must not hold the alerts back, nor the reverse.
        try:
            await audit_expired_commands(app_state.pool)
            auditing_failed = False
        except asyncio.CancelledError:
            raise
        except Exception:
            if not auditing_failed:
                log.exception("auditing expired commands failed; retrying every %.0f s", interval_s)
            auditing_failed = True
        try:
            await run_once(app_state.pool, config)
            if failing:
                log.info("alert loop recovered")
            failing = False
        except asyncio.CancelledError:
            raise
        except Exception:
            # Log the transition to failure once, not every interval.
            if not failing:
                log.exception("alert loop pass failed; retrying every %.0f s", interval_s)
            failing = True
        await asyncio.sleep(interval_s)
