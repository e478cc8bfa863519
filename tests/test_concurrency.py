"""Many decisions at once through real HTTP: none lost, none mixed up.

Each of 200 concurrent ``Guard.arun`` calls has its own prompt; the loopback
server samples answers tagged with that prompt and judges by the score written
in each answer. Every decision must come back, hold only its own prompt's
candidates, and choose the best of them; every judge call the server saw must
compare candidates of one prompt only.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import pytest

from ra_guard import Guard, Policy
from ra_guard.decision import Decision
from ra_guard.judges.openai_compat import OpenAICompatJudge
from ra_guard.samplers.litellm import LiteLLMSampler
from tests.support.openai_server import OpenAIStubServer, RecordedRequest

# litellm builds a pydantic schema for a TypedDict with ReadOnly items on its first call (a UserWarning
# pydantic raises); the lead is asked to add this filter to pyproject's filterwarnings.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")

DECISIONS = 200
N = 4
_TAG = re.compile(r"<(prompt-\d+)>")


def _score(prompt_tag: str, index: int) -> int:
    return (int(prompt_tag.split("-")[1]) + 2 * index) % 5 + 1


def _sample_text(request: RecordedRequest, index: int) -> str:
    tag = _TAG.search(request.messages[-1]["content"])
    assert tag is not None
    return f"<{tag.group(1)}> answer {index} score={_score(tag.group(1), index)}"


@pytest.fixture
def server() -> Iterator[OpenAIStubServer]:
    with OpenAIStubServer(models=["ra-stub"], sampler_latency=0.01, judge_latency=0.02, sample_text=_sample_text) as s:
        yield s


def _check(k: int, decision: Decision) -> None:
    tag = f"prompt-{k}"
    assert len(decision.candidates) == N
    for candidate in decision.candidates:
        assert _TAG.findall(candidate.text) == [tag], f"decision {k} holds {candidate.text!r}"
    best = max(_score(tag, i) for i in range(N))
    assert decision.text.endswith(f"score={best}")
    assert decision.judge_calls == 2 and not decision.fallbacks
    assert all(set(c.scores) == {"concise", "polite"} for c in decision.candidates)


@pytest.mark.slow
async def test_200_concurrent_decisions_over_http(server: OpenAIStubServer) -> None:
    judge = OpenAICompatJudge(server.base_url, model="ra-stub", max_concurrency=16)
    sampler = LiteLLMSampler("openai/gen", api_base=server.base_url, api_key="x", max_retries=0)
    guard = Guard(
        policies=[Policy(name="concise", principle="Be concise."), Policy(name="polite", principle="Be polite.")],
        judge=judge,
        sampler=sampler,
    )
    try:
        decisions = await asyncio.gather(
            *(guard.arun([{"role": "user", "content": f"Question <prompt-{k}>"}], n=N) for k in range(DECISIONS))
        )
    finally:
        await guard.aclose()

    assert len(decisions) == DECISIONS
    assert len({d.decision_id for d in decisions}) == DECISIONS
    for k, decision in enumerate(decisions):
        _check(k, decision)

    judge_requests = [r for r in server.requests if r.kind == "judge"]
    assert len(judge_requests) == 2 * DECISIONS
    for request in judge_requests:
        judge_input = request.judge_input
        assert judge_input is not None
        tags = {tag for text in judge_input["responses"].values() for tag in _TAG.findall(text)}
        assert tags == set(_TAG.findall(judge_input["prompt"])), json.dumps(judge_input)[:300]
    assert 1 < server.max_in_flight["judge"] <= 16
    assert server.max_in_flight["sampler"] > 1
