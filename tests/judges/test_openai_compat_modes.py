"""OpenAICompatJudge's fast and hybrid modes: digit log-probabilities read over real HTTP."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ra_guard import Guard, Policy
from ra_guard.exceptions import ConfigurationError
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.openai_compat import LOGPROBS_UNAVAILABLE, OpenAICompatJudge
from ra_guard.testing import FunctionSampler
from tests.support.openai_server import Completion, OpenAIStubServer, RecordedRequest

REQUEST = JudgeRequest(
    principle="Be concise.",
    prompt="Capital of France?",
    responses={"short": "Paris. score=5", "long": "The capital is Paris, a large city. score=2", "mid": "score=3"},
)
ASKED = re.compile(r'"(model-\d+)": $')


def digit_logprobs(request: RecordedRequest) -> Completion | None:
    """A vLLM-like answer to a one-token digit step: 70% on the marked score, 30% on the next one down."""
    body: dict[str, Any] = request.body
    if not body.get("logprobs"):
        if body.get("stop") == ["</think>"]:
            return Completion(texts=["<think>\nmodel-1 is shortest; model-2 rambles."])
        return None  # a reasoning request: the stub's own judge answers it
    prefix = body["messages"][-1]["content"]
    shown = ASKED.search(prefix).group(1)
    score = int(re.search(r"score=(\d)", request.judge_input["responses"][shown]).group(1))
    other = max(1, score - 1)
    top = [
        {"token": str(score), "logprob": math.log(0.7), "bytes": None},
        {"token": str(other) if other != score else "x", "logprob": math.log(0.3), "bytes": None},
    ]
    logprobs = {"content": [{"token": str(score), "logprob": math.log(0.7), "bytes": None, "top_logprobs": top}]}
    return Completion(texts=[str(score)], logprobs=[logprobs])


@pytest.fixture
async def fast(openai_server: OpenAIStubServer) -> AsyncIterator[OpenAICompatJudge]:
    openai_server.handler = digit_logprobs
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", mode="fast", timeout=2.0)
    yield judge
    await judge.aclose()


async def test_fast_mode_reads_expected_scores_one_step_per_candidate(
    fast: OpenAICompatJudge, openai_server: OpenAIStubServer
) -> None:
    verdict = await fast.ajudge(REQUEST)

    assert verdict.mode == "fast"
    assert verdict.scores["short"] == pytest.approx(0.7 * 5 + 0.3 * 4)
    assert verdict.scores["long"] == pytest.approx(0.7 * 2 + 0.3 * 1)
    assert verdict.scores["mid"] == pytest.approx(0.7 * 3 + 0.3 * 2)
    assert verdict.ranking == ["short", "mid", "long"]
    assert verdict.distributions is not None
    assert all(sum(d) == pytest.approx(1.0) for d in verdict.distributions.values())
    steps = openai_server.of_kind("judge")
    assert len(steps) == 3
    for step in steps:
        body = step.body
        assert (body["max_tokens"], body["logprobs"], body["top_logprobs"]) == (1, True, 20)
        assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)
        assert body["messages"][-1]["role"] == "assistant"
    first, second = (s.body["messages"][-1]["content"] for s in steps[:2])
    assert first == '<think>\n\n</think>\n\n{"scores": {"model-1": '
    # the likeliest digit is written into the JSON before the next name is asked
    assert re.fullmatch(r'<think>\n\n</think>\n\n\{"scores": \{"model-1": \d, "model-2": ', second)


async def test_hybrid_mode_thinks_first_then_reads_digits(openai_server: OpenAIStubServer) -> None:
    openai_server.handler = digit_logprobs
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", mode="hybrid", thinking_budget=64)
    try:
        verdict = await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()

    think, *steps = openai_server.of_kind("judge")
    assert (think.body["max_tokens"], think.body["stop"]) == (64, ["</think>"])
    assert len(steps) == 3
    assert (
        steps[0]
        .body["messages"][-1]["content"]
        .startswith('<think>\nmodel-1 is shortest; model-2 rambles.\n</think>\n\n{"scores": {"model-1": ')
    )
    assert verdict.mode == "hybrid" and verdict.ranking == ["short", "mid", "long"]
    assert "model-1" not in verdict.reasoning  # names unmasked to the caller's


async def test_no_logprobs_falls_back_to_parsing_and_says_so(openai_server: OpenAIStubServer) -> None:
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", mode="fast")  # stub sends no logprobs
    try:
        verdict = await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert verdict.scores == {"short": 5.0, "long": 2.0, "mid": 3.0}
    assert LOGPROBS_UNAVAILABLE in verdict.repairs


async def test_fast_judge_in_a_guard(fast: OpenAICompatJudge) -> None:
    texts = ["A long, winding answer. score=2", "Paris. score=5"]
    guard = Guard(policies=[Policy(name="concise", principle="Be concise.")], judge=fast)
    decision = await guard.arun(
        [{"role": "user", "content": "Capital?"}], sampler=FunctionSampler(lambda m, i: texts[i]), n=2
    )
    assert decision.text == "Paris. score=5"
    assert decision.chosen.scores["concise"].distribution is not None


def test_bad_mode_settings() -> None:
    with pytest.raises(ConfigurationError, match="unknown judge mode 'quick'"):
        OpenAICompatJudge("http://127.0.0.1:1/v1", mode="quick")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="thinking_budget"):
        OpenAICompatJudge("http://127.0.0.1:1/v1", mode="hybrid", thinking_budget=0)
