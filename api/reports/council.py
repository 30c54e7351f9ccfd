"""The council report: a printable French HTML page from the savings results."""

from __future__ import annotations

from datetime import date
from importlib import resources
from typing import Any

import jinja2


def fr(value: Any, digits: int = 0) -> str:
    """French number format: thin space for thousands, comma for decimals."""
    if value is None:
        return "–"
    text = f"{float(value):,.{digits}f}"
    return text.replace(",", "\u202f").replace(".", ",")


def render_council_report(
    *,
    tenant_name: str,
    baseline_label: str,
    reporting_label: str,
    lighting: dict[str, Any] | None,
    waste: dict[str, Any] | None,
    generated_on: date,
) -> str:
    template_text = resources.files("api.reports").joinpath("council.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(template_text)
    light = (lighting or {}).get("result")
    light_inputs = (lighting or {}).get("inputs", {})
    return template.render(
        tenant_name=tenant_name,
        baseline_label=baseline_label,
        reporting_label=reporting_label,
        generated_on=generated_on.strftime("%d/%m/%Y"),
        lighting=light,
        lighting_method=(lighting or {}).get("method", ""),
        tariff_version=light_inputs.get("tariff", {}).get("version", ""),
        factor_source=light_inputs.get("emission_factor", {}).get("source", ""),
        waste=(waste or {}).get("result"),
        inputs_hash=(lighting or waste or {}).get("inputs_hash", ""),
        fr=fr,
    )
