"""The dashboard in a real headless Chromium (Debian's), against uvicorn and a seeded database.

Figures on the pages are compared with the JSON API's answers for the same data;
axe-core checks every page; screenshots and page weights go to the artifacts directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from api.dashboard.render import PAGES, fr

from .conftest import CHROMIUM, Served
from .seed import PASSWORD

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is not installed")
TENANT = "tenant-a"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    yield ctx
    ctx.close()


def _api(served: Served, path: str, **params: Any) -> Any:
    token = served.token("elu-a")
    answer = httpx.get(
        f"{served.url}{path}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _log_in(page: Page, served: Served, username: str, target: str) -> None:
    answer = page.goto(f"{served.url}{target}")
    assert answer is not None and answer.status == 401  # the page asks for a session
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_load_state("networkidle")
    assert page.url == f"{served.url}{target}"


def _value(page: Page, key: str) -> float:
    return float(page.locator(f"[data-key='{key}']").first.get_attribute("data-value") or "nan")


def _text(page: Page, key: str) -> str:
    return page.locator(f"[data-key='{key}']").first.inner_text()


def _axe_serious(page: Page) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_every_page_matches_the_api_and_passes_axe(
    context: BrowserContext, served: Served, artifacts: Path
) -> None:
    page = context.new_page()
    weights: dict[str, int] = {}
    page.on("response", lambda r: weights.__setitem__(r.url, len(r.body()) if r.ok else 0))
    _log_in(page, served, "elu-a", f"/tableau/{TENANT}/")
    violations: dict[str, list[str]] = {}
    page_bytes: dict[str, int] = {}
    for slug, label in PAGES.items():
        weights.clear()
        page.goto(f"{served.url}/tableau/{TENANT}/{slug}")
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").inner_text().startswith(label)
        assert page.locator("nav[aria-label='Menu principal'] a[aria-current='page']").inner_text() == label
        for chart in page.locator("[data-chart]").all():  # drawn by uPlot, described for screen readers
            assert chart.get_attribute("role") == "img" and chart.get_attribute("aria-label")
            assert chart.locator("canvas").count() >= 1
        page.screenshot(path=str(artifacts / f"tableau-{slug or 'vue-ensemble'}.png"), full_page=True)
        violations[slug] = _axe_serious(page)
        page_bytes[slug or "vue-ensemble"] = sum(weights.values())
        _check_figures(page, served, slug)
    (artifacts / "page-weights.json").write_text(json.dumps(page_bytes, indent=2))
    assert not any(violations.values()), violations
    assert max(page_bytes.values()) < 150_000, page_bytes  # low-bandwidth friendly, uPlot included


def _check_figures(page: Page, served: Served, slug: str) -> None:
    if slug in ("", "eclairage"):
        light = _api(served, f"/tenants/{TENANT}/savings/lighting")["result"]
        prefix = "lighting_" if slug == "" else ""
        for key in ("savings_kwh", "cost_avoided_eur", "co2_avoided_kg"):
            assert _value(page, prefix + key) == pytest.approx(light[key])
        assert _text(page, prefix + "savings_kwh") == fr(light["savings_kwh"])
    if slug == "eclairage":
        assert _value(page, "adjusted_baseline_kwh") == pytest.approx(light["adjusted_baseline_kwh"])
        rows = page.locator("#graphique-eclairage-donnees ~ details tbody tr")
        assert rows.count() == 12
    if slug == "dechets":
        waste = _api(served, f"/tenants/{TENANT}/savings/waste")["result"]
        assert _value(page, "rounds_before") == pytest.approx(waste["baseline"]["rounds_per_week"])
        assert _value(page, "rounds_after") == pytest.approx(waste["reporting"]["rounds_per_week"])
        assert _value(page, "km_avoided") == pytest.approx(waste["avoided_per_week"]["km"])
        assert _text(page, "km_avoided") == fr(waste["avoided_per_week"]["km"])
    if slug == "stationnement":
        start = page.locator("[data-key='start']").get_attribute("data-value")
        end = page.locator("[data-key='end']").get_attribute("data-value")
        parking = _api(served, f"/tenants/{TENANT}/savings/parking", start=start, end=end)["result"]
        for key in ("occupancy_pct", "cruising_km_avoided", "time_above_saturation_pct", "spaces"):
            assert _value(page, key) == pytest.approx(parking[key])
    if slug == "passerelles":
        gateways = _api(served, f"/tenants/{TENANT}/gateways")
        assert _value(page, "online") == sum(g["state"] == "online" for g in gateways)
        offline = next(g for g in gateways if g["state"] == "offline")
        row = page.locator(f"tr[data-gateway='{offline['id']}']")
        assert row.locator("[data-key='buffer']").get_attribute("data-value") == str(
            offline["buffer_readings"]
        )
        assert "Hors ligne" in row.inner_text()
        latest = _api(served, f"/tenants/{TENANT}/latest", metric="rssi_dbm")["rows"]
        assert len(latest) == 4, "the seed has link-quality readings for four devices"
        for _time, device, _metric, value, _quality in latest:
            cell = page.locator(f"tr[data-device='{device}'] [data-key='rssi']")
            assert float(cell.get_attribute("data-value") or "nan") == pytest.approx(value)
    if slug == "alertes":
        alerts = _api(served, "/alerts", tenant=TENANT)
        assert _value(page, "open_alerts") == len(alerts) == 1
        assert alerts[0]["message"] in page.locator("table.alerts").inner_text()


def test_lighting_page_compares_the_years_chosen(context: BrowserContext, served: Served) -> None:
    page = context.new_page()
    _log_in(page, served, "elu-a", f"/tableau/{TENANT}/eclairage")
    page.get_by_label("Année de référence").select_option("2021")
    page.get_by_label("Année comparée").select_option("2022")
    page.get_by_role("button", name="Comparer").click()
    page.wait_for_url(f"**/tableau/{TENANT}/eclairage?reference=2021&annee=2022")
    chosen = _api(served, f"/tenants/{TENANT}/savings/lighting", baseline=2021, reporting=2022)["result"]
    default = _api(served, f"/tenants/{TENANT}/savings/lighting")["result"]
    assert chosen["savings_kwh"] != pytest.approx(default["savings_kwh"])  # the years do matter
    for key in ("savings_kwh", "adjusted_baseline_kwh", "cost_avoided_eur", "co2_avoided_kg"):
        assert _value(page, key) == pytest.approx(chosen[key])
    assert page.locator("h2#bilan").inner_text() == "Bilan 2022"
    assert page.locator("#graphique-eclairage-donnees ~ details tbody tr").count() == 12
    assert not _axe_serious(page)
    # Years out of the documented range, or in the wrong order: the defaults, and a notice saying so.
    for query in ("reference=2023&annee=2021", "reference=1990&annee=2022", "annee=deux-mille"):
        answer = page.goto(f"{served.url}/tableau/{TENANT}/eclairage?{query}")
        assert answer is not None and answer.status == 200
        assert page.get_by_role("status").inner_text().startswith("Comparaison indisponible")
        assert _value(page, "savings_kwh") == pytest.approx(default["savings_kwh"])
    page.goto(f"{served.url}/tableau/{TENANT}/eclairage")
    assert page.get_by_role("status").count() == 0


def test_keyboard_reaches_the_main_menu(context: BrowserContext, served: Served, artifacts: Path) -> None:
    page = context.new_page()
    _log_in(page, served, "elu-a", f"/tableau/{TENANT}/alertes")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Aller au contenu"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "contenu"
    page.reload()
    for _ in range(15):  # skip link, logout, then the menu
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Stationnement":
            break
    focused = page.evaluate(
        "[!!document.activeElement.closest('nav[aria-label=\"Menu principal\"]'),"
        " getComputedStyle(document.activeElement).outlineStyle]"
    )
    assert focused == [True, "solid"]  # in the menu, with a visible focus ring
    page.screenshot(path=str(artifacts / "tableau-focus-clavier.png"))
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/tableau/{TENANT}/stationnement")


def test_a_user_never_sees_another_tenant(context: BrowserContext, served: Served) -> None:
    page = context.new_page()
    _log_in(page, served, "elu-a", f"/tableau/{TENANT}/")
    assert page.locator("select#collectivite").count() == 0  # one tenant: no selector
    for slug in PAGES:
        page.goto(f"{served.url}/tableau/{TENANT}/{slug}")
        html = page.content()
        assert not [
            m
            for m in ("tenant-b", "Commune Voisine", "gw-foreign-b", "dev-foreign-b", "étrangère")
            if m in html
        ]
    answer = page.goto(f"{served.url}/tableau/tenant-b/passerelles")
    assert answer is not None and answer.status == 404
    assert "gw-foreign-b" not in page.content() and "Commune Voisine" not in page.content()
    answer = page.goto(f"{served.url}/tableau/?collectivite=tenant-b")
    assert answer is not None and answer.status == 404


def test_tenant_selector_and_chart_tables_work_without_javascript(browser: Browser, served: Served) -> None:
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        _log_in(page, served, "analyste-ab", f"/tableau/{TENANT}/eclairage")
        assert page.locator("canvas").count() == 0
        assert page.locator(".no-js").first.is_visible()
        page.get_by_text("Tableau des données").first.click()
        assert page.locator("#graphique-eclairage-donnees ~ details tbody tr").count() == 12
        assert page.locator("select#collectivite option").count() == 2
        page.get_by_label("Collectivité").select_option("tenant-b")
        page.get_by_role("button", name="Afficher").click()
        page.wait_for_url("**/tableau/tenant-b/eclairage")
        assert "Commune Voisine" in page.locator("h1").inner_text()
        tech = ctx.new_page()
        ctx.clear_cookies()
        _log_in(tech, served, "tech-b", "/tableau/tenant-b/")
        answer = tech.goto(f"{served.url}/tableau/{TENANT}/")
        assert answer is not None and answer.status == 404
    finally:
        ctx.close()


def test_session_cookie_is_http_only_strict_and_revoked_at_logout(
    context: BrowserContext, served: Served
) -> None:
    page = context.new_page()
    _log_in(page, served, "elu-a", f"/tableau/{TENANT}/passerelles")
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/tableau"
    assert page.evaluate("document.cookie") == ""
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_label("Identifiant").is_visible()
    replay = httpx.get(f"{served.url}/tableau/{TENANT}/", cookies={cookie["name"]: cookie["value"]})
    assert replay.status_code == 401  # the token behind the cookie was revoked
    wrong = httpx.post(
        f"{served.url}/tableau/connexion", data={"username": "elu-a", "password": "faux", "next": "/tableau/"}
    )
    assert wrong.status_code == 401 and "incorrect" in wrong.text and "set-cookie" not in wrong.headers
