"""HTTP judges with an injected ``http_client`` or ``transport``: tested in-process with ``httpx.MockTransport``.

The loopback stub server stays for what only a real server shows (hangs,
trickled bytes, dropped connections); plain request/answer behaviour is tested
here without a socket.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable

import httpx
import pytest

from ra_guard import Guard, Policy
from ra_guard.exceptions import ConfigurationError, JudgeError
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.judges.openai_compat import OpenAICompatJudge
from ra_guard.judges.rewardanything_server import RewardAnythingServerJudge

REQUEST = JudgeRequest(
    principle="Be concise.",
    prompt="Capital of France?",
    responses={"short": "Paris.", "long": "The capital of France is Paris, a large city on the Seine."},
)
BASE = "http://judge.invalid:8000"  # never resolved: every request goes to the mock transport


def _scores(responses: dict[str, str]) -> dict[str, int]:
    """The shorter a response, the better (5 for the shortest, 2 for the others)."""
    shortest = min(responses, key=lambda name: len(responses[name]))
    return {name: 5 if name == shortest else 2 for name in responses}


def _openai_answer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/models"):
        return httpx.Response(200, json={"object": "list", "data": [{"id": "ra-mock", "object": "model"}]})
    body = json.loads(request.content)
    shown = json.loads(body["messages"][-1]["content"])["responses"]
    scores = _scores(shown)
    verdict = {"scores": scores, "best-to-worst": sorted(scores, key=lambda n: -scores[n])}
    completion = {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"<think>shorter wins</think>{json.dumps(verdict)}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }
    return httpx.Response(200, json=completion)


def _reference_answer(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/health":
        return httpx.Response(200, json={"status": "healthy"})
    body = json.loads(request.content)
    scores = _scores(body["responses"])
    results = {"scores": scores, "best-to-worst": sorted(scores, key=lambda n: -scores[n])}
    return httpx.Response(200, json={"thoughts": "shorter wins", "results": results})


Handler = Callable[[httpx.Request], httpx.Response]
JUDGES: dict[str, tuple[Callable[..., Judge], Handler]] = {
    "openai-compat": (lambda **kw: OpenAICompatJudge(f"{BASE}/v1", model="ra-mock", **kw), _openai_answer),
    "rewardanything": (lambda **kw: RewardAnythingServerJudge(BASE, **kw), _reference_answer),
}


class Recorded(httpx.MockTransport):
    """A mock transport that keeps the requests it saw and whether it was closed."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self.closed = False

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        super().__init__(record)

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture(params=sorted(JUDGES))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_an_injected_client_carries_the_judge_calls(kind: str) -> None:
    build, handler = JUDGES[kind]
    transport = Recorded(handler)
    client = httpx.AsyncClient(transport=transport)
    judge = build(http_client=client, max_retries=0)
    try:
        verdict = await judge.ajudge(REQUEST)
        await judge.aping()
    finally:
        await judge.aclose()

    assert verdict.scores == {"short": 5.0, "long": 2.0}
    assert verdict.ranking == ["short", "long"]
    assert "short" in verdict.reasoning
    # The judge call and the ping; openai-compat first asks GET /models once for the served context.
    calls = [(r.method, r.url.host) for r in transport.requests]
    posted = [("POST", "judge.invalid")]
    asked = [("GET", "judge.invalid")]
    assert calls == (asked + posted + asked if kind == "openai-compat" else posted + asked)
    assert not client.is_closed  # the caller's client: closing the judge leaves it open
    assert not transport.closed
    again = build(http_client=client)  # and still usable
    assert (await again.ajudge(REQUEST)).best == "short"
    await client.aclose()


async def test_openai_compat_usage_and_model_come_from_the_answer() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(_openai_answer))
    judge = OpenAICompatJudge(f"{BASE}/v1", http_client=client)  # the model is discovered through the client
    try:
        verdict = await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
        await client.aclose()
    assert (verdict.model, judge.model) == ("ra-mock", "ra-mock")
    assert (verdict.usage.prompt_tokens, verdict.usage.completion_tokens) == (11, 7)


async def test_a_server_error_becomes_a_judge_error(kind: str) -> None:
    build, _ = JUDGES[kind]
    transport = Recorded(lambda request: httpx.Response(500, json={"detail": "the GPU fell over"}))
    client = httpx.AsyncClient(transport=transport)
    judge = build(http_client=client, max_retries=1)
    try:
        with pytest.raises(JudgeError, match=r"HTTP 500.*the GPU fell over") as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
        await client.aclose()
    assert caught.value.retryable  # a 5xx may pass: the guard's fallbacks see it as transient
    assert sum(r.method == "POST" for r in transport.requests) == 2  # retried once, as max_retries says


def test_an_injected_client_serves_one_event_loop(kind: str) -> None:
    build, handler = JUDGES[kind]
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    judge = build(http_client=client)

    assert judge.judge(REQUEST).best == "short"  # the sync API: ra-guard's background loop, first use
    with pytest.raises(ConfigurationError, match=r"http_client .*bound to the event loop.*transport="):
        asyncio.run(judge.ajudge(REQUEST))  # another loop: the client's connections are not its own
    judge.close()
    assert not client.is_closed


def test_a_transport_serves_the_sync_and_async_apis(kind: str) -> None:
    build, handler = JUDGES[kind]
    transport = Recorded(handler)
    judge = build(transport=transport)

    assert judge.judge(REQUEST).best == "short"  # ra-guard's background loop

    async def on_a_loop_of_its_own() -> str | None:
        try:
            return (await judge.ajudge(REQUEST)).best
        finally:
            await judge.aclose()

    assert asyncio.run(on_a_loop_of_its_own()) == "short"
    guard = Guard(policies=[Policy(name="brief", principle="Be concise.")], judge=judge)
    assert guard.rerank("Capital of France?", list(REQUEST.responses.values())).chosen_index == 0
    judge.close()
    assert sum(r.method == "POST" for r in transport.requests) == 3
    assert not transport.closed  # the caller's transport: the judge's clients never close it


def test_client_and_transport_together_are_refused(kind: str) -> None:
    build, handler = JUDGES[kind]
    mock = httpx.MockTransport(handler)
    with pytest.raises(ConfigurationError, match="http_client or transport, not both"):
        build(http_client=httpx.AsyncClient(transport=mock), transport=mock)


async def test_credentials_in_the_url_reach_an_injected_client() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _reference_answer(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    judge = RewardAnythingServerJudge("http://alice:pw@judge.invalid:8000?api_key=k1", http_client=client)
    try:
        await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
        await client.aclose()
    (sent,) = seen
    assert sent.headers["authorization"].startswith("Basic ")
    assert sent.url.params["api_key"] == "k1"
    assert "pw" not in judge.name and "k1" not in judge.name


# -- what a request carries (moved here from the stub-server tests: plain request/answer) --------------


async def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RA_GUARD_JUDGE_API_KEY", "sk-judge")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-sent")
    transport = Recorded(_openai_answer)
    judge = OpenAICompatJudge(f"{BASE}/v1", model="ra-mock", transport=transport)
    try:
        await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert transport.requests[0].headers["authorization"] == "Bearer sk-judge"


async def test_extra_body_is_sent() -> None:
    transport = Recorded(_openai_answer)
    judge = OpenAICompatJudge(
        f"{BASE}/v1", model="ra-mock", extra_body={"top_k": 20}, max_tokens=512, transport=transport
    )
    try:
        await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    body = json.loads(next(r for r in transport.requests if r.method == "POST").content)
    assert (body["top_k"], body["max_tokens"], body["temperature"]) == (20, 512, 0.0)


async def test_unmasked_requests_say_so_to_the_reference_server() -> None:
    transport = Recorded(_reference_answer)
    judge = RewardAnythingServerJudge(BASE, transport=transport)
    try:
        await judge.ajudge(JudgeRequest(principle="p", prompt="q", responses={"a": "x"}, mask=False))
    finally:
        await judge.aclose()
    (sent,) = transport.requests
    assert (sent.url.path, json.loads(sent.content)["mask_responses"]) == ("/api/rewardanything", False)


async def test_an_injected_clients_own_auth_is_kept_when_the_url_carries_none() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _reference_answer(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=("svc", "from-the-client"))
    judge = RewardAnythingServerJudge(BASE, http_client=client)
    try:
        await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
        await client.aclose()
    assert seen[0].headers["authorization"] == "Basic " + base64.b64encode(b"svc:from-the-client").decode()
