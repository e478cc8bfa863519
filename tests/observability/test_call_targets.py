"""Inference spans and metrics name the provider, the model requested and the server, as the GenAI
conventions ask (``gen_ai.provider.name`` required; ``gen_ai.request.model`` without routing prefix)."""

from __future__ import annotations

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor

from ra_guard import BestOfN, Guard
from ra_guard.judges.openai_compat import OpenAICompatJudge
from ra_guard.judges.rewardanything_server import RewardAnythingServerJudge
from ra_guard.samplers.litellm import LiteLLMSampler
from ra_guard.tracing import known_target
from tests.observability.conftest import POLICIES, Pipeline, length_judge, texts_sampler
from tests.support.openai_server import OpenAIStubServer

pytestmark = pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")


def test_a_discovered_judge_model_names_the_span_and_the_token_metric(
    otel: Pipeline, openai_server: OpenAIStubServer
) -> None:
    judge = OpenAICompatJudge(openai_server.base_url, max_retries=0)  # the model comes from /v1/models
    guard = Guard(policies=POLICIES[:1], judge=judge, tracer=otel.tracer())
    guard.rerank("Say hi", ["hi", "hello there"])
    guard.close()
    (span,) = [s for s in otel.spans if s.name.startswith("chat ")]
    attributes = dict(span.attributes or {})
    assert span.name == "chat ra-stub"
    assert attributes["gen_ai.request.model"] == "ra-stub"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == openai_server.port
    tokens = otel.metrics()["gen_ai.client.token.usage"]
    assert {a["gen_ai.request.model"] for a, _ in tokens} == {"ra-stub"}
    assert {a["gen_ai.provider.name"] for a, _ in tokens} == {"openai"}
    assert {a["server.port"] for a, _ in tokens} == {openai_server.port}


def test_a_second_decision_has_the_target_at_span_creation(otel: Pipeline, openai_server: OpenAIStubServer) -> None:
    judge = OpenAICompatJudge(openai_server.base_url, max_retries=0)
    guard = Guard(policies=POLICIES[:1], judge=judge, tracer=otel.tracer())
    guard.rerank("Say hi", ["hi", "hello there"])
    seen: list[dict[str, object]] = []

    class Spy(SpanProcessor):
        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            seen.append(dict(span.attributes or {}))

    otel.tracer_provider.add_span_processor(Spy())
    guard.rerank("Say hi", ["hi", "hello there"])
    guard.close()
    (judge_start,) = [a for a in seen if a.get("openinference.span.kind") == "EVALUATOR"]
    assert judge_start["gen_ai.request.model"] == "ra-stub"
    assert judge_start["gen_ai.provider.name"] == "openai"
    assert judge_start["server.address"] == "127.0.0.1"


def test_litellm_sampling_spans_drop_the_routing_prefix(otel: Pipeline, openai_server: OpenAIStubServer) -> None:
    sampler = LiteLLMSampler("openai/gen", api_base=openai_server.base_url, api_key="x", max_retries=0)
    guard = Guard(
        policies=POLICIES[:1], judge=length_judge(), sampler=sampler, strategy=BestOfN(n=2), tracer=otel.tracer()
    )
    guard.run([{"role": "user", "content": "Name a colour"}])
    guard.close()
    (span,) = [s for s in otel.spans if (s.attributes or {}).get("openinference.span.kind") == "LLM"]
    attributes = dict(span.attributes or {})
    assert span.name == "chat gen"
    assert attributes["gen_ai.request.model"] == "gen"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", openai_server.port)
    assert attributes["ra_guard.backend"] == "litellm:openai/gen"


def test_litellm_providers_map_to_the_conventions_values() -> None:
    from ra_guard.judges.litellm_judge import LiteLLMJudge

    assert known_target(LiteLLMJudge("anthropic/claude-3-5-sonnet").name).provider == "anthropic"  # type: ignore[union-attr]
    assert known_target(LiteLLMJudge("bedrock/anthropic.claude").name).provider == "aws.bedrock"  # type: ignore[union-attr]
    assert known_target(LiteLLMSampler("gpt-4o-mini").name).provider == "openai"  # type: ignore[union-attr]
    target = known_target(LiteLLMSampler("ollama/llama3").name)
    assert target is not None and (target.provider, target.model) == ("ollama", "llama3")


def test_the_reference_server_judge_names_its_server() -> None:
    judge = RewardAnythingServerJudge("http://gpu-7:8000")
    target = known_target(judge.name)
    assert target is not None
    assert (target.provider, target.server_address, target.server_port) == ("rewardanything", "gpu-7", 8000)


def test_a_backend_that_does_not_say_is_traced_as_unknown(otel: Pipeline) -> None:
    guard = Guard(
        policies=POLICIES[:1],
        judge=length_judge(),
        sampler=texts_sampler("a", "bb"),
        strategy=BestOfN(n=2),
        tracer=otel.tracer(),
    )
    guard.run([{"role": "user", "content": "hi"}])
    calls = [s for s in otel.spans if s.name.startswith("chat ")]
    assert len(calls) == 2
    for span in calls:
        assert (span.attributes or {})["gen_ai.provider.name"] == "unknown"
        assert "server.address" not in (span.attributes or {})


def test_judge_span_attribute_keys_are_the_same_whatever_the_candidates(otel: Pipeline) -> None:
    guard = Guard(policies=POLICIES[:1], judge=length_judge(), tracer=otel.tracer())
    guard.rerank("Say hi", ["hi", "hello"])
    guard.rerank("Say hi", ["a", "bb", "ccc"])
    first, second = [s for s in otel.spans if (s.attributes or {}).get("openinference.span.kind") == "EVALUATOR"]
    assert set(first.attributes or {}) == set(second.attributes or {})
    attributes = dict(second.attributes or {})
    scores = dict(zip(attributes["ra_guard.judge.score_names"], attributes["ra_guard.judge.scores"], strict=True))  # type: ignore[call-overload]
    assert len(scores) == 3
    assert all(isinstance(score, float) for score in scores.values())
    assert scores[attributes["ra_guard.judge.ranking"][0]] == max(scores.values())  # type: ignore[index]


def test_operation_duration_follows_the_conventions(otel: Pipeline, openai_server: OpenAIStubServer) -> None:
    from opentelemetry.sdk.metrics.export import HistogramDataPoint

    judge = OpenAICompatJudge(openai_server.base_url, max_retries=0)
    guard = Guard(
        policies=POLICIES[:1],
        judge=judge,
        sampler=texts_sampler("a", "bb"),
        strategy=BestOfN(n=2),
        tracer=otel.tracer(),
    )
    guard.run([{"role": "user", "content": "hi"}])
    guard.close()
    points = otel.metrics()["gen_ai.client.operation.duration"]
    by_provider = {a["gen_ai.provider.name"]: (a, p) for a, p in points}
    assert set(by_provider) == {"openai", "unknown"}  # the judge, the function sampler
    judged, point = by_provider["openai"]
    assert judged == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "ra-stub",
        "server.address": "127.0.0.1",
        "server.port": openai_server.port,
    }
    assert isinstance(point, HistogramDataPoint) and point.count == 1 and 0 < point.sum < 10
    assert list(point.explicit_bounds) == [
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.28,
        2.56,
        5.12,
        10.24,
        20.48,
        40.96,
        81.92,
    ]


def test_a_failed_call_has_error_type_in_operation_duration(otel: Pipeline, openai_server: OpenAIStubServer) -> None:
    from tests.support.openai_server import Fault

    openai_server.handler = lambda request: Fault.error(500)  # every judge request fails
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", max_retries=0)
    guard = Guard(policies=POLICIES[:1], judge=judge, tracer=otel.tracer())
    guard.rerank("Say hi", ["hi", "hello"])
    guard.close()
    (attributes,) = [a for a, _ in otel.metrics()["gen_ai.client.operation.duration"]]
    assert attributes["error.type"] == "JudgeError"
