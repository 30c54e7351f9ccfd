"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("territoire.api")
PROBLEM = "application/problem+json"


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        extra: dict[str, Any] = dict(exc.detail) if isinstance(exc.detail, dict) else {}
        if extra:
            detail = str(extra.pop("detail", detail))
        return problem(exc.status_code, detail, headers=dict(exc.headers or {}), **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in error.get("loc", ()) if p != "body"),
                "message": error.get("msg", ""),
            }
            for error in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        return problem(422, f"{first['field']}: {first['message']}", errors=errors)

    @app.exception_handler(psycopg.DataError)
    async def unstorable(_request: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value the database cannot take (a NUL character, a date out of its range, an overflow):
        # the request is at fault, not the server. Logged in case a handler built the value itself.
        log.warning("request refused by the database: %s", exc)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return problem(422, f"a value of the request cannot be handled: {reason}")

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "internal error; the server log has the details")
