"""``python -m ra_guard``: messages, not tracebacks; every file and every error reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ra_guard.__main__ import main

REPO = Path(__file__).resolve().parents[1]


def test_show_a_typo_prints_the_message_only() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ra_guard", "show", "concse"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "no shipped policy named 'concse'; did you mean 'concise'?" in run.stderr
    assert run.stdout == ""


def test_show_prints_a_shipped_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "concise"]) == 0
    assert '"name": "concise"' in capsys.readouterr().out


def test_validate_reports_every_error_of_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: ok\nprinciple: Be kind.\n", encoding="utf-8")
    fields = tmp_path / "fields.yaml"
    fields.write_text("name: 'bad name'\nprinciple: Be kind.\nweight: .inf\nmin_score: true\ncolour: red\n")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: x\nprinciple: plaît\n".encode("latin-1"))
    missing = tmp_path / "missing.yaml"
    assert main(["validate", str(fields), str(good), str(latin), str(missing)]) == 1
    captured = capsys.readouterr()
    assert f"ok  {good}" in captured.out
    for expected in (
        f"{fields}: field name: must use letters",
        f"{fields}: field min_score: must be a number from 1 to 5, got True",
        f"{fields}: field weight: must be a number greater than 0 and at most 1000, got inf",
        f"{fields}: field colour: unknown key",
        f"{latin}: is not valid UTF-8",
        f"{missing}: file not found",
        "3 of 4 file(s) invalid",
    ):
        assert expected in captured.err, expected


def test_validate_passes_good_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: ok\nprinciple: Be kind.\n", encoding="utf-8")
    assert main(["validate", str(good), str(good)]) == 0
    assert capsys.readouterr().err == ""
