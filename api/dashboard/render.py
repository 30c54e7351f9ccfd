"""Jinja2 rendering of the pages, with French number and date formats."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jinja2

from api.dashboard.data import BASELINE_YEAR, REPORTING_YEAR
from api.dashboard.sitemap import HEIGHT, WIDTH, project
from api.savings.astronomy import PARIS

# slug -> navigation label; "" is the overview.
PAGES = {
    "": "Vue d'ensemble",
    "eclairage": "Éclairage",
    "dechets": "Déchets",
    "stationnement": "Stationnement",
    "passerelles": "Passerelles et capteurs",
    "alertes": "Alertes",
}
MONTHS = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")


def fr(value: Any, digits: int = 0) -> str:
    """French number format: narrow no-break space for thousands, comma for decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = f"{float(value):,.{digits}f}"
    return text.replace(",", "\u202f").replace(".", ",")


def local_time(value: datetime | None, with_time: bool = True) -> str:
    if value is None:
        return "jamais"
    moment = value.astimezone(PARIS)
    return moment.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


def day(value: Any, *, inclusive_end: bool = False) -> str:
    """A date (or ISO date text) as 31/12/2023; an exclusive period end is shown as the day before it."""
    moment = date.fromisoformat(str(value)[:10]) if not isinstance(value, date) else value
    if inclusive_end:
        moment -= timedelta(days=1)
    return moment.strftime("%d/%m/%Y")


def duration(seconds: float | None) -> str:
    """A duration for people: "3 min", "7 h", "2 j"."""
    if seconds is None:
        return "–"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{fr(seconds / 3600)} h"
    return f"{fr(seconds / 86400)} j"


def age(value: datetime | None) -> str:
    if value is None:
        return "jamais vu"
    return f"il y a {duration(max((datetime.now(UTC) - value).total_seconds(), 0))}"


def chart(
    x_title: str, x_labels: list[str], series: list[dict[str, Any]], unit: str, *, bars: bool = False
) -> dict[str, Any]:
    """The JSON read by dashboard.js (and the rows of the data table beside the chart)."""
    return {
        "xTitle": x_title,
        "x": list(range(len(x_labels))),
        "labels": x_labels,
        "series": series,
        "unit": unit,
        "bars": bars,
    }


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("api.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters |= {"day": day, "fr": fr, "local_time": local_time, "age": age, "duration": duration}
_env.globals |= {
    "PAGES": PAGES, "MONTHS": MONTHS, "chart": chart, "project": project,
    "MAP_WIDTH": WIDTH, "MAP_HEIGHT": HEIGHT, "BASELINE_YEAR": BASELINE_YEAR, "REPORTING_YEAR": REPORTING_YEAR,
}  # fmt: skip


def render(template: str, context: dict[str, Any]) -> str:
    return _env.get_template(template).render(context)
