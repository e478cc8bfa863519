"""OpenTelemetry tracing of decisions: GenAI semantic conventions plus OpenInference kinds.

With no SDK configured every call here is a no-op (a handful of microseconds a
decision). With one (see ``docs/observability.md``) a decision is a tree::

    invoke_workflow {guard}          INTERNAL  openinference.span.kind=CHAIN (GUARDRAIL for check)
    ├── chat {model}                 CLIENT    LLM        one per sampling call (N choices)
    │     └─ event gen_ai.evaluation.result   one per candidate of this call and policy
    ├── chat {judge model}           CLIENT    EVALUATOR  one per judge call (one policy)
    └── ...

Candidates that were not sampled (an agent's output under ``check``, given
texts under ``rerank``) carry their evaluation events on the root span. The
decision's outcome is set on the root. The guard talks to tracing only through
:class:`DecisionTracer`; metrics (:mod:`ra_guard.metrics`) are fed from the
same hooks.

Content (messages, candidates, the judge's reasoning) is recorded only when
``capture_content=True`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
is ``true``/``SPAN_ONLY``/``SPAN_AND_EVENT``; it then passes
:func:`~ra_guard._redact.redact_secrets`, your ``redact`` hook and a length
cap. Exception messages always pass ``redact_secrets``.

Example:
    >>> tracer = DecisionTracer()
    >>> with tracer.decision(guard="demo", strategy="best_of_n", policies=["concise"]) as span:
    ...     pass
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import _logs, trace
from opentelemetry import metrics as otel_metrics
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode

from ra_guard._evaluations import (
    EVALUATION_EVENT,
    GUARDRAIL_EVENT,
    EventSink,
    choice_evaluation,
    evaluation,
    guardrail_results,
)
from ra_guard._redact import (
    CAPTURE_CONTENT_ENV,
    ContentFilter,
    Redactor,
    capture_content_from_env,
    messages_json,
    redact_capped,
    redact_name,
)
from ra_guard._trace_state import (
    MAX_MESSAGE,
    SILENT_CALL,
    CallState,
    DecisionListener,
    DecisionSpans,
    DecisionState,
    call_state,
    decision_state,
    known_target,
    metric_target,
    record_retry,
    record_target,
    reported_target,
    request_model,
    target_attributes,
)
from ra_guard.metrics import DecisionMetrics, decision_outcome, degraded_fallbacks
from ra_guard.types import Usage

if TYPE_CHECKING:
    from ra_guard.decision import Decision
    from ra_guard.judges.base import JudgeRequest
    from ra_guard.types import Messages, Sample
    from ra_guard.verdict import Verdict

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "DecisionListener",
    "DecisionSpans",
    "DecisionTracer",
    "capture_content_from_env",
    "known_target",
    "record_retry",
    "record_target",
]

_INSTRUMENTATION = "ra_guard"

# OpenInference span kinds, so that Phoenix shows each span for what it is.
_KIND = "openinference.span.kind"
# Characters kept of a stack trace on a span (capped, then redacted); messages: MAX_MESSAGE.
_MAX_STACKTRACE = 16384


def _as_current(span: Span) -> AbstractContextManager[object]:
    """Make ``span`` the current span, for what runs inside it (backends, their HTTP clients).

    With no SDK every span is the API's one invalid span, usually the current one
    already: then there is nothing to attach (attaching costs about 1.5 µs a call).
    """
    if trace.get_current_span() is span:
        return nullcontext()
    return trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False)


class _SilentDecision:
    """A decision's context where no tracer, meter or logger provider exists (see ``DecisionTracer._silent``).

    Does what the decision span's generator does in that case, and nothing else: the
    decision's state is current (calls inside skip their spans) with no call state, and
    a decision that raises is counted as failed (dropped, unless a provider was set since).

    Example:
        >>> tracer = DecisionTracer()
        >>> with tracer.decision(guard="g", strategy="best_of_n", policies=["p"]) as span:
        ...     span.is_recording()
        False
    """

    __slots__ = ("_call_token", "_span", "_state", "_token", "_tracer")

    def __init__(self, tracer: DecisionTracer, span: Span, guard: str, strategy: str) -> None:
        self._tracer = tracer
        self._span = span
        self._state = DecisionState(
            root=span, recording=False, guard=guard, strategy=strategy, started=time.perf_counter(), silent=True
        )

    def __enter__(self) -> Span:
        self._token = decision_state.set(self._state)
        # A silent decision's calls keep no call state (see DecisionTracer._decision_span).
        self._call_token = call_state.set(None)
        return self._span

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        call_state.reset(self._call_token)
        decision_state.reset(self._token)
        state = self._state
        if exc_type is not None and not state.finished:
            self._tracer.metrics.record_failed_decision(
                guard=state.guard,
                strategy=state.strategy,
                error_type=exc_type.__name__,
                duration_s=time.perf_counter() - state.started,
            )


class DecisionTracer:
    """Creates the spans, evaluation events and metrics of decisions.

    Args:
        tracer_provider: A provider to use instead of the global one.
        meter_provider: A meter provider to use instead of the global one.
        capture_content: Record messages, candidates and the judge's reasoning.
            ``None`` (default) reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
        redact: Your redaction hook for captured content (PII, ...), applied
            after the built-in secret redactor, which always runs.
        max_content_length: Characters kept of each captured text (``None``: all).
        listeners: Called with each finished traced decision and its span ids,
            e.g. :class:`ra_guard.phoenix.PhoenixAnnotator`.
        logger_provider: A ``LoggerProvider`` to use instead of the global one, for the
            ``gen_ai.evaluation.result`` log events the conventions define (none while no
            provider is given or set).
        evaluation_span_events: Also add each evaluation event to its span, for backends that
            read only traces (Phoenix, Jaeger). On by default.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        >>> exporter = InMemorySpanExporter()
        >>> provider = TracerProvider()
        >>> provider.add_span_processor(SimpleSpanProcessor(exporter))
        >>> from ra_guard import Guard
        >>> from ra_guard.testing import FunctionJudge
        >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {n: 4 for n in r.responses}),
        ...               tracer=DecisionTracer(provider))
        >>> guard.rerank("Say hi", ["hi", "hello"]).chosen_index
        0
        >>> sorted(s.name for s in exporter.get_finished_spans())
        ['chat function-judge', 'invoke_workflow ra-guard']
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        meter_provider: otel_metrics.MeterProvider | None = None,
        capture_content: bool | None = None,
        redact: Redactor | None = None,
        max_content_length: int | None = 4096,
        listeners: Sequence[DecisionListener] = (),
        logger_provider: _logs.LoggerProvider | None = None,
        evaluation_span_events: bool = True,
    ) -> None:
        from ra_guard import __version__

        self._tracer = trace.get_tracer(_INSTRUMENTATION, __version__, tracer_provider=tracer_provider)
        self._provider_given = tracer_provider is not None
        self.metrics = DecisionMetrics(meter_provider)
        self.capture_content = capture_content_from_env() if capture_content is None else capture_content
        self._content = ContentFilter(redact=redact, max_length=max_content_length)
        self.listeners = tuple(listeners)
        self.events = EventSink(logger_provider, span_events=evaluation_span_events)

    def _silent(self) -> bool:
        """Whether spans and metrics are both dropped: no provider of either given or set globally.

        The API's stand-ins then return its one invalid span and drop every value;
        checked once per decision, so a provider set later applies from the next one.
        """
        return (
            not self._provider_given
            and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
            and not self.metrics.recording
            and not self.events.logging
        )

    def _clean(self, text: str) -> str:
        """``text`` through the content filter, once per decision (memoised on the decision's state)."""
        state = decision_state.get()
        if state is None:
            return self._content(text)
        cleaned = state.cleaned.get(text)
        if cleaned is None:
            cleaned = state.cleaned[text] = self._content(text)
        return cleaned

    # -- the decision -----------------------------------------------------

    def decision(
        self, *, guard: str, strategy: str, policies: Sequence[str], messages: Messages | None = None
    ) -> AbstractContextManager[Span]:
        """The root span of one decision (``invoke_workflow {guard}``).

        Args:
            guard: The guard's name (``gen_ai.workflow.name``).
            strategy: ``best_of_n``, ``retry_with_feedback``, ``check`` or ``rerank``.
            policies: The policy names applied.
            messages: The conversation, recorded only when content capture is on.
        """
        if self._silent():
            # No provider of any kind: our tracer is the API's no-op one, which hands back the
            # current span where that is a non-recording one (name and attributes unread). Then
            # nothing needs attaching and the decision needs only its state: a plain object, not
            # a generator (~2 us less).
            current = trace.get_current_span()
            if isinstance(current, NonRecordingSpan):
                return _SilentDecision(self, current, redact_name(guard), strategy)
        return self._decision_span(guard=guard, strategy=strategy, policies=policies, messages=messages)

    @contextmanager
    def _decision_span(
        self, *, guard: str, strategy: str, policies: Sequence[str], messages: Messages | None
    ) -> Iterator[Span]:
        name = redact_name(guard)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": name,
            _KIND: "GUARDRAIL" if strategy == "check" else "CHAIN",
            "ra_guard.strategy": strategy,
            "ra_guard.policies": list(policies),
        }
        span = self._tracer.start_span(f"invoke_workflow {name}", kind=SpanKind.INTERNAL, attributes=attributes)
        recording = span.is_recording()
        silent = not recording and self._silent()
        state = DecisionState(
            root=span, recording=recording, guard=name, strategy=strategy, started=time.perf_counter(), silent=silent
        )
        token = decision_state.set(state)
        # A silent decision's calls keep no call state: retries reported in them count nowhere
        # (as before: into a state whose figures were dropped), not into an enclosing call's.
        call_token = call_state.set(None) if silent else None
        try:
            if recording and self.capture_content and messages:
                span.set_attribute("gen_ai.input.messages", messages_json(messages, self._clean))
                span.set_attribute("input.value", self._clean(messages[-1]["content"]))
                span.set_attribute("input.mime_type", "text/plain")
            with _as_current(span):
                yield span
        except BaseException as exc:
            if not state.finished:
                self.metrics.record_failed_decision(
                    guard=name,
                    strategy=strategy,
                    error_type=type(exc).__name__,
                    duration_s=time.perf_counter() - state.started,
                )
            self.record_error(span, exc)
            raise
        finally:
            if call_token is not None:
                call_state.reset(call_token)
            decision_state.reset(token)
            for sampling_span, end_time in state.sampling.values():
                sampling_span.end(end_time=end_time)
            span.end()

    # -- sampling ---------------------------------------------------------

    def sampling(
        self,
        *,
        sampler: str,
        n: int,
        attempt: int,
        temperature: float | None,
        messages: Messages | None = None,
        model: object = None,
    ) -> AbstractContextManager[Span]:
        """A span around one sampling call (``chat {model}``, N choices).

        Args:
            sampler: The sampler's name (backend and model).
            n: Choices requested (``gen_ai.request.choice.count``).
            attempt: The 1-based sampling round.
            temperature: The sampling temperature, if set.
            messages: The conversation sent, recorded only when content capture is on.
            model: The model requested, where the sampler knows it (a string);
                otherwise the sampler's name stands for it.
        """
        if self._in_silent_decision():
            return SILENT_CALL
        return self._sampling_span(
            sampler=sampler, n=n, attempt=attempt, temperature=temperature, messages=messages, model=model
        )

    @contextmanager
    def _sampling_span(
        self,
        *,
        sampler: str,
        n: int,
        attempt: int,
        temperature: float | None,
        messages: Messages | None,
        model: object,
    ) -> Iterator[Span]:
        backend = redact_name(sampler)
        target = known_target(sampler)
        given = model
        model = request_model(given, backend, target)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            **target_attributes(target),
            "gen_ai.request.model": model,
            "ra_guard.backend": backend,
            "gen_ai.request.choice.count": n,
            _KIND: "LLM",
            "ra_guard.attempt": attempt,
        }
        if temperature is not None:
            attributes["gen_ai.request.temperature"] = temperature
        span = self._tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes)
        if self.capture_content and messages and span.is_recording():
            span.set_attribute("gen_ai.input.messages", messages_json(messages, self._clean))
        call = CallState()
        started = time.perf_counter()
        try:
            with self._in_call(span, call):
                yield span
        finally:
            duration = time.perf_counter() - started
            model, target = reported_target(span, call, target, given, sampler, model)
            self.metrics.record_sampling_call(
                model=model, duration_s=duration, usage=call.usage, error_type=call.error_type, **metric_target(target)
            )
            state = decision_state.get()
            if state is not None and state.recording and call.usage is not None and call.error_type is None:
                # Keep it open for the evaluation events of its candidates (see finish_decision).
                state.sampling[attempt] = (span, time.time_ns())
            else:
                span.end()

    @staticmethod
    def _in_silent_decision() -> bool:
        """Inside a silent decision (see :meth:`_silent`): its root, the current span, is invalid too."""
        state = decision_state.get()
        return state is not None and state.silent

    @contextmanager
    def _in_call(self, span: Span, call: CallState) -> Iterator[None]:
        """Run a sampling or judge call as the current span, with ``call`` as its state.

        What the backends report (usage, retries, errors) lands in ``call``; an
        exception the guard did not already record is recorded once, redacted.
        """
        token = call_state.set(call)
        try:
            with _as_current(span):
                yield
        except BaseException as exc:
            if call.error_type is None:  # the guard may have recorded it already
                self.record_error(span, exc)
            raise
        finally:
            call_state.reset(token)

    def record_samples(self, span: Span, samples: Sequence[Sample]) -> None:
        """Usage, finish reasons, response ids (and, with content on, the candidates) of a sampling call."""
        call = call_state.get()
        if call is None and not span.is_recording():
            return
        # Added as integers: summing Usage models builds (and validates) one model per sample.
        usage = Usage(
            prompt_tokens=sum(s.usage.prompt_tokens for s in samples),
            completion_tokens=sum(s.usage.completion_tokens for s in samples),
        )
        if call is not None:
            call.usage = usage
        if not span.is_recording():
            return
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.set_attribute("gen_ai.response.finish_reasons", [s.finish_reason or "unknown" for s in samples])
        models = {s.model for s in samples if s.model}
        if len(models) == 1:
            span.set_attribute("gen_ai.response.model", models.pop())
        ids = [s.response_id for s in samples if s.response_id]
        if ids and len(set(ids)) == 1:
            span.set_attribute("gen_ai.response.id", ids[0])
        elif ids:
            span.set_attribute("ra_guard.response.ids", ids)
        if self.capture_content:
            output = [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": self._clean(s.text)}],
                    "finish_reason": s.finish_reason or "unknown",
                }
                for s in samples
            ]
            span.set_attribute("gen_ai.output.messages", json.dumps(output, ensure_ascii=False))

    # -- judging ----------------------------------------------------------

    def judge_call(
        self,
        *,
        judge: str,
        policy: str,
        candidates: int,
        request: JudgeRequest | None = None,
        model: object = None,
    ) -> AbstractContextManager[Span]:
        """A span around one listwise judge call (``chat {judge model}``, one policy).

        Args:
            judge: The judge's name (backend and model).
            policy: The policy judged.
            candidates: How many candidates the call ranks.
            request: The judge request, recorded only when content capture is on.
            model: The judge model, where the judge knows it (a string);
                otherwise the judge's name stands for it.
        """
        if self._in_silent_decision():
            return SILENT_CALL
        return self._judge_span(judge=judge, policy=policy, candidates=candidates, request=request, model=model)

    @contextmanager
    def _judge_span(
        self, *, judge: str, policy: str, candidates: int, request: JudgeRequest | None, model: object
    ) -> Iterator[Span]:
        backend = redact_name(judge)
        target = known_target(judge)
        given = model
        model = request_model(given, backend, target)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            **target_attributes(target),
            "gen_ai.request.model": model,
            "ra_guard.backend": backend,
            _KIND: "EVALUATOR",
            "ra_guard.policy": policy,
            "ra_guard.judge.candidates": candidates,
        }
        span = self._tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes)
        recording = span.is_recording()
        if recording and self.capture_content and request is not None:
            span.set_attribute(
                "gen_ai.system_instructions",
                json.dumps([{"type": "text", "content": self._clean(request.principle)}], ensure_ascii=False),
            )
            parts = [{"type": "text", "content": self._clean(request.prompt)}] + [
                {"type": "text", "content": f"[{name}] {self._clean(text)}"} for name, text in request.responses.items()
            ]
            span.set_attribute("gen_ai.input.messages", json.dumps([{"role": "user", "parts": parts}]))
        call = CallState()
        started = time.perf_counter()
        try:
            with self._in_call(span, call):
                yield span
        finally:
            duration = time.perf_counter() - started
            model, target = reported_target(span, call, target, given, judge, model)
            self.metrics.record_judge_call(
                model=model,
                policy=policy,
                duration_s=duration,
                usage=call.usage,
                error_type=call.error_type,
                retries=call.retries,
                **metric_target(target),
            )
            if recording:
                span.set_attribute("ra_guard.judge.retries", call.retries)
                span.set_attribute("ra_guard.judge.latency_s", duration)
            span.end()

    def record_verdict(self, span: Span, verdict: Verdict) -> None:
        """Scores, usage and mode of a judge call (and, with content on, its reasoning)."""
        call = call_state.get()
        if call is not None:
            call.usage = verdict.usage
        if not span.is_recording():
            return
        span.set_attribute("gen_ai.usage.input_tokens", verdict.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", verdict.usage.completion_tokens)
        if verdict.model:
            span.set_attribute("gen_ai.response.model", redact_name(verdict.model))
        span.set_attribute("ra_guard.judge.mode", verdict.mode)
        span.set_attribute("ra_guard.judge.ranking", list(verdict.ranking))
        # Fixed keys (a key per candidate would make every call's attribute set different):
        # two arrays in one order, the candidates' names and their scores.
        span.set_attribute("ra_guard.judge.score_names", list(verdict.scores))
        span.set_attribute("ra_guard.judge.scores", [float(score) for score in verdict.scores.values()])
        if verdict.repairs:
            span.set_attribute("ra_guard.judge.repairs", [redact_capped(r, MAX_MESSAGE) for r in verdict.repairs])
        if self.capture_content:
            parts: list[dict[str, str]] = []
            if verdict.reasoning:
                parts.append({"type": "reasoning", "content": self._clean(verdict.reasoning)})
            text = verdict.raw_text or json.dumps({"scores": verdict.scores, "ranking": verdict.ranking})
            parts.append({"type": "text", "content": self._clean(text)})
            output = [{"role": "assistant", "parts": parts, "finish_reason": "stop"}]
            span.set_attribute("gen_ai.output.messages", json.dumps(output, ensure_ascii=False))

    # -- errors and outcome -----------------------------------------------

    def record_error(self, span: Span, error: BaseException) -> None:
        """A failed call: a redacted ``exception`` event, ``error.type`` and an error status."""
        call = call_state.get()
        if call is not None:
            call.error_type = type(error).__name__
        if not span.is_recording():
            return
        # Capped before redaction: a judge's 40 KB error body must not hold the event loop.
        message = redact_capped(str(error), MAX_MESSAGE)
        stacktrace = redact_capped(
            "".join(traceback.format_exception(type(error), error, error.__traceback__)), _MAX_STACKTRACE
        )
        span.add_event(
            "exception",
            {
                "exception.type": f"{type(error).__module__}.{type(error).__qualname__}",
                "exception.message": message,
                "exception.stacktrace": stacktrace,
            },
        )
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, message))

    def finish_decision(self, span: Span, decision: Decision) -> None:
        """The decision's outcome on the root span, its evaluation events, metrics and listeners."""
        state = decision_state.get()
        if state is not None and state.silent:
            # Nothing recorded when it began: its figures go nowhere (a provider set since applies
            # from the next decision, as everywhere else), and no span or log event awaits them.
            state.finished = True
            return
        duration = decision.latency_s
        guard = "ra-guard"
        if state is not None:
            state.finished = True
            guard = state.guard
            duration = time.perf_counter() - state.started
        self.metrics.record_decision(decision, guard=guard, duration_s=duration)
        logs = self.events.logging
        if not span.is_recording():
            if logs:  # log events without a trace: gen_ai.response.id ties each to its answer
                self._add_evaluations(span, state, decision, logs=True)
            return
        chosen = decision.candidates[decision.chosen_index] if decision.candidates else None
        span.set_attribute("ra_guard.decision.id", decision.decision_id)
        span.set_attribute("ra_guard.decision.outcome", decision_outcome(decision))
        span.set_attribute("ra_guard.decision.chosen_index", decision.chosen_index)
        span.set_attribute("ra_guard.decision.attempts", decision.attempts)
        span.set_attribute("ra_guard.decision.passed", decision.passed)
        span.set_attribute("ra_guard.decision.candidates", len(decision.candidates))
        span.set_attribute("ra_guard.decision.judge_calls", decision.judge_calls)
        if chosen is not None and chosen.combined is not None:
            span.set_attribute("ra_guard.decision.combined_score", chosen.combined)
        degraded = degraded_fallbacks(decision)
        span.set_attribute("ra_guard.decision.degraded", bool(degraded))
        if degraded:
            span.set_attribute(
                "ra_guard.decision.degraded_reasons",
                [redact_capped(f"{f.kind}: {f.policy or '-'}: {f.reason}", MAX_MESSAGE) for f in degraded],
            )
        if decision.fallbacks:
            span.set_attribute(
                "ra_guard.decision.fallbacks",
                [redact_capped(f"{f.kind}: {f.reason}", MAX_MESSAGE) for f in decision.fallbacks],
            )
            span.set_attribute("ra_guard.decision.fallback_kinds", sorted({f.kind for f in decision.fallbacks}))
        vetoes = decision.vetoes
        if vetoes:
            span.set_attribute(
                "ra_guard.decision.vetoes", [f"{p}: {', '.join(map(str, idx))}" for p, idx in vetoes.items()]
            )
            span.set_attribute("ra_guard.decision.vetoed_indexes", sorted({i for idx in vetoes.values() for i in idx}))
        if self.capture_content and chosen is not None:
            span.set_attribute("output.value", self._clean(chosen.text))
            span.set_attribute("output.mime_type", "text/plain")
            output = [{"role": "assistant", "parts": [{"type": "text", "content": self._clean(chosen.text)}]}]
            span.set_attribute("gen_ai.output.messages", json.dumps(output, ensure_ascii=False))
        span_ids = self._add_evaluations(span, state, decision, logs=logs)
        if self.listeners:
            context = span.get_span_context()
            spans = DecisionSpans(
                trace_id=format(context.trace_id, "032x"),
                root_span_id=format(context.span_id, "016x"),
                candidate_span_ids=span_ids,
            )
            for listener in self.listeners:
                listener.on_decision(decision, spans)

    def _add_evaluations(
        self, root: Span, state: DecisionState | None, decision: Decision, *, logs: bool
    ) -> dict[int, str]:
        """One ``gen_ai.evaluation.result`` per candidate and policy, plus one ``ra_guard.choice`` per candidate.

        Each is about the candidate's span (its sampling span, else the root): a span event
        there (when span events are on) and a log event in its trace context (when logging).
        """
        span_ids: dict[int, str] = {}
        reasoning = self._clean if self.capture_content else None
        emit = self.events.emit
        for candidate in decision.candidates:
            target = root
            if state is not None and candidate.source == "sampled" and candidate.attempt in state.sampling:
                target = state.sampling[candidate.attempt][0]
            span_ids[candidate.index] = format(target.get_span_context().span_id, "016x")
            response_id = candidate.response_id or f"{decision.decision_id}-{candidate.index}"
            for policy, score in candidate.scores.items():
                attributes = evaluation(policy, score, candidate, response_id, reasoning=reasoning)
                emit(target, EVALUATION_EVENT, attributes, logs=logs)
            emit(target, EVALUATION_EVENT, choice_evaluation(decision, candidate, response_id), logs=logs)
        if decision.strategy == "check":
            for result in guardrail_results(decision, decision_outcome(decision)):
                emit(root, GUARDRAIL_EVENT, result, logs=logs)
        return span_ids

    @staticmethod
    def trace_id_of(span: Span) -> str | None:
        """The span's trace id as 32 hex digits, or ``None`` when not recording."""
        ctx = span.get_span_context()
        return format(ctx.trace_id, "032x") if ctx.is_valid else None
