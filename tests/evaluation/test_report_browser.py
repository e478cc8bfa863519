"""The HTML report in a real headless browser: Chromium loads it offline and renders every figure.

Skipped (with the reason) where no Chromium binary is installed: ``apt-get install -y chromium``.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from scripts.eval_report_screenshot import chromium, find_chromium, screenshot
from tests.evaluation.demo_run import build_demo_run

BINARY = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BINARY is None, reason="no chromium binary on PATH (apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_run(tmp_path_factory.mktemp("eval-run"))


def test_chromium_renders_every_figure(report: Path) -> None:
    assert BINARY is not None
    dom = chromium(BINARY, "--dump-dom", report.resolve().as_uri()).stdout
    for section in ("scores", "decisions", "agreement", "position-bias"):
        assert f'id="{section}"' in dom
    assert len(re.findall(r'data-figure="scores"', dom)) == 6  # 2 judges x 3 policies
    assert len(re.findall(r"<svg[^>]*class=\"chart\"", dom)) == 6 + 1 + 2
    assert len(re.findall(r"<rect ", dom)) >= 6 * 8 + 2 + 2  # the bars are in the rendered DOM
    assert "careful" in dom and "hasty" in dom and "winner changed with the order" in dom


def test_chromium_takes_a_screenshot(report: Path, tmp_path: Path) -> None:
    assert BINARY is not None
    png = screenshot(BINARY, report, tmp_path / "report.png", width=900, height=700)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (900, 700)
    assert len(data) > 20_000  # a page with text and charts, not a blank one
