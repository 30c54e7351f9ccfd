"""Profiles load, their golden cases pass, and schema errors name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_profiles import load_catalog
from firmware_profiles.cli import main
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


def test_cli_test_list_and_decode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test"]) == 0
    assert "0 failed" in capsys.readouterr().out
    assert main(["list"]) == 0
    assert "schneider-iem3155" in capsys.readouterr().out
    assert main(["decode", "milesight-em310-udl", "--port", "85", "0175640382d204040000"]) == 0
    assert "distance_mm" in capsys.readouterr().out
    assert main(["decode", "milesight-em310-udl", "--port", "85", "0999"]) == 1


def test_cli_test_fails_on_a_wrong_golden_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).parents[2] / "firmware_profiles/profiles/bosch-tps110.yaml").read_text()
    directory = _profile(
        tmp_path, text.replace("{readings: {occupied: 1}, events", "{readings: {occupied: 0}, events")
    )
    assert main(["--dir", str(directory), "test"]) == 1
    assert "occupied = 1.0, expected 0.0" in capsys.readouterr().out
