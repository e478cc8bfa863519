"""`make demo`: offline with SmolLM2 (sampler and stand-in judge), and real backends by environment."""

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
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    spans = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines() if line.strip()]
    return result.stdout, spans


@pytest.mark.slow
def test_offline_demo_samples_and_judges_with_smollm2_and_says_it_is_weak(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from ra_guard.exceptions import MissingDependencyError
    from ra_guard.testing.smollm2 import find_smollm2_gguf

    try:
        find_smollm2_gguf()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    # SmolLM2 is converted once into the user's ra-guard cache, as `make demo` does.
    out, spans = run_demo(tmp_path, RA_GUARD_THREADS="1")
    assert "SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0)" in out
    assert "not a reward model" in out and "WEAK" in out
    assert "torch threads: 1" in out
    assert "loading it with transformers" in out.split("prompt: ")[0], "progress is shown before the tables"
    assert out.count("winner: candidate") == out.count("\nprompt: ") == 2
    assert "concise" in out and "harmless" in out
    roots = [s for s in spans if str(s["name"]).startswith("invoke_workflow")]
    assert len(roots) == 2
    assert sum(str(s["name"]).startswith("chat ") for s in spans) >= 2 * len(roots)  # judge calls per policy
    # The candidates are SmolLM2's own answers: sampled in process, traced with their token usage.
    samplers = [s for s in spans if "smollm2" in json.dumps(s.get("attributes", {}))]
    assert samplers, "the sampler's spans name SmolLM2"


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
    assert "WEAK" not in out and "SmolLM2" not in out
    assert "winner: candidate" in out
    kinds = {r.kind for r in openai_server.requests}
    assert {"judge", "sampler"} <= kinds, "candidates came from RA_GUARD_MODEL and scores from RA_GUARD_JUDGE"
    assert spans
