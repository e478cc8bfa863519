"""RewardAnythingServerJudge against the reference API routes of a real loopback server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ra_guard.exceptions import ConfigurationError, JudgeError, JudgeOutputError, JudgeTimeoutError
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.rewardanything_server import RewardAnythingServerJudge
from tests.support.openai_server import Fault, OpenAIStubServer

REQUEST = JudgeRequest(
    principle="Be concise.",
    prompt="Capital of France?",
    responses={"short": "Paris. score=5", "long": "The capital is Paris, a large city. score=2"},
)


@pytest.fixture
async def judge(openai_server: OpenAIStubServer) -> AsyncIterator[RewardAnythingServerJudge]:
    judge = RewardAnythingServerJudge(openai_server.root_url, timeout=2.0, max_retries=2)
    yield judge
    await judge.aclose()


def _answer(scores: dict[str, object], ranking: list[str]) -> dict[str, object]:
    return {"thoughts": "short wins", "results": {"scores": scores, "best-to-worst": ranking}}


async def test_judges_through_the_reference_api(
    judge: RewardAnythingServerJudge, openai_server: OpenAIStubServer
) -> None:
    verdict = await judge.ajudge(REQUEST)

    assert verdict.scores == {"short": 5.0, "long": 2.0}
    assert verdict.ranking == ["short", "long"]
    assert verdict.reasoning.startswith("Comparing short, long")
    assert '"best-to-worst"' in verdict.raw_text
    (sent,) = openai_server.requests
    assert sent.route == "/api/rewardanything"
    assert sent.body == {
        "principle": "Be concise.",
        "prompt": "Capital of France?",
        "responses": dict(REQUEST.responses),
        "mask_responses": True,
    }


def test_names_and_urls() -> None:
    for url in ("http://gpu-1:8000", "http://gpu-1:8000/", "http://gpu-1:8000/api", "http://gpu-1:8000/v1"):
        assert RewardAnythingServerJudge(url).base_url == "http://gpu-1:8000"
    judge = resolve_judge("rewardanything:http://gpu-1:8000")
    assert isinstance(judge, RewardAnythingServerJudge)
    assert judge.name == "rewardanything:gpu-1:8000"
    with pytest.raises(ConfigurationError):
        RewardAnythingServerJudge("http://gpu-1:8000", max_concurrency=0)


async def test_permutations_are_not_supported(judge: RewardAnythingServerJudge) -> None:
    request = JudgeRequest(principle="p", prompt="q", responses={"a": "x", "b": "y"}, permutation=["b", "a"])
    with pytest.raises(NotImplementedError, match="RewardAnythingServerJudge"):
        await judge.ajudge(request)


def test_sync_calls_on_fresh_loops(openai_server: OpenAIStubServer) -> None:
    judge = RewardAnythingServerJudge(openai_server.root_url)
    assert [judge.judge(REQUEST).best for _ in range(3)] == ["short"] * 3


# -- checking answers -----------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (_answer({"short": 5}, ["short"]), "missing_candidate"),
        (_answer({"short": 5, "long": "good"}, ["short", "long"]), "bad_score"),
        (_answer({"model-1": 5, "model-2": 1}, ["model-1", "model-2"]), "unknown_name"),
        ({"thoughts": "no results"}, "not_an_object"),
        ([1, 2], "not_an_object"),
    ],
)
async def test_unusable_answers_raise_output_errors(
    judge: RewardAnythingServerJudge, openai_server: OpenAIStubServer, answer: object, reason: str
) -> None:
    openai_server.script(answer)  # type: ignore[arg-type]
    with pytest.raises(JudgeOutputError) as caught:
        await judge.ajudge(REQUEST)
    assert caught.value.reason == reason
    assert caught.value.judge == judge.name


async def test_damaged_answers_are_repaired_by_the_shared_rules(
    judge: RewardAnythingServerJudge, openai_server: OpenAIStubServer
) -> None:
    openai_server.script(_answer({"short": "4", "long": 9}, ["long", "short"]))
    verdict = await judge.ajudge(REQUEST)
    assert verdict.scores == {"short": 4.0, "long": 5.0}
    assert {r.split(":")[0] for r in verdict.repairs} == {"score_string", "score_clamped"}
    assert verdict.reasoning == "short wins"


# -- faults ---------------------------------------------------------------


async def test_timed_out_generation_is_not_retried_by_default(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.hang(), Fault.hang())
    judge = RewardAnythingServerJudge(openai_server.root_url, timeout=0.2, max_retries=3)
    try:
        with pytest.raises(JudgeTimeoutError, match=r"no answer within 0\.2s") as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert caught.value.retryable
    assert len(openai_server.requests) == 1


async def test_timeouts_are_retried_when_asked(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.hang(), Fault.hang())
    judge = RewardAnythingServerJudge(openai_server.root_url, timeout=0.2, max_retries=1, retry_timeouts=True)
    try:
        with pytest.raises(JudgeTimeoutError, match="after 1 retries"):
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert len(openai_server.requests) == 2


@pytest.mark.parametrize(
    "fault", [Fault.error(500), Fault.error(502), Fault.rate_limit(retry_after=0.05), Fault.drop()]
)
async def test_transient_failures_are_retried(
    judge: RewardAnythingServerJudge, openai_server: OpenAIStubServer, fault: Fault
) -> None:
    openai_server.script(fault)
    assert (await judge.ajudge(REQUEST)).best == "short"
    first, second = openai_server.requests
    if fault.status == 429:
        assert second.received_at - first.received_at >= 0.04


async def test_persistent_500_raises_judge_error(
    judge: RewardAnythingServerJudge, openai_server: OpenAIStubServer
) -> None:
    openai_server.script(*[Fault.error(500)] * 3)
    with pytest.raises(JudgeError, match=r"HTTP 500 after 2 retries") as caught:
        await judge.ajudge(REQUEST)
    assert caught.value.retryable
    assert len(openai_server.requests) == 3


async def test_client_error_is_not_retried(judge: RewardAnythingServerJudge, openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(422, retry_after=None))
    with pytest.raises(JudgeError, match="HTTP 422") as caught:
        await judge.ajudge(REQUEST)
    assert not caught.value.retryable
    assert len(openai_server.requests) == 1


async def test_persistent_dropped_connection_raises(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.drop(), Fault.drop())
    judge = RewardAnythingServerJudge(openai_server.root_url, max_retries=1)
    try:
        with pytest.raises(JudgeError, match=r"connection to .* failed") as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert caught.value.retryable


async def test_garbage_body_raises_output_error(
    judge: RewardAnythingServerJudge, openai_server: OpenAIStubServer
) -> None:
    openai_server.script(Fault.garbage())
    with pytest.raises(JudgeOutputError) as caught:
        await judge.ajudge(REQUEST)
    assert caught.value.reason == "no_json"
    assert len(openai_server.requests) == 1


async def test_concurrency_limit_is_respected(openai_server: OpenAIStubServer) -> None:
    openai_server.judge_latency = 0.05
    judge = RewardAnythingServerJudge(openai_server.root_url, max_concurrency=3)
    try:
        verdicts = await asyncio.gather(*(judge.ajudge(REQUEST) for _ in range(12)))
    finally:
        await judge.aclose()
    assert len(verdicts) == 12
    assert openai_server.max_in_flight["rewardanything"] == 3


# -- batch ----------------------------------------------------------------


def _requests(count: int) -> list[JudgeRequest]:
    return [
        JudgeRequest(principle=f"principle {i}", prompt="q", responses={f"a{i}": "x score=4", f"b{i}": "y score=1"})
        for i in range(count)
    ]


async def test_batch_endpoint(openai_server: OpenAIStubServer) -> None:
    judge = RewardAnythingServerJudge(openai_server.root_url, batch=True)
    try:
        verdicts = await judge.ajudge_many(_requests(3))
    finally:
        await judge.aclose()
    assert [v.best for v in verdicts if not isinstance(v, BaseException)] == ["a0", "a1", "a2"]
    (sent,) = openai_server.requests
    assert sent.route == "/api/rewardanything_batch"
    assert [item["principle"] for item in sent.body] == ["principle 0", "principle 1", "principle 2"]


async def test_batch_answers_in_completion_order_are_matched_to_their_requests() -> None:
    # The reference server (1.0.1) answers a batch in completion order, not request order.
    with OpenAIStubServer(batch_reversed=True) as server:
        judge = RewardAnythingServerJudge(server.root_url, batch=True)
        try:
            verdicts = await judge.ajudge_many(_requests(3))
        finally:
            await judge.aclose()
        (sent,) = server.requests
    assert [v.best for v in verdicts if not isinstance(v, BaseException)] == ["a0", "a1", "a2"]
    assert [set(item["responses"]) for item in sent.body] == [{f"{i}/a{i}", f"{i}/b{i}"} for i in range(3)]


async def test_a_batch_answer_naming_no_request_fails_that_request_only(openai_server: OpenAIStubServer) -> None:
    judge = RewardAnythingServerJudge(openai_server.root_url, batch=True, max_retries=0)
    openai_server.script([_answer({"1/a1": 4, "1/b1": 1}, ["1/a1", "1/b1"]), _answer({"1/a1": 2}, ["1/a1"])])
    try:
        first, second = await judge.ajudge_many(_requests(2))
    finally:
        await judge.aclose()
    assert second.best == "a1"  # type: ignore[union-attr]
    assert isinstance(first, JudgeOutputError) and "no answer of the batch" in str(first)


async def test_batch_is_off_by_default(judge: RewardAnythingServerJudge, openai_server: OpenAIStubServer) -> None:
    verdicts = await judge.ajudge_many(_requests(3))
    assert len(verdicts) == 3
    assert {r.route for r in openai_server.requests} == {"/api/rewardanything"}


async def test_batch_failures_are_returned_in_place(openai_server: OpenAIStubServer) -> None:
    judge = RewardAnythingServerJudge(openai_server.root_url, batch=True, max_retries=0)
    answers = [_answer({"0/a0": 4, "0/b0": 1}, ["0/a0", "0/b0"]), _answer({"1/x": 1}, ["1/x"])]
    openai_server.script(answers, [answers[0]], Fault.error(500))
    try:
        mixed = await judge.ajudge_many(_requests(2))
        short = await judge.ajudge_many(_requests(2))
        failed = await judge.ajudge_many(_requests(2))
    finally:
        await judge.aclose()
    assert mixed[0].best == "a0"  # type: ignore[union-attr]
    assert isinstance(mixed[1], JudgeOutputError)
    assert all(isinstance(v, JudgeError) and "1 results for 2 requests" in str(v) for v in short)
    assert all(isinstance(v, JudgeError) and "HTTP 500" in str(v) for v in failed)


def test_sync_calls_share_one_pool_that_close_releases(openai_server: OpenAIStubServer) -> None:
    judge = RewardAnythingServerJudge(openai_server.root_url)
    for _ in range(3):
        judge.judge(REQUEST)
    assert openai_server.open_connections <= 1
    judge.close()
    assert openai_server.wait_connections_closed()


async def test_timeout_bounds_the_whole_call(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.trickle(interval=0.1, seconds=20))
    judge = RewardAnythingServerJudge(openai_server.root_url, timeout=0.5)
    started = time.perf_counter()
    try:
        with pytest.raises(JudgeTimeoutError, match=r"no answer within 0\.5s"):
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert time.perf_counter() - started < 5  # a per-read timeout would wait the whole 20 s
    assert len(openai_server.requests) == 1
