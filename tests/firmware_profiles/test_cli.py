"""`territoire profiles`: list, show, test, decode, and exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from firmware_profiles.cli import main

PROFILES = Path(__file__).parents[2] / "firmware_profiles" / "profiles"


def test_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argparse.Namespace(profiles_args=["list"])) == 0
    out = capsys.readouterr().out
    assert "schneider-iem3155" in out and "modbus" in out and "dragino-ldds75" in out
    assert main(["show", "eastron-sdm630"]) == 0
    out = capsys.readouterr().out
    assert "power_w" in out and "read input 0 count 18" in out
    assert main(["show", "schneider-iem3156"]) == 2
    assert "schneider-iem3155" in capsys.readouterr().err  # close match suggested


def test_decode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "milesight-em310-udl", "--port", "85", "0175640382d204040000"]) == 0
    out = capsys.readouterr().out
    assert "distance_mm" in out and "1234 mm" in out
    assert main(["decode", "dragino-ldds75", "--port", "2", "0ce4001400000001"]) == 0
    assert "OUT_OF_RANGE" in capsys.readouterr().out
    assert main(["decode", "milesight-em310-udl", "--port", "85", "0999"]) == 1
    assert "unknown record 09 99" in capsys.readouterr().err
    assert main(["decode", "milesight-em310-udl", "--port", "85", "xyz"]) == 1
    assert main(["decode", "milesight-em310-udl", "0175"]) == 2  # --port is required


def test_test_passes_on_the_shipped_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test"]) == 0
    out = capsys.readouterr().out
    assert " 0 failed" in out and "FAIL" not in out


def test_test_fails_on_a_wrong_golden_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (PROFILES / "bosch-tps110.yaml").read_text()
    wrong = text.replace("{readings: {occupied: 1}, events: [car_arrived]}", "{readings: {occupied: 0}, events: [car_arrived]}", 1)  # fmt: skip
    assert wrong != text
    (tmp_path / "bosch-tps110.yaml").write_text(wrong)
    assert main(["test", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL bosch-tps110" in out and "occupied = 1.0, expected 0.0" in out
    assert main(["--dir", str(tmp_path), "test"]) == 1  # --dir before the action works too


def test_a_broken_profile_directory_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.yaml").write_text("id: x\n")
    assert main(["list", "--dir", str(tmp_path)]) == 2
    assert "x.yaml" in capsys.readouterr().err
