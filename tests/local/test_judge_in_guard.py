"""A guard deciding end to end with the local judge (tiny random Qwen3, fast mode)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from ra_guard import BestOfN, Guard
from ra_guard.judges import resolve_judge
from ra_guard.local import LocalJudge
from ra_guard.testing import FunctionSampler

pytest.importorskip("torch")

USER = [{"role": "user", "content": "What is the capital of France?"}]
TEXTS = ["Paris.", "The capital of France is Paris.", "Lyon.", "I would rather not say."]


def test_guard_decides_with_the_local_judge(tiny_model_path: Path) -> None:
    judge = resolve_judge(f"local:{tiny_model_path}")
    assert isinstance(judge, LocalJudge) and judge.mode == "reasoning"
    judge = LocalJudge(tiny_model_path, mode="fast", max_wait_ms=50, min_digit_mass=0.0)
    guard = Guard(policies=["concise", "harmless"], judge=judge, strategy=BestOfN(n=4), on_all_rejected="return_best")
    decision = guard.run(USER, sampler=FunctionSampler(lambda m, i: TEXTS[i]))
    assert len(decision.candidates) == 4
    assert decision.judge_calls == 2
    assert judge.batch_sizes == [2], "both policies were judged in one batch"
    for candidate in decision.candidates:
        for score in candidate.scores.values():
            assert score.error is None
            assert score.score is not None and 1.0 <= score.score <= 5.0
            assert score.distribution is not None and math.fsum(score.distribution) == pytest.approx(1.0)
    assert decision.judge_usage.prompt_tokens > 0
    assert decision.why.startswith(f"candidate {decision.chosen_index}")


async def test_concurrent_decisions_share_batches(tiny_model_path: Path) -> None:
    judge = LocalJudge(tiny_model_path, mode="fast", max_batch_size=16, max_wait_ms=100, min_digit_mass=0.0)
    guard = Guard(policies=["concise"], judge=judge, strategy=BestOfN(n=2), on_all_rejected="return_best")
    sampler = FunctionSampler(lambda m, i: TEXTS[i])
    decisions = await asyncio.gather(*(guard.arun(USER, sampler=sampler) for _ in range(8)))
    assert len(decisions) == 8
    assert sum(judge.batch_sizes) == 8 and max(judge.batch_sizes) > 1
    assert len({tuple(sorted(d.candidates[0].scores["concise"].distribution or [])) for d in decisions}) == 1
    await judge.aclose()
