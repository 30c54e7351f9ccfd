"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from psycopg_pool import AsyncConnectionPool

from api import problems
from api.deps import Principal, configure_pooled, requires, reset_pooled
from api.settings import Settings

# Each module exports `router`; the authorisation-matrix test covers all of them.
ROUTER_MODULES = (
    "api.routers.auth",
    "api.routers.timeseries",
    "api.routers.sensorthings",
    "api.routers.ngsi_ld",
    "api.routers.alerts",
    "api.routers.savings",
    "api.routers.inventory",
    "api.routers.commands",
    "api.routers.exports",
    "api.routers.audit",
    "api.dashboard.routes",
)

DESCRIPTION = """\
territoire: time series, inventory, commands, alerts, open-standard views
(OGC SensorThings, FIWARE NGSI-LD) and savings metrics for communes and
intercommunalities. Authenticate with `POST /auth/token` then send
`Authorization: Bearer <token>`. Errors are RFC 9457 problem details.
"""


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            settings.dsn,
            min_size=1,
            max_size=settings.pool_max_size,
            open=False,
            configure=configure_pooled,
            reset=reset_pooled,
        )
        await pool.open(wait=True, timeout=30)
        app.state.pool = pool
        alerts = None
        if settings.alert_interval_s is not None:
            from api.alerting.loop import run_alert_loop

            alerts = asyncio.create_task(run_alert_loop(app.state, settings.alert_interval_s))
        try:
            yield
        finally:
            if alerts is not None:
                alerts.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await alerts
            await pool.close()

    app = FastAPI(title="territoire API", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    problems.install(app)

    @app.get("/healthz", tags=["Exploitation"])
    async def healthz(_: Annotated[Principal, Depends(requires("public"))]) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["Exploitation"])
    async def readyz(_: Annotated[Principal, Depends(requires("public"))]) -> JSONResponse:
        try:
            async with app.state.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:  # any failure means not ready; the reason is reported
            return problems.problem(503, f"database not reachable: {type(exc).__name__}")
        return JSONResponse({"status": "ready"})

    @app.get("/", include_in_schema=False)
    async def root(_: Annotated[Principal, Depends(requires("public"))]) -> RedirectResponse:
        # Someone typing the server's address wants the (French) dashboard; the API has its own paths.
        return RedirectResponse("/tableau/", status_code=307)

    # After the probes: routing tries routes in order, and the probes, polled often, were last
    # behind every router (0.19 ms to match /healthz instead of 0.01 ms).
    for module in ROUTER_MODULES:
        app.include_router(importlib.import_module(module).router)
    return app
