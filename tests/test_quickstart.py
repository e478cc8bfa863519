"""`make demo` (examples/quickstart.py): offline with the tiny judge, and real backends by environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.openai_server import OpenAIStubServer

ROOT = Path(__file__).resolve().parents[1]


def run_demo(tmp_path: Path, **env: str) -> tuple[str, list[dict[str, object]]]:
    trace = tmp_path / "trace.jsonl"
    environment = {
        **os.environ,
        "RA_GUARD_CACHE": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "RA_GUARD_TRACE_FILE": str(trace),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        **env,
    }
    for name in ("RA_GUARD_JUDGE", "RA_GUARD_MODEL"):
        if name not in env:
            environment.pop(name, None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    spans = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines() if line.strip()]
    return result.stdout, spans


@pytest.mark.slow
def test_offline_demo_runs_the_real_paths_and_says_scores_are_meaningless(tmp_path: Path) -> None:
    out, spans = run_demo(tmp_path)
    assert "MEANINGLESS" in out
    assert out.count("winner: candidate") == out.count("prompt: ") >= 2
    assert "concise" in out and "harmless" in out
    roots = [s for s in spans if str(s["name"]).startswith("invoke_workflow")]
    assert len(roots) == out.count("prompt: ")
    assert sum(str(s["name"]).startswith("chat ") for s in spans) >= 2 * len(roots)  # judge calls per policy
    assert any((tmp_path / "cache").rglob("config.json")), "the tiny judge is built and cached"


@pytest.mark.slow
def test_demo_with_a_configured_judge_and_model(tmp_path: Path, openai_server: OpenAIStubServer) -> None:
    out, spans = run_demo(
        tmp_path,
        RA_GUARD_JUDGE=f"openai-compat:{openai_server.base_url}",
        RA_GUARD_MODEL="openai/ra-stub",
        OPENAI_API_BASE=openai_server.base_url,
        OPENAI_BASE_URL=openai_server.base_url,
        OPENAI_API_KEY="sk-test",
    )
    assert "MEANINGLESS" not in out
    assert "winner: candidate" in out
    kinds = {r.kind for r in openai_server.requests}
    assert {"judge", "sampler"} <= kinds, "candidates came from RA_GUARD_MODEL and scores from RA_GUARD_JUDGE"
    assert spans
