"""The same cases against every real OpenAI-compatible server: vLLM and ``transformers serve``.

Both serve SmolLM2-135M-Instruct, a general 135M chat model standing in for a
RewardAnything judge: its scores are weak, so these tests check what ra-guard
promises whatever the model's taste (complete verdicts under the caller's names,
distributions that are distributions, decisions that come back), not which
answer wins. Where a server lacks a feature (``n``, log-probabilities,
``continue_final_message``), the test checks the declared fallback, visibly noted.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from ra_guard import BestOfN, Guard, Policy
from ra_guard._warn import reset_fallback_warnings
from ra_guard.exceptions import JudgeOutputError
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.format import render_messages
from ra_guard.judges.openai_compat import OpenAICompatJudge
from ra_guard.judges.scoring import ENDPOINT_STEP_PARAMS, ForcedJsonReader, distribution_from_top_logprobs
from ra_guard.samplers.litellm import LiteLLMSampler
from ra_guard.verdict import Verdict
from tests.real.conftest import Backend, Figures

REQUEST = JudgeRequest(
    principle="Answer the question correctly and concisely.",
    prompt="What is the capital of France?",
    responses={
        "short": "Paris.",
        "wrong": "The capital of France is London.",
        "long": "Paris is the capital of France, known for the Eiffel Tower and the Louvre.",
    },
)
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def verdict_schema(shown_names: list[str]) -> dict[str, Any]:
    """A JSON schema of RewardAnything's verdict for these names: what a weak judge needs to stay in format."""
    return {
        "type": "object",
        "properties": {
            "scores": {
                "type": "object",
                "properties": {name: {"type": "integer", "minimum": 1, "maximum": 5} for name in shown_names},
                "required": shown_names,
            },
            "best-to-worst": {
                "type": "array",
                "items": {"enum": shown_names},
                "minItems": len(shown_names),
                "maxItems": len(shown_names),
            },
        },
        "required": ["scores", "best-to-worst"],
    }


def assert_complete(verdict: Verdict, request: JudgeRequest = REQUEST) -> None:
    """Every candidate scored 1–5 under the caller's own name, and ranked exactly once."""
    assert set(verdict.scores) == set(request.responses)
    assert all(1.0 <= score <= 5.0 for score in verdict.scores.values()), verdict.scores
    assert sorted(verdict.ranking) == sorted(request.responses)


def assert_distributions(verdict: Verdict) -> None:
    assert verdict.distributions is not None
    assert set(verdict.distributions) == set(REQUEST.responses)
    for name, distribution in verdict.distributions.items():
        assert len(distribution) == 5
        assert math.isclose(sum(distribution), 1.0, abs_tol=1e-6), (name, distribution)
        expected = sum((i + 1) * p for i, p in enumerate(distribution))
        assert verdict.scores[name] == pytest.approx(expected), (name, distribution)


@pytest.fixture
async def judges(backend: Backend) -> AsyncIterator[list[OpenAICompatJudge]]:
    """Judges made by the test, closed after it."""
    made: list[OpenAICompatJudge] = []
    yield made
    for judge in made:
        await judge.aclose()


def make_judge(backend: Backend, made: list[OpenAICompatJudge], **options: Any) -> OpenAICompatJudge:
    options.setdefault("model", backend.model)
    judge = OpenAICompatJudge(backend.base_url, timeout=120, max_retries=0, **options)
    made.append(judge)
    return judge


async def test_judge_without_a_model_discovers_the_served_one(
    backend: Backend, judges: list[OpenAICompatJudge]
) -> None:
    judge = make_judge(backend, judges, model=None, mode="fast")

    assert await judge.discover_model() == backend.model
    assert judge.name == f"openai-compat:{backend.model}@127.0.0.1:{backend.server.port}"
    assert judge.context_tokens == backend.context_tokens  # vLLM's max_model_len bounds max_tokens


async def test_judge_named_a_model_learns_the_served_context_before_its_first_call(
    backend: Backend, judges: list[OpenAICompatJudge]
) -> None:
    """A judge given ``model=`` skips discovery, yet bounds ``max_tokens`` by the served context from its first call.

    Asked for far more tokens than the context holds, an unbounded request would be refused (HTTP 400)
    and learned from only then; the verdict schema keeps the generation itself short.
    """
    if backend.context_tokens is None:
        pytest.skip(f"{backend.kind} reports no context length")
    shown = render_messages(REQUEST).shown_names
    schema = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": verdict_schema(shown)}}
    judge = make_judge(backend, judges, mode="reasoning", max_tokens=10**6, extra_body={"response_format": schema})
    refused_before = backend.server.log_tail(10**9).count("400 Bad Request")

    verdict = await judge.ajudge(REQUEST)

    assert_complete(verdict)
    assert judge.context_tokens == backend.context_tokens
    refused = backend.server.log_tail(10**9).count("400 Bad Request") - refused_before
    assert refused == 0, "the first request asked for more tokens than the served context holds"


@pytest.mark.parametrize("mode", ["fast", "hybrid"])
async def test_digit_modes_return_complete_verdicts(
    backend: Backend, judges: list[OpenAICompatJudge], mode: str, figures: Figures
) -> None:
    if not backend.digit_logprobs:
        pytest.skip(f"{backend.kind} gives no digit log-probabilities: see test_digit_modes_fall_back_once")
    judge = make_judge(backend, judges, mode=mode, thinking_budget=64)

    for _ in range(2):  # the second call shows the warm latency (the first may compile new shapes)
        started = time.monotonic()
        verdict = await judge.ajudge(REQUEST)
        figures.append(f"{backend.kind}.judge_call_s.{mode}", round(time.monotonic() - started, 2))

    assert_complete(verdict)
    assert verdict.mode == mode
    assert verdict.repairs == []
    assert_distributions(verdict)
    assert verdict.usage.prompt_tokens > 0


@pytest.mark.parametrize("mode", ["fast", "hybrid"])
async def test_digit_modes_fall_back_once_where_the_server_cannot_continue_a_message(
    backend: Backend,
    judges: list[OpenAICompatJudge],
    mode: str,
    figures: Figures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """transformers serve rejects continue_final_message (HTTP 422 "Unexpected fields") and sends no logprobs.

    The judge reads a generated verdict instead, says so (a WARNING, and ``repairs`` where a verdict
    came back), and remembers: the server sees exactly one rejected request per judge.
    """
    if backend.digit_logprobs:
        pytest.skip(f"{backend.kind} continues messages and returns logprobs")
    judge = make_judge(backend, judges, mode=mode, thinking_budget=64, max_tokens=200)
    rejected_before = backend.server.log_tail(10**9).count("422 Unprocessable")
    caplog.set_level("WARNING", logger="ra_guard")
    reset_fallback_warnings()  # the other mode's test warned under the same judge name within the minute

    for _ in range(2):
        started = time.monotonic()
        try:
            verdict = await judge.ajudge(REQUEST)
        except JudgeOutputError as exc:
            # The fallback ran: SmolLM2's free-text reasoning often holds no JSON verdict; the raw text is kept.
            assert exc.raw_text, exc  # noqa: PT017 - either outcome is allowed, only its shape is checked
            figures.append(f"{backend.kind}.{mode}_fallback_outcome", exc.reason)
        else:
            assert_complete(verdict)
            assert any(note.startswith("digits_unsupported") for note in verdict.repairs), verdict.repairs
            figures.append(f"{backend.kind}.{mode}_fallback_outcome", "verdict")
        figures.append(f"{backend.kind}.judge_call_s.{mode}_fallback", round(time.monotonic() - started, 2))

    rejected = backend.server.log_tail(10**9).count("422 Unprocessable") - rejected_before
    assert rejected == 1, f"{rejected} requests rejected with 422: expected exactly one, then remembered"
    assert judge.digits_supported is False
    warned = [r.getMessage() for r in caplog.records if "digits_unsupported" in r.getMessage()]
    assert warned, "the fallback must be logged on the ra_guard logger"


async def test_reasoning_mode_with_a_verdict_schema_returns_a_complete_verdict(
    backend: Backend, judges: list[OpenAICompatJudge], figures: Figures
) -> None:
    if not backend.structured_output:
        pytest.skip(f"{backend.kind} does not constrain output to a JSON schema (response_format)")
    shown = render_messages(REQUEST).shown_names
    schema = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": verdict_schema(shown)}}
    judge = make_judge(backend, judges, mode="reasoning", max_tokens=200, extra_body={"response_format": schema})

    started = time.monotonic()
    verdict = await judge.ajudge(REQUEST)
    figures.append(f"{backend.kind}.judge_call_s.reasoning", round(time.monotonic() - started, 2))

    assert_complete(verdict)
    assert verdict.mode == "reasoning"
    assert all(score == int(score) for score in verdict.scores.values())


async def test_digit_logprobs_are_real_distributions(backend: Backend, figures: Figures) -> None:
    """One forced-JSON step by hand: how much of the next token's probability the digits 1–5 hold."""
    if not backend.digit_logprobs:
        pytest.skip(f"{backend.kind} returns no logprobs")
    rendered = render_messages(REQUEST)
    reader = ForcedJsonReader(rendered.shown_names)
    async with openai.AsyncOpenAI(base_url=backend.base_url, api_key="EMPTY", timeout=120, max_retries=0) as client:
        while not reader.done:
            options = dict(ENDPOINT_STEP_PARAMS)
            completion = await client.chat.completions.create(
                model=backend.model,
                messages=[*rendered.messages, {"role": "assistant", "content": reader.prefix}],  # type: ignore[list-item]
                **options,
            )
            top = completion.choices[0].logprobs.content[0].top_logprobs  # type: ignore[union-attr,index]
            assert len(top) == 20
            found = distribution_from_top_logprobs(top)
            assert found is not None, f"no digit 1-5 in the top 20: {[t.token for t in top]}"
            distribution, mass = found
            assert 0.0 < mass <= 1.0 + 1e-6
            digits = sorted({t.token.strip() for t in top if t.token.strip() in {"1", "2", "3", "4", "5"}})
            figures.append(f"{backend.kind}.digit_mass", round(mass, 4))
            figures.append(f"{backend.kind}.digits_in_top20", "".join(digits))
            reader.feed(distribution)
    assert set(reader.distributions) == set(rendered.shown_names)


async def test_litellm_sampler_returns_n_candidates(backend: Backend, figures: Figures) -> None:
    sampler = LiteLLMSampler(
        f"openai/{backend.model}", api_base=backend.base_url, api_key="EMPTY", max_tokens=40, timeout=120
    )
    try:
        started = time.monotonic()
        samples = await sampler.asample(QUESTION, n=4, temperature=1.0)
        figures.append(f"{backend.kind}.sample4_s", round(time.monotonic() - started, 2))
    finally:
        await sampler.aclose()

    assert len(samples) == 4
    assert all(s.text.strip() for s in samples), [s.text for s in samples]
    assert sampler.n_supported is backend.supports_n
    counts = Counter(s.text for s in samples)
    figures.append(f"{backend.kind}.repeated_candidates_of_4", 4 - len(counts))


async def test_guard_best_of_4_decision_with_fast_judge(backend: Backend, figures: Figures) -> None:
    judge = OpenAICompatJudge(backend.base_url, model=backend.model, mode="fast", timeout=120, max_retries=0)
    sampler = LiteLLMSampler(
        f"openai/{backend.model}", api_base=backend.base_url, api_key="EMPTY", max_tokens=40, timeout=120
    )
    policy = Policy(name="correct", principle="Answer the question correctly and concisely.", min_score=1)
    guard = Guard(policies=[policy], judge=judge, strategy=BestOfN(n=4, temperature=1.0), sampler=sampler)
    try:
        started = time.monotonic()
        decision = await guard.arun(QUESTION)
        figures.append(f"{backend.kind}.best_of_4_decision_s", round(time.monotonic() - started, 2))
    finally:
        await guard.aclose()

    assert len(decision.candidates) == 4
    assert decision.text == decision.candidates[decision.chosen_index].text
    assert decision.judge_calls >= 1
    figures.append(f"{backend.kind}.best_of_4_distinct_texts", len({c.text for c in decision.candidates}))
    scores = [candidate.scores["correct"] for candidate in decision.candidates]
    if backend.digit_logprobs:
        for score in scores:
            assert score.error is None, score.error
            assert score.score is not None and 1.0 <= score.score <= 5.0
            assert score.distribution is not None and math.isclose(sum(score.distribution), 1.0, abs_tol=1e-6)
        best = max(c.combined for c in decision.candidates if c.combined is not None)
        assert decision.candidates[decision.chosen_index].combined == best
    else:
        # Judged through the reasoning fallback: either scored, or the failure is on the decision for all to see.
        for score in scores:
            assert (score.score is not None) != (score.error is not None), score
        if any(score.error for score in scores):
            assert decision.fallbacks, "a judge failure must be listed in decision.fallbacks"
