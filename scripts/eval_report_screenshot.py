"""Screenshot an evaluation report in headless Chromium, for docs/evaluation.md.

Runs the small offline demo evaluation of ``tests/evaluation/demo_run.py`` (two
scripted judges, three policies, each item in three orders), writes its
self-contained HTML report, and points headless Chromium at the file. Nothing
is fetched from anywhere: the report has no external assets.

Usage:
    apt-get install -y chromium        # Debian's package
    .venv/bin/python scripts/eval_report_screenshot.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts._chromium import chromium, find_chromium  # noqa: E402
from tests.evaluation.demo_run import build_demo_run  # noqa: E402


def screenshot(binary: str, report: Path, out: Path, *, width: int = 1280, height: int = 1950) -> Path:
    """Save a PNG of ``report`` (a local HTML file) as Chromium renders it."""
    chromium(binary, f"--window-size={width},{height}", f"--screenshot={out}", report.resolve().as_uri())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    binary = find_chromium()
    if binary is None:
        sys.exit("chromium not found: apt-get install -y chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ra-guard-eval-demo-") as run_dir:
        report = build_demo_run(Path(run_dir))
        top = screenshot(binary, report, args.out / "eval-report.png")
        print(f"wrote {top}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
