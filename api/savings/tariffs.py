"""Versioned electricity tariffs and emission factors, each value with its source.

A savings figure in euros or kgCO2e is only defensible with the price or
factor it used, so results name the table version and every period's source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from .intervals import FloatArray


@dataclass(frozen=True)
class TariffPeriod:
    start: date  # first day this price applies (inclusive)
    eur_per_kwh: float
    source: str


@dataclass(frozen=True)
class Tariff:
    version: str
    description: str
    periods: tuple[TariffPeriod, ...]
    # The last day the sources cover. Without it a later day would silently reuse the last
    # period's price (for this table, August 2023's price for 2025, which fell by 15 %).
    documented_until: date = date.max

    def __post_init__(self) -> None:
        starts = [p.start for p in self.periods]
        if not starts or starts != sorted(starts):
            raise ValueError("tariff periods must be non-empty and in date order")
        if self.documented_until < starts[-1]:
            raise ValueError("a tariff must document its last period")

    def price_on(self, days: list[date]) -> FloatArray:
        ordinals = np.array([d.toordinal() for d in days], dtype=np.int64)
        return self.prices_for_ordinals(ordinals)

    def prices_for_ordinals(self, ordinals: npt.NDArray[np.int64]) -> FloatArray:
        starts = np.array([p.start.toordinal() for p in self.periods])
        idx = np.searchsorted(starts, ordinals, side="right") - 1
        if np.any(idx < 0):
            raise ValueError(f"tariff {self.version} has no price before {self.periods[0].start}")
        if np.any(ordinals > self.documented_until.toordinal()):
            raise ValueError(
                f"tariff {self.version} documents prices until {self.documented_until}; "
                "choose a period it covers, or another tariff"
            )
        prices = np.array([p.eur_per_kwh for p in self.periods])
        result: FloatArray = prices[idx]
        return result

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {
            "version": self.version,
            "description": self.description,
            "periods": [
                {"start": p.start.isoformat(), "eur_per_kwh": p.eur_per_kwh, "source": p.source}
                for p in self.periods
            ],
        }
        if self.documented_until != date.max:
            described["documented_until"] = self.documented_until.isoformat()
        return described


@dataclass(frozen=True)
class EmissionFactor:
    version: str
    kg_co2e_per_kwh: float
    source: str

    def describe(self) -> dict[str, object]:
        return {"version": self.version, "kg_co2e_per_kwh": self.kg_co2e_per_kwh, "source": self.source}


# 2021 base: an assumed all-in price for a small commune's public-lighting supply
# on the regulated blue tariff; the later periods apply the published average
# changes of the regulated tariff (TRVE) to it.
_BASE_2021 = 0.150
TRVE_2021_2023 = Tariff(
    version="trve-2021-2023/v1",
    description=(
        "Prix moyen TTC de l'électricité d'éclairage public d'une petite commune au tarif réglementé : "
        "base 2021 supposée, puis hausses moyennes publiées du TRVE."
    ),
    periods=(
        TariffPeriod(
            date(2021, 1, 1),
            _BASE_2021,
            "Hypothèse : prix moyen TTC 2021 d'un contrat tarif bleu éclairage public",
        ),
        TariffPeriod(
            date(2022, 2, 1),
            round(_BASE_2021 * 1.04, 5),
            "TRVE +4 % TTC au 1er février 2022 (bouclier tarifaire, arrêtés JO du 30/01/2022 ; service-public.fr A15480)",
        ),
        TariffPeriod(
            date(2023, 2, 1),
            round(_BASE_2021 * 1.04 * 1.15, 5),
            "TRVE +15 % TTC en moyenne au 1er février 2023 (loi de finances 2023 ; délibération CRE du 19/01/2023)",
        ),
        TariffPeriod(
            date(2023, 8, 1),
            round(_BASE_2021 * 1.04 * 1.15 * 1.10, 5),
            "TRVE +10 % TTC au 1er août 2023 (annonce gouvernementale de juillet 2023)",
        ),
    ),
    # Later movements (February 2024, February and August 2025) are not in this table yet.
    documented_until=date(2023, 12, 31),
)

CONSTANT_2021 = Tariff(
    version="constant-2021/v1",
    description="Prix 2021 maintenu constant : isole l'effet des consommations.",
    periods=(TariffPeriod(date(2000, 1, 1), _BASE_2021, "Hypothèse : prix moyen TTC 2021 maintenu"),),
)

ADEME_2022 = EmissionFactor(
    version="ademe-base-empreinte-electricite-2022-mix-moyen/v1",
    kg_co2e_per_kwh=0.052,
    source="ADEME Base Empreinte, « Électricité - 2022 - mix moyen - consommation », France continentale",
)

TARIFFS = {t.version: t for t in (TRVE_2021_2023, CONSTANT_2021)}
EMISSION_FACTORS = {f.version: f for f in (ADEME_2022,)}
