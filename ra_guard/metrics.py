"""OpenTelemetry metrics of decisions, through the API package only.

:class:`DecisionMetrics` owns the instruments; :class:`~ra_guard.tracing.DecisionTracer`
feeds them, so a guard records metrics wherever it records spans. With no
``MeterProvider`` configured every instrument is a no-op.

=====================================  =========  =================  ==========================================
Instrument                             Kind       Unit               Attributes
=====================================  =========  =================  ==========================================
``ra_guard.decisions``                 counter    ``{decision}``     ``ra_guard.outcome``, ``ra_guard.strategy``,
                                                                     ``gen_ai.workflow.name``, ``error.type``,
                                                                     ``ra_guard.degraded`` (bool)
``ra_guard.decision.duration``         histogram  ``s``              as ``ra_guard.decisions``
``ra_guard.sampling.duration``         histogram  ``s``              ``gen_ai.request.model``, ``error.type``
``ra_guard.judge.duration``            histogram  ``s``              ``gen_ai.request.model``, ``ra_guard.policy``,
                                                                     ``error.type``
``ra_guard.judge.retries``             counter    ``{retry}``        ``gen_ai.request.model``
``ra_guard.score``                     histogram  ``1`` (1–5)        ``ra_guard.policy``, ``ra_guard.candidate.source``
``ra_guard.fallbacks``                 counter    ``{fallback}``     ``ra_guard.fallback.kind``, ``ra_guard.policy``
``ra_guard.vetoes``                    counter    ``{candidate}``    ``ra_guard.policy``
``gen_ai.client.token.usage``          histogram  ``{token}``        ``gen_ai.operation.name``,
                                                                     ``gen_ai.provider.name``,
                                                                     ``gen_ai.request.model``, ``server.address``,
                                                                     ``server.port``, ``gen_ai.token.type``,
                                                                     ``ra_guard.call``
``gen_ai.client.operation.duration``   histogram  ``s``              ``gen_ai.operation.name``,
                                                                     ``gen_ai.provider.name``,
                                                                     ``gen_ai.request.model``, ``server.address``,
                                                                     ``server.port``, ``error.type``
=====================================  =========  =================  ==========================================

Outcomes (``ra_guard.outcome``): ``passed`` (the winner meets every policy),
``failed`` (a winner, below some ``min_score``), ``rejected`` (every candidate
vetoed; raised or returned by ``on_all_rejected``), ``error`` (an exception).
``ra_guard.degraded`` is true when the decision took a fallback other than
``all_rejected`` (:func:`degraded_fallbacks`): a judge that did not answer and
was ignored under ``fail_open``, a deadline or a budget. Every fallback is
counted in ``ra_guard.fallbacks``; alert on its rate, or on degraded decisions.

Example:
    >>> metrics = DecisionMetrics()
    >>> metrics.record_judge_call(model="judge", policy="concise", duration_s=0.2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import metrics

try:  # the API's stand-in until a MeterProvider is set: its instruments drop every value
    from opentelemetry.metrics._internal import _ProxyMeterProvider as _Unset
except ImportError:  # pragma: no cover - another API version: always record

    class _Unset:  # type: ignore[no-redef]
        pass


if TYPE_CHECKING:
    from ra_guard.decision import Decision, Fallback
    from ra_guard.types import Usage

__all__ = ["DecisionMetrics", "decision_outcome", "degraded_fallbacks"]

_INSTRUMENTATION = "ra_guard"
# Judge and model calls take from tens of milliseconds to a minute (the GenAI
# semantic conventions advise these boundaries for gen_ai.client.operation.duration).
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_SCORE_BUCKETS = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
# The conventions' advice for gen_ai.client.token.usage: powers of 4 up to 4**13.
_TOKEN_BUCKETS = [4**i for i in range(14)]


def decision_outcome(decision: Decision) -> str:
    """The ``ra_guard.outcome`` of a finished decision: ``passed``, ``failed``, ``rejected`` or ``unjudged``.

    ``unjudged``: no judge call was made and no candidate holds a score (an
    agent's tool-calling turn passed through, a deadline that passed before the
    judge): the answer went out without a verdict, and pass rates must not count it.

    Example:
        >>> from ra_guard.decision import Candidate, Decision
        >>> decision_outcome(Decision(chosen_index=0, candidates=[Candidate(index=0, text="hi")]))
        'unjudged'
    """
    if decision.candidates and all(c.vetoed for c in decision.candidates):
        return "rejected"
    if decision.judge_calls == 0 and not any(c.scores for c in decision.candidates):
        return "unjudged"
    return "passed" if decision.passed else "failed"


def degraded_fallbacks(decision: Decision) -> list[Fallback]:
    """The fallbacks that mean a decision was not made as configured (a judge that did not answer,
    a deadline, a budget): every kind but ``all_rejected``, which is a verdict, not a fault.

    Example:
        >>> from ra_guard.decision import Candidate, Decision, Fallback
        >>> d = Decision(chosen_index=0, candidates=[Candidate(index=0, text="hi")],
        ...              fallbacks=[Fallback(kind="judge_error", policy="concise", reason="refused", action="ignored")])
        >>> [f.kind for f in degraded_fallbacks(d)]
        ['judge_error']
    """
    return [fallback for fallback in decision.fallbacks if fallback.kind != "all_rejected"]


def _call_attributes(
    model: str, provider: str, server_address: str | None, server_port: int | None
) -> dict[str, str | int]:
    """The GenAI conventions' attributes of one model call, shared by its duration and token records."""
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
    }
    if server_address:
        attributes["server.address"] = server_address
        if server_port is not None:
            attributes["server.port"] = server_port
    return attributes


class DecisionMetrics:
    """The instruments of ra-guard, created once per meter provider.

    Args:
        meter_provider: A provider to use instead of the global one.

    Example:
        >>> from opentelemetry.sdk.metrics import MeterProvider
        >>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        >>> reader = InMemoryMetricReader()
        >>> m = DecisionMetrics(MeterProvider(metric_readers=[reader]))
        >>> m.record_judge_call(model="ra-8b", policy="concise", duration_s=0.5, provider="openai")
        >>> [metric.name for rm in reader.get_metrics_data().resource_metrics
        ...  for sm in rm.scope_metrics for metric in sm.metrics]
        ['ra_guard.judge.duration', 'gen_ai.client.operation.duration']
    """

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        from ra_guard import __version__

        meter = metrics.get_meter(_INSTRUMENTATION, __version__, meter_provider=meter_provider)
        self._provider_given = meter_provider is not None
        self._decisions = meter.create_counter(
            "ra_guard.decisions", unit="{decision}", description="Decisions made, by outcome."
        )
        self._decision_duration = meter.create_histogram(
            "ra_guard.decision.duration",
            unit="s",
            description="Wall time of whole decisions.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._sampling_duration = meter.create_histogram(
            "ra_guard.sampling.duration",
            unit="s",
            description="Wall time of sampling calls.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._judge_duration = meter.create_histogram(
            "ra_guard.judge.duration",
            unit="s",
            description="Wall time of judge calls (one policy, all candidates).",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._judge_retries = meter.create_counter(
            "ra_guard.judge.retries", unit="{retry}", description="Retries made inside judge calls."
        )
        self._scores = meter.create_histogram(
            "ra_guard.score",
            unit="1",
            description="Judge scores (1-5) per policy, one per judged candidate.",
            explicit_bucket_boundaries_advisory=_SCORE_BUCKETS,
        )
        self._fallbacks = meter.create_counter(
            "ra_guard.fallbacks", unit="{fallback}", description="Fallbacks taken, by kind."
        )
        self._vetoes = meter.create_counter(
            "ra_guard.vetoes", unit="{candidate}", description="Candidates vetoed, by policy."
        )
        # The GenAI conventions' required client metric, for dashboards built on them; ra-guard's own
        # duration histograms above add the policy and keep sampling and judging apart.
        self._operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per sampling or judge call.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )

    def record_sampling_call(
        self,
        *,
        model: str,
        duration_s: float,
        usage: Usage | None = None,
        error_type: str | None = None,
        provider: str = "unknown",
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> None:
        """One sampling call: its duration, and its tokens where it succeeded."""
        attributes: dict[str, str] = {"gen_ai.request.model": model}
        if error_type:
            attributes["error.type"] = error_type
        self._sampling_duration.record(duration_s, attributes)
        call = _call_attributes(model, provider, server_address, server_port)
        self._record_operation(call, duration_s, error_type)
        if usage is not None:
            self._record_tokens(call, "sampling", usage)

    def record_judge_call(
        self,
        *,
        model: str,
        policy: str,
        duration_s: float,
        usage: Usage | None = None,
        error_type: str | None = None,
        retries: int = 0,
        provider: str = "unknown",
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> None:
        """One judge call: duration, retries, and tokens where it succeeded."""
        attributes: dict[str, str] = {"gen_ai.request.model": model, "ra_guard.policy": policy}
        if error_type:
            attributes["error.type"] = error_type
        self._judge_duration.record(duration_s, attributes)
        if retries:
            self._judge_retries.add(retries, {"gen_ai.request.model": model})
        call = _call_attributes(model, provider, server_address, server_port)
        self._record_operation(call, duration_s, error_type)
        if usage is not None:
            self._record_tokens(call, "judge", usage)

    def _record_operation(self, call: dict[str, str | int], duration_s: float, error_type: str | None) -> None:
        self._operation_duration.record(duration_s, {**call, "error.type": error_type} if error_type else call)

    def _record_tokens(self, call: dict[str, str | int], kind: str, usage: Usage) -> None:
        for token_type, count in (("input", usage.prompt_tokens), ("output", usage.completion_tokens)):
            if count:
                self._tokens.record(count, {**call, "gen_ai.token.type": token_type, "ra_guard.call": kind})

    @property
    def recording(self) -> bool:
        """Whether values reach a ``MeterProvider`` (``False`` while no provider is set: all dropped).

        Example:
            >>> from opentelemetry.sdk.metrics import MeterProvider
            >>> DecisionMetrics(MeterProvider()).recording
            True
        """
        return self._provider_given or not isinstance(metrics.get_meter_provider(), _Unset)

    def record_decision(self, decision: Decision, *, guard: str, duration_s: float) -> None:
        """A finished decision: outcome, duration, scores, fallbacks and vetoes."""
        if not self.recording:
            # One value per candidate and policy, each dropped: skip the walk over the decision.
            return
        attributes: dict[str, str | bool] = {
            "ra_guard.outcome": decision_outcome(decision),
            "ra_guard.strategy": decision.strategy,
            "gen_ai.workflow.name": guard,
            "ra_guard.degraded": bool(degraded_fallbacks(decision)),
            # A shadow decision was judged, never served: pass rates must tell it apart.
            "ra_guard.shadow": decision.shadow,
        }
        self._decisions.add(1, attributes)
        self._decision_duration.record(duration_s, attributes)
        # A decision has few (policy, source) pairs and many scores: one attribute dict per
        # pair, shared by its records (instruments only read them), not one per score.
        score_attributes: dict[tuple[str, str], dict[str, str]] = {}
        for candidate in decision.candidates:
            source = candidate.source
            for policy, score in candidate.scores.items():
                if score.score is not None:
                    attributes_of = score_attributes.get((policy, source))
                    if attributes_of is None:
                        attributes_of = score_attributes[policy, source] = {
                            "ra_guard.policy": policy,
                            "ra_guard.candidate.source": source,
                        }
                    self._scores.record(score.score, attributes_of)
                if score.vetoed:
                    self._vetoes.add(1, {"ra_guard.policy": policy})
        self.record_fallbacks(decision)

    def record_fallbacks(self, decision: Decision) -> None:
        """Count each of the decision's fallbacks (``ra_guard.fallbacks``, by kind and policy)."""
        for fallback in decision.fallbacks:
            fallback_attributes: Mapping[str, str] = {"ra_guard.fallback.kind": fallback.kind}
            if fallback.policy:
                fallback_attributes = {**fallback_attributes, "ra_guard.policy": fallback.policy}
            self._fallbacks.add(1, fallback_attributes)

    def record_failed_decision(self, *, guard: str, strategy: str, error_type: str, duration_s: float) -> None:
        """A decision that raised before it could be made (``ra_guard.outcome="error"``)."""
        attributes = {
            "ra_guard.outcome": "error",
            "ra_guard.strategy": strategy,
            "gen_ai.workflow.name": guard,
            "error.type": error_type,
        }
        self._decisions.add(1, attributes)
        self._decision_duration.record(duration_s, attributes)
