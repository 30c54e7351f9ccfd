"""Profiles load, their golden cases pass, and schema errors name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_profiles import load_catalog, load_metrics
from firmware_profiles.golden import run_all
from territoire_kernel.errors import ConfigError

REQUIRED = {
    "dragino-ldds75", "milesight-em310-udl", "bosch-tps110", "nwave-nps405", "dragino-lt22222",
    "milesight-em300-di", "schneider-iem3155", "eastron-sdm630", "generic-relay-coils",
}  # fmt: skip


def test_every_required_profile_is_shipped() -> None:
    assert set(load_catalog().ids()) >= REQUIRED


@pytest.mark.parametrize("result", run_all(load_catalog()), ids=lambda r: f"{r.profile}:{r.case}")
def test_golden_case(result: object) -> None:
    assert getattr(result, "passed"), getattr(result, "detail")  # noqa: B009


def _profile(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "profiles"
    directory.mkdir(exist_ok=True)
    (directory / "bad.yaml").write_text(text)
    return directory


MINIMAL_MODBUS = """
id: bad-meter
vendor: test
model: test
documentation: none
modbus:
  points:
{points}
golden:
  - name: one
    registers: [{{function: holding, address: 0, values: [1]}}]
    expect: {{readings: {{}}}}
"""


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ("    - {metric: power_w, function: holding, address: 0, type: f32, colour: red}", "points[0].colour"),
        ("    - {metric: power_w, function: holding, address: 0, type: f32}\n"
         "    - {metric: voltage_v, function: holding, address: 1, type: u16}", "overlap"),
        ("    - {metric: power_w, function: holding, address: 0, type: u16}\n"
         "    - {metric: power_w, function: holding, address: 4, type: u16}", "appears twice"),
        ("    - {metric: power_kw, function: holding, address: 0, type: u16}", "metrics.yaml"),
        ("    - {metric: power_w, function: holding, address: 0, type: bool}", "coils"),
    ],
)  # fmt: skip
def test_schema_errors_name_the_file_and_field(tmp_path: Path, points: str, message: str) -> None:
    directory = _profile(tmp_path, MINIMAL_MODBUS.format(points=points))
    with pytest.raises(ConfigError) as caught:
        load_catalog([directory])
    assert "bad.yaml" in str(caught.value)
    assert message in str(caught.value)


def test_unknown_profile_suggests_close_ids() -> None:
    with pytest.raises(ConfigError, match="dragino-ldds75"):
        load_catalog().get("dragino-ldds57")


LORAWAN = """
id: bad-sensor
vendor: test
model: test
documentation: none
{body}
golden:
  - {{name: one, f_port: 2, payload_hex: "00", expect: {{readings: {{{metric}: 1}}}}}}
"""


@pytest.mark.parametrize(
    ("body", "metric", "message"),
    [
        ("lorawan: {codec: {native: dragino_ldds75}}\ncolour: red", "distance_mm", "colour"),
        ("lorawan: {codec: {native: acme_x}}", "distance_mm", "lorawan.codec.native"),
        ("lorawan: {codec: {native: dragino_ldds75}}", "distance_km", "golden[0].expect.readings"),
        ("lorawan: {codec: {js: missing.js, mapping: {d: distance_mm}}}", "distance_mm", "lorawan.codec.js"),
        ("lorawan: {codec: {js: c.js, mapping: {a: distance_mm, b: distance_mm}}}", "distance_mm", "mapping"),
        (
            "lorawan: {codec: {native: dragino_ldds75}}\nmodbus: {points: [{metric: power_w, function: input, address: 0, type: f32}]}",
            "distance_mm",
            "either",
        ),
        ("lorawan: {codec: {native: dragino_ldds75}}\nid: Bad Id", "distance_mm", "id"),
    ],
)
def test_lorawan_schema_errors(tmp_path: Path, body: str, metric: str, message: str) -> None:
    directory = _profile(tmp_path, LORAWAN.format(body=body, metric=metric))
    (directory / "c.js").write_text("function decodeUplink(i) { return {data: {}}; }")
    with pytest.raises(ConfigError) as caught:
        load_catalog([directory])
    assert "bad.yaml" in str(caught.value) and message in str(caught.value)


def test_user_directories_add_and_override_profiles(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "firmware_profiles/profiles/bosch-tps110.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text.replace("model: TPS110 (Parking Lot Sensor)", "model: patched"))
    (tmp_path / "b.yaml").write_text(text.replace("id: bosch-tps110", "id: bosch-tps110-v2"))
    catalog = load_catalog([tmp_path])
    assert catalog.get("bosch-tps110").spec.model == "patched"
    assert "bosch-tps110-v2" in catalog.ids() and len(catalog) == len(list(catalog))
    with pytest.raises(ConfigError, match="not a directory"):
        load_catalog([tmp_path / "nowhere"])


def test_an_id_used_twice_in_one_directory_is_an_error(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "firmware_profiles/profiles/bosch-tps110.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"b\.yaml.*already used by a\.yaml"):
        load_catalog([tmp_path])


def test_the_metric_catalogue_is_validated(tmp_path: Path) -> None:
    metrics = load_metrics()
    assert metrics["power_w"].unit == "W" and metrics["occupied"].personal_data is False
    assert all(name == name.lower() for name in metrics)
    bad = tmp_path / "metrics.yaml"
    bad.write_text("metrics:\n  power_w: {unit: W, description: power}\n")
    with pytest.raises(ConfigError, match=r"metrics.yaml.*metrics.power_w.personal_data"):
        load_metrics(bad)
    bad.write_text("metrics:\n  Power-W: {unit: W, description: power, personal_data: false}\n")
    with pytest.raises(ConfigError, match=r"metrics\.yaml"):
        load_metrics(bad)
