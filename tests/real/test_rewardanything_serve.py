"""The reference ``rewardanything serve`` in front of vLLM, judged through ``rewardanything:``.

The reference server sends its ``generation_config`` with every backend call. SmolLM2 is
not trained on RewardAnything's output format, so one server here constrains it with a
JSON schema of the verdict for three masked candidates (``model-1``..``model-3``, the
reference's masking) and one leaves it free: the free one shows what ra-guard does when
the reference parses nothing and answers empty scores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ra_guard.exceptions import JudgeOutputError
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.rewardanything_server import RewardAnythingServerJudge
from ra_guard.verdict import Verdict
from tests.real.conftest import SERVED_NAME, Figures
from tests.real.test_conformance import REQUEST, assert_complete, verdict_schema
from tests.support.rewardanything_server import start_rewardanything_serve
from tests.support.servers import ServerProcess

MASKED = ["model-1", "model-2", "model-3"]
SECOND = JudgeRequest(
    principle="Be polite.",
    prompt="Say hello.",
    responses={"curt": "Hi.", "warm": "Hello! Lovely to meet you.", "rude": "Go away."},
)


@pytest.fixture(scope="module")
def reference(vllm_server: ServerProcess) -> Iterator[dict[str, ServerProcess]]:
    """Two reference servers on the session's vLLM: ``constrained`` (verdict schema) and ``free``."""
    schema = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": verdict_schema(MASKED)}}
    backend = f"{vllm_server.url}/v1"
    servers: dict[str, ServerProcess] = {}
    try:
        servers["constrained"] = start_rewardanything_serve(
            backend, SERVED_NAME, generation_config={"temperature": 0.0, "max_tokens": 200, "response_format": schema}
        )
        servers["free"] = start_rewardanything_serve(
            backend, SERVED_NAME, generation_config={"temperature": 0.0, "max_tokens": 200}
        )
        yield servers
    finally:
        for server in servers.values():
            server.stop()


async def test_reference_server_verdict_comes_back_under_the_callers_names(
    reference: dict[str, ServerProcess], figures: Figures
) -> None:
    judge = RewardAnythingServerJudge(reference["constrained"].url, timeout=120, max_retries=0)
    try:
        started = time.monotonic()
        verdict = await judge.ajudge(REQUEST)
        figures.append("rewardanything-serve.judge_call_s", round(time.monotonic() - started, 2))
    finally:
        await judge.aclose()

    assert_complete(verdict)
    assert verdict.raw_text and "results" in verdict.raw_text
    assert judge.name == f"rewardanything:127.0.0.1:{reference['constrained'].port}"


async def test_reference_batch_answers_are_matched_to_their_requests(
    reference: dict[str, ServerProcess], figures: Figures
) -> None:
    """The reference returns batch results in completion order, not request order.

    Where every request has its own names (as here), each answer names its request: the judge must
    match them up and return one verdict per request. Fails today (both answers come back swapped and
    are refused as ``unknown_name``): needs the matching in ``RewardAnythingServerJudge.ajudge_many``.
    """
    judge = RewardAnythingServerJudge(reference["constrained"].url, timeout=120, max_retries=0, batch=True)
    try:
        results = await judge.ajudge_many([REQUEST, SECOND])
    finally:
        await judge.aclose()

    figures.record("rewardanything-serve.batch_outcomes", [str(r)[:160] for r in results])
    assert len(results) == 2
    for result, request in zip(results, [REQUEST, SECOND], strict=True):
        assert isinstance(result, Verdict), result
        assert_complete(result, request)


async def test_reference_server_empty_parse_is_an_error_not_a_verdict(
    reference: dict[str, ServerProcess], figures: Figures
) -> None:
    judge = RewardAnythingServerJudge(reference["free"].url, timeout=120, max_retries=0)
    try:
        outcome: Verdict | JudgeOutputError = await judge.ajudge(REQUEST)
    except JudgeOutputError as exc:
        outcome = exc
    finally:
        await judge.aclose()

    figures.record("rewardanything-serve.free_outcome", getattr(outcome, "reason", type(outcome).__name__))
    # The reference answers {"scores": {}} when it finds no JSON; ra-guard must not pass that on as a verdict.
    if isinstance(outcome, Verdict):
        assert_complete(outcome)
    else:
        assert outcome.raw_text, outcome
