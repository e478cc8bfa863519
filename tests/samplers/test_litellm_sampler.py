"""LiteLLMSampler through litellm, pointed at a real loopback OpenAI-compatible server."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest

from ra_guard._sync import run_sync
from ra_guard.exceptions import ConfigurationError, MissingDependencyError, SamplerError
from ra_guard.samplers import resolve_sampler
from ra_guard.samplers.litellm import LiteLLMSampler
from ra_guard.types import Usage
from tests.support.openai_server import Completion, Fault, OpenAIStubServer

# litellm builds a pydantic schema for a TypedDict with ReadOnly items on its first call (a UserWarning
# pydantic raises); the lead is asked to add this filter to pyproject's filterwarnings.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")

MESSAGES = [{"role": "user", "content": "Name a colour"}]


def _sampler(server: OpenAIStubServer, **kwargs: Any) -> LiteLLMSampler:
    kwargs.setdefault("max_retries", 0)
    return LiteLLMSampler("openai/gen", api_base=server.base_url, api_key="x", **kwargs)


async def test_n_is_honoured_in_one_call(openai_server: OpenAIStubServer) -> None:
    sampler = _sampler(openai_server)
    samples = await sampler.asample(MESSAGES, n=4, temperature=0.7)

    assert [s.text for s in samples] == [f"answer {i} to: Name a colour" for i in range(4)]
    assert sampler.n_supported is True
    (sent,) = openai_server.requests
    assert (sent.body["n"], sent.body["temperature"]) == (4, 0.7)
    assert {s.response_id for s in samples} == {"chatcmpl-stub-1"}
    assert {s.finish_reason for s in samples} == {"stop"}
    assert {s.model for s in samples} == {"gen"}
    total = sum((s.usage for s in samples), Usage())
    words = sum(len(s.text.split()) for s in samples)
    assert (total.prompt_tokens, total.completion_tokens) == (3, words)  # the server's usage, exactly once


async def test_provider_ignoring_n_falls_back_to_parallel_calls(openai_server: OpenAIStubServer) -> None:
    openai_server.max_choices = 1
    sampler = _sampler(openai_server)

    first = await sampler.asample(MESSAGES, n=3, temperature=0.5)
    assert len(first) == 3 and sampler.n_supported is False
    assert [r.body.get("n") for r in openai_server.requests] == [3, None, None]
    assert len({s.response_id for s in first}) == 3

    openai_server.reset()
    second = await sampler.asample(MESSAGES, n=3, temperature=0.5)
    assert len(second) == 3
    assert [r.body.get("n") for r in openai_server.requests] == [None] * 3  # remembered: no n any more
    assert all(r.body["temperature"] == 0.5 for r in openai_server.requests)
    total = sum((s.usage for s in second), Usage())
    assert total.prompt_tokens == 3 * 3  # one prompt per call


async def test_short_answers_are_topped_up(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Completion(texts=["red", "blue"], choices=2, finish_reason="length"))
    sampler = _sampler(openai_server)
    samples = await sampler.asample(MESSAGES, n=4)

    assert [s.text for s in samples][:2] == ["red", "blue"]
    assert [s.finish_reason for s in samples] == ["length", "length", "stop", "stop"]
    assert [r.body.get("n") for r in openai_server.requests] == [4, None, None]
    assert "temperature" not in openai_server.requests[0].body  # None: the provider's default
    assert sampler.n_supported is None  # neither honoured nor ignored: ask again next time


async def test_single_sample_never_sends_n(openai_server: OpenAIStubServer) -> None:
    samples = await _sampler(openai_server).asample(MESSAGES, n=1, temperature=0.2)
    assert len(samples) == 1
    assert "n" not in openai_server.requests[0].body


async def test_transient_errors_are_retried_by_litellm(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(503))
    samples = await _sampler(openai_server, max_retries=1).asample(MESSAGES, n=2)
    assert len(samples) == 2


@pytest.mark.parametrize("fault", [Fault.error(500), Fault.drop(), Fault.hang()])
async def test_errors_become_sampler_errors(openai_server: OpenAIStubServer, fault: Fault) -> None:
    openai_server.script(fault)
    with pytest.raises(SamplerError, match="litellm:openai/gen: sampling failed"):
        await _sampler(openai_server, timeout=0.3).asample(MESSAGES, n=2)


async def test_a_400_that_single_calls_share_is_raised_and_not_remembered(openai_server: OpenAIStubServer) -> None:
    openai_server.script(*[Fault.error(400, retry_after=None, message="model 'gen' not found")] * 3)
    sampler = _sampler(openai_server)
    with pytest.raises(SamplerError, match="sampling failed: HTTP 400: model 'gen' not found"):
        await sampler.asample(MESSAGES, n=2)
    assert sampler.n_supported is None  # the 400 was not about n: ask with n again next time


async def test_one_failed_parallel_call_fails_the_sampling(openai_server: OpenAIStubServer) -> None:
    openai_server.max_choices = 1
    openai_server.script("first", Fault.error(400, retry_after=None))
    with pytest.raises(SamplerError):
        await _sampler(openai_server).asample(MESSAGES, n=3)


async def test_rejects_bad_n(openai_server: OpenAIStubServer) -> None:
    with pytest.raises(ConfigurationError):
        await _sampler(openai_server).asample(MESSAGES, n=0)


def test_resolves_from_spec_string() -> None:
    sampler = resolve_sampler("litellm:gpt-4o-mini")
    assert isinstance(sampler, LiteLLMSampler)
    assert sampler.name == "litellm:gpt-4o-mini"


def test_missing_litellm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(MissingDependencyError, match="ra-guard"):
        LiteLLMSampler("gpt-4o-mini")


def test_sync_calls_share_one_pool_that_close_releases(openai_server: OpenAIStubServer) -> None:
    # Sync calls share one long-lived loop, so litellm's per-loop client is reused, not rebuilt.
    sampler = _sampler(openai_server)
    for _ in range(3):
        assert len(sampler.sample(MESSAGES, n=2)) == 2
    assert openai_server.open_connections <= 2
    run_sync(sampler.aclose())
    assert openai_server.wait_connections_closed()


def test_closing_one_sampler_leaves_another_ones_calls_in_flight_alone() -> None:
    # litellm caches its HTTP clients per event loop, and sync callers share one loop: closing
    # one sampler (or dropping the guard that built it) must not close the clients another
    # live sampler is sending through at that moment.
    with OpenAIStubServer() as server:
        first, second = _sampler(server), _sampler(server)
        first.sample(MESSAGES, n=1)
        server.script(Completion(delay=3.0))  # the second sampler's call: in flight while the first closes
        errors: list[BaseException] = []
        results: list[int] = []

        def sample_second() -> None:
            try:
                results.append(len(second.sample(MESSAGES, n=2)))
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=sample_second)
        worker.start()
        deadline = time.monotonic() + 30
        while not server.in_flight.get("sampler") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.in_flight.get("sampler") == 1, "the second sampler's call never reached the server"
        run_sync(first.aclose())
        # Closing took far less than the call's 3 s: this test covered a close in the middle of a call.
        assert server.in_flight.get("sampler") == 1
        worker.join()
        assert not errors, errors
        assert results == [2]
        run_sync(second.aclose())
        assert server.wait_connections_closed()
