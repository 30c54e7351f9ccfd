"""The French dashboard: server-rendered pages under /tableau/ (docs/dashboard.md).

Pages need a session (cookie set by the login form); without one they answer
401 with the login form, so a bookmarked page leads back to itself after
signing in. A tenant the user cannot read answers 404, as in the JSON API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

import psycopg
from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from api.dashboard import data
from api.dashboard.render import PAGES, render
from api.dashboard.session import (
    SESSION_TTL,
    clear_session_cookie,
    principal_of,
    requires_session,
    session_token,
    set_session_cookie,
)
from api.deps import Principal, connection, forget_token, requires
from api.routers.savings import lighting_or_none
from api.users import issue_token_async, verify_password

router = APIRouter(prefix="/tableau", tags=["Tableau de bord"], include_in_schema=False)
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(connection)]
Session = Annotated[Principal | None, Depends(requires_session())]
Public = Annotated[Principal, Depends(requires("public"))]

_STATIC = resources.files("api.dashboard").joinpath("static")
STATIC_FILES = {
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "uPlot.min.css": ("vendor/uPlot.min.css", "text/css; charset=utf-8"),
    "uPlot.iife.min.js": ("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "uPlot.LICENSE": ("vendor/uPlot.LICENSE", "text/plain; charset=utf-8"),
}
_static_cache: dict[str, bytes] = {}
# Pages hold tenant data: never cached; scripts and styles only from this origin.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@router.get("/_static/{name}")
async def static_file(name: str, _: Public) -> Response:
    if name not in STATIC_FILES:
        return Response("fichier inconnu", status_code=404, media_type="text/plain; charset=utf-8")
    path, media_type = STATIC_FILES[name]
    if name not in _static_cache:
        _static_cache[name] = _STATIC.joinpath(path).read_bytes()
    return Response(
        _static_cache[name], media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )


def _safe_next(target: str) -> str:
    """Only a dashboard path of this site: no open redirect."""
    if target.startswith("/tableau/") and "//" not in target and "\\" not in target and len(target) < 300:
        return target
    return "/tableau/"


def login_page(next_url: str, *, error: str = "", status: int = 401) -> HTMLResponse:
    html = render("login.html.j2", {"title": "Connexion", "next": _safe_next(next_url), "error": error})
    headers = PAGE_HEADERS | {"WWW-Authenticate": 'Bearer realm="territoire"'}
    return HTMLResponse(html, status_code=status, headers=headers)


@router.post("/connexion")
async def sign_in(
    request: Request,
    _: Public,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=300)] = "/tableau/",
) -> Response:
    if not username or not password:
        return login_page(next_url, error="Saisissez votre identifiant et votre mot de passe.")
    # Own connection, committed before the redirect, so the next request finds the token.
    async with request.app.state.pool.connection() as conn:
        account = await verify_password(conn, username, password)
        if account is None:
            return login_page(next_url, error="Identifiant ou mot de passe incorrect.")
        token = await issue_token_async(conn, account.subject, ttl=SESSION_TTL, label="tableau de bord")
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    set_session_cookie(response, request, token)
    return response


@router.post("/deconnexion")
async def sign_out(request: Request, _: Public) -> Response:
    token = session_token(request)
    # Revoke only a token that verifies: a forged cookie cannot revoke someone else's.
    if token and await principal_of(request) is not None:
        async with request.app.state.pool.connection() as conn:
            await conn.execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
                (token.partition(".")[0],),
            )
        forget_token(token)  # the JSON API's token cache must not outlive the session
    response = RedirectResponse("/tableau/", status_code=303)
    clear_session_cookie(response)
    return response


def _not_found(principal: Principal, tenants: list[dict[str, Any]]) -> HTMLResponse:
    html = render(
        "not_found.html.j2", {"title": "Page introuvable", "principal": principal, "tenants": tenants}
    )
    return HTMLResponse(html, status_code=404, headers=PAGE_HEADERS)


@router.get("/")
async def home(
    request: Request, principal: Session, conn: Conn, collectivite: str = "", page: str = ""
) -> Response:
    if principal is None:
        return login_page(request.url.path)
    tenants = await data.tenants(conn, principal)
    chosen = collectivite or (tenants[0]["id"] if tenants else "")
    if chosen not in {t["id"] for t in tenants}:
        return _not_found(principal, tenants)
    slug = page if page in PAGES else ""
    return RedirectResponse(f"/tableau/{quote(chosen)}/{slug}", status_code=303)


async def _context(
    request: Request, principal: Principal | None, conn: psycopg.AsyncConnection[Any], tenant: str, page: str
) -> dict[str, Any] | Response:
    if principal is None:
        return login_page(request.url.path)
    tenants = await data.tenants(conn, principal)
    current = next((t for t in tenants if t["id"] == tenant), None)
    if current is None or not principal.can_read(tenant):
        return _not_found(principal, tenants)
    return {"principal": principal, "tenants": tenants, "tenant": current, "page": page, "title": PAGES[page]}


# A page's loader reads what the page shows; it gets the query string for the pages with options.
Loader = Callable[[psycopg.AsyncConnection[Any], str, Mapping[str, str]], Awaitable[dict[str, Any]]]


async def _show(
    request: Request,
    principal: Principal | None,
    conn: psycopg.AsyncConnection[Any],
    tenant: str,
    page: str,
) -> Response:
    """The page filled with what its loader reads, once the reader and the tenant are checked."""
    ctx = await _context(request, principal, conn, tenant, page)
    if isinstance(ctx, Response):
        return ctx
    template, load = PAGE_SOURCES[page]
    html = render(template, ctx | await load(conn, tenant, request.query_params))
    return HTMLResponse(html, headers=PAGE_HEADERS)


async def _overview(
    conn: psycopg.AsyncConnection[Any], tenant: str, _query: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "counts": await data.counts(conn, tenant),
        "sites": await data.sites(conn, tenant),
        "lighting": await lighting_or_none(conn, tenant),
        "waste": await data.waste_page(conn, tenant),
        "parking": await data.parking_page(conn, tenant),
    }


async def _lighting(
    conn: psycopg.AsyncConnection[Any], tenant: str, query: Mapping[str, str]
) -> dict[str, Any]:
    baseline, reporting, accepted = data.lighting_years(query)
    schedule, relights = await data.lighting_events(conn, tenant, reporting)
    inputs = await data.lighting_loaded(conn, tenant, baseline, reporting)
    return {
        "lighting": await lighting_or_none(conn, tenant, baseline, reporting, inputs) if inputs else None,
        "months": await data.lighting_months(inputs, baseline, reporting),
        "schedule": schedule,
        "relights": relights,
        "baseline_year": baseline,
        "reporting_year": reporting,
        "years": data.LIGHTING_YEARS,
        "years_refused": not accepted and ("reference" in query or "annee" in query),
    }


async def _waste(
    conn: psycopg.AsyncConnection[Any], tenant: str, _query: Mapping[str, str]
) -> dict[str, Any]:
    return {"waste": await data.waste_page(conn, tenant)}


async def _parking(
    conn: psycopg.AsyncConnection[Any], tenant: str, _query: Mapping[str, str]
) -> dict[str, Any]:
    return {"parking": await data.parking_page(conn, tenant)}


async def _gateways(
    conn: psycopg.AsyncConnection[Any], tenant: str, _query: Mapping[str, str]
) -> dict[str, Any]:
    return {"gateways": await data.gateways(conn, tenant), "devices": await data.devices(conn, tenant)}


async def _alerts(
    conn: psycopg.AsyncConnection[Any], tenant: str, _query: Mapping[str, str]
) -> dict[str, Any]:
    return {"alerts": await data.alerts(conn, tenant)}


# page slug -> (template, what it reads)
PAGE_SOURCES: dict[str, tuple[str, Loader]] = {
    "": ("overview.html.j2", _overview),
    "eclairage": ("lighting.html.j2", _lighting),
    "dechets": ("waste.html.j2", _waste),
    "stationnement": ("parking.html.j2", _parking),
    "passerelles": ("gateways.html.j2", _gateways),
    "alertes": ("alerts.html.j2", _alerts),
}


def _page_route(page: str) -> Callable[..., Awaitable[Response]]:
    async def show_page(request: Request, tenant: str, principal: Session, conn: Conn) -> Response:
        return await _show(request, principal, conn, tenant, page)

    return show_page


for _page in PAGE_SOURCES:
    router.add_api_route(
        f"/{{tenant}}/{_page}", _page_route(_page), methods=["GET"], name=f"page_{_page or 'overview'}"
    )
