"""OpenTelemetry tracing of decisions, through the API package only.

With no SDK configured, every call here is a no-op. With one (see
``docs/observability.md``), each decision is a root span, with a child span
per sampling call and per judge call. The guard talks to tracing only through
:class:`DecisionTracer`, so that richer conventions can be added here without
touching the orchestration.

Example:
    >>> tracer = DecisionTracer()
    >>> with tracer.decision(guard="demo", strategy="best_of_n", policies=["concise"]) as span:
    ...     pass
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

if TYPE_CHECKING:
    from ra_guard.decision import Decision
    from ra_guard.types import Sample
    from ra_guard.verdict import Verdict

__all__ = ["DecisionTracer"]

_INSTRUMENTATION = "ra_guard"


class DecisionTracer:
    """Creates the spans of a decision.

    Args:
        tracer_provider: A provider to use instead of the global one.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(_INSTRUMENTATION, tracer_provider=tracer_provider)

    @contextmanager
    def decision(self, *, guard: str, strategy: str, policies: Sequence[str]) -> Iterator[Span]:
        """The root span of one decision."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_workflow",
            "ra_guard.strategy": strategy,
            "ra_guard.policies": list(policies),
        }
        with self._tracer.start_as_current_span(
            f"invoke_workflow {guard}", attributes=attributes, record_exception=True
        ) as span:
            yield span

    @contextmanager
    def sampling(self, *, sampler: str, n: int, attempt: int, temperature: float | None) -> Iterator[Span]:
        """A span around one sampling call."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.choice.count": n,
            "ra_guard.attempt": attempt,
        }
        if temperature is not None:
            attributes["gen_ai.request.temperature"] = temperature
        with self._tracer.start_as_current_span(f"chat {sampler}", attributes=attributes) as span:
            yield span

    def record_samples(self, span: Span, samples: Sequence[Sample]) -> None:
        """Usage and finish reasons of a sampling call."""
        span.set_attribute("gen_ai.usage.input_tokens", sum(s.usage.prompt_tokens for s in samples))
        span.set_attribute("gen_ai.usage.output_tokens", sum(s.usage.completion_tokens for s in samples))
        span.set_attribute("gen_ai.response.finish_reasons", [s.finish_reason or "unknown" for s in samples])

    @contextmanager
    def judge_call(self, *, judge: str, policy: str, candidates: int) -> Iterator[Span]:
        """A span around one listwise judge call."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "ra_guard.policy": policy,
            "ra_guard.judge.candidates": candidates,
        }
        with self._tracer.start_as_current_span(f"chat {judge}", attributes=attributes) as span:
            yield span

    def record_verdict(self, span: Span, verdict: Verdict) -> None:
        """Scores and usage of a judge call."""
        span.set_attribute("gen_ai.usage.input_tokens", verdict.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", verdict.usage.completion_tokens)
        for name, score in verdict.scores.items():
            span.set_attribute(f"ra_guard.score.{name}", score)
        if verdict.repairs:
            span.set_attribute("ra_guard.judge.repairs", list(verdict.repairs))

    def record_error(self, span: Span, error: BaseException) -> None:
        """A failed call: the exception, its type, and an error status."""
        span.record_exception(error)
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, str(error)))

    def finish_decision(self, span: Span, decision: Decision) -> None:
        """The decision's outcome as attributes of the root span."""
        span.set_attribute("ra_guard.decision.id", decision.decision_id)
        span.set_attribute("ra_guard.decision.chosen_index", decision.chosen_index)
        span.set_attribute("ra_guard.decision.attempts", decision.attempts)
        span.set_attribute("ra_guard.decision.passed", decision.passed)
        span.set_attribute("ra_guard.decision.candidates", len(decision.candidates))
        span.set_attribute("ra_guard.decision.judge_calls", decision.judge_calls)
        if decision.fallbacks:
            span.set_attribute("ra_guard.decision.fallbacks", [f"{f.kind}: {f.reason}" for f in decision.fallbacks])

    @staticmethod
    def trace_id_of(span: Span) -> str | None:
        """The span's trace id as 32 hex digits, or ``None`` when not recording."""
        ctx = span.get_span_context()
        return format(ctx.trace_id, "032x") if ctx.is_valid else None
