"""The evaluation and guardrail events of a decision, as span events and as OpenTelemetry log events.

The GenAI semantic conventions define ``gen_ai.evaluation.result`` and
``gen_ai.guardrail.result`` as *events*: log records with an event name,
parented to the span they describe (here, through the log record's trace
context). :class:`EventSink` emits each one as such a log record, through the
Logs API, when a ``LoggerProvider`` is given or set globally, and also as a
span event (on by default) for backends that read traces only, such as Phoenix.

Example:
    >>> sink = EventSink()
    >>> sink.logging  # no LoggerProvider set: no log events
    False
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import _logs, trace
from opentelemetry.trace import Span

from ra_guard._redact import redact_capped
from ra_guard._trace_state import MAX_MESSAGE

try:  # the API's stand-ins until a LoggerProvider is set: their loggers drop every record
    from opentelemetry._logs._internal import NoOpLoggerProvider as _NoOp
    from opentelemetry._logs._internal import ProxyLoggerProvider as _Proxy

    _UNSET: tuple[type, ...] = (_Proxy, _NoOp)
except ImportError:  # pragma: no cover - another API version: always emit
    _UNSET = ()

if TYPE_CHECKING:
    from ra_guard.decision import Candidate, Decision, PolicyScore

__all__ = [
    "EVALUATION_EVENT",
    "GUARDRAIL_EVENT",
    "EventSink",
    "choice_evaluation",
    "evaluation",
    "guardrail_results",
]

EVALUATION_EVENT = "gen_ai.evaluation.result"
GUARDRAIL_EVENT = "gen_ai.guardrail.result"
#: ``gen_ai.guardrail.component.name`` of ``check()``'s results.
GUARDRAIL_COMPONENT = "ra-guard"

_logger = logging.getLogger("ra_guard")
# Log records name their event (``event_name``) from opentelemetry-api 1.35 on; before, no log events.
_HAS_EVENT_NAME = "event_name" in inspect.signature(_logs.LogRecord.__init__).parameters


class EventSink:
    """Where a decision's events go: span events, log events (Logs API), or both.

    Args:
        logger_provider: A provider to use instead of the global one.
        span_events: Also add each event to its span (Phoenix and Jaeger read only traces).

    Example:
        >>> EventSink(span_events=False).span_events
        False
    """

    def __init__(self, logger_provider: _logs.LoggerProvider | None = None, *, span_events: bool = True) -> None:
        from ra_guard import __version__

        self._logger = _logs.get_logger("ra_guard", __version__, logger_provider=logger_provider)
        self._given = logger_provider is not None
        self.span_events = span_events
        if self._given and not _HAS_EVENT_NAME:
            _logger.warning(
                "a logger_provider was given, but opentelemetry-api %s cannot name log events (event_name needs "
                "1.35 or later): no gen_ai.evaluation.result log events; upgrade opentelemetry-api",
                _api_version(),
            )

    @property
    def logging(self) -> bool:
        """Whether log events reach a ``LoggerProvider`` (``False`` while none is set: all dropped)."""
        if not _HAS_EVENT_NAME:
            return False
        return self._given or not isinstance(_logs.get_logger_provider(), _UNSET)

    def emit(self, span: Span, name: str, attributes: dict[str, Any], *, logs: bool) -> None:
        """One event about ``span``: a span event (if on and the span records) and a log record (if ``logs``)."""
        if self.span_events and span.is_recording():
            span.add_event(name, attributes)
        if logs:
            context = trace.set_span_in_context(span)
            record = _logs.LogRecord(timestamp=time.time_ns(), context=context, event_name=name, attributes=attributes)
            self._logger.emit(record)


def _api_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opentelemetry-api")
    except PackageNotFoundError:  # pragma: no cover - a vendored API
        return "(unknown version)"


def evaluation(
    policy: str,
    score: PolicyScore,
    candidate: Candidate,
    response_id: str,
    *,
    reasoning: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """The attributes of one ``gen_ai.evaluation.result``: one policy's verdict on one candidate.

    Args:
        policy: The policy name (``gen_ai.evaluation.name``).
        score: The candidate's score under it.
        candidate: The candidate.
        response_id: The provider's response id, or ra-guard's ``{decision_id}-{index}``.
        reasoning: With content capture on, cleans the judge's reasoning to append to the explanation.

    Example:
        >>> from ra_guard.decision import Candidate, PolicyScore
        >>> evaluation("concise", PolicyScore(score=4.0, rank=0), Candidate(index=0, text="hi"), "r-1")[
        ...     "gen_ai.evaluation.explanation"]
        'scored 4/5, rank 1'
    """
    attributes: dict[str, Any] = {
        "gen_ai.evaluation.name": policy,
        "gen_ai.response.id": response_id,
        "ra_guard.candidate.index": candidate.index,
        "ra_guard.candidate.source": candidate.source,
    }
    if score.error is not None:
        label = "error"
        attributes["error.type"] = "JudgeError"
        explanation = f"not judged: {redact_capped(score.error, MAX_MESSAGE)}"
    else:
        label = "vetoed" if score.vetoed else ("pass" if score.passed else "fail")
        explanation = f"scored {score.score:g}/5" if score.score is not None else "not scored"
        if score.rank is not None:
            explanation += f", rank {score.rank + 1}"
    if score.vetoed and score.error is None:
        explanation += ", vetoed by a hard policy"
    if score.score is not None:
        attributes["gen_ai.evaluation.score.value"] = float(score.score)
    attributes["gen_ai.evaluation.score.label"] = label
    if reasoning is not None and score.reasoning:
        explanation += f". {reasoning(score.reasoning)}"
    attributes["gen_ai.evaluation.explanation"] = explanation
    return attributes


def choice_evaluation(decision: Decision, candidate: Candidate, response_id: str) -> dict[str, Any]:
    """The ``ra_guard.choice`` evaluation of a candidate: chosen, not chosen or vetoed, with its combined score.

    Example:
        >>> from ra_guard.decision import Candidate, Decision
        >>> d = Decision(chosen_index=0, candidates=[Candidate(index=0, text="hi")], why="the only one")
        >>> choice_evaluation(d, d.candidates[0], "r-1")["gen_ai.evaluation.score.label"]
        'chosen'
    """
    if candidate.index == decision.chosen_index and not candidate.vetoed:
        label = "chosen"
    else:
        label = "vetoed" if candidate.vetoed else "not_chosen"
    attributes: dict[str, Any] = {
        "gen_ai.evaluation.name": "ra_guard.choice",
        "gen_ai.evaluation.score.label": label,
        "gen_ai.evaluation.explanation": redact_capped(decision.why, MAX_MESSAGE)
        if candidate.index == decision.chosen_index
        else f"candidate {candidate.index} was {label.replace('_', ' ')}",
        "gen_ai.response.id": response_id,
        "ra_guard.candidate.index": candidate.index,
    }
    if candidate.combined is not None:
        attributes["gen_ai.evaluation.score.value"] = float(candidate.combined)
    return attributes


def guardrail_results(decision: Decision, outcome: str) -> list[dict[str, Any]]:
    """The ``gen_ai.guardrail.result`` events of a ``check()``: one per policy on the checked output, one overall.

    ``check()`` is a dedicated guardrail API, so its results are guardrail results
    (GenAI conventions, guardrails, development status). ra-guard's own result
    values are kept as they are, as the conventions ask: per policy, result type
    ``label`` with ``pass``/``fail``/``vetoed``/``error``; overall, result type
    ``outcome`` with ``passed``/``failed``/``rejected``/``unjudged``. Nothing here
    holds the checked text or the judge's reasoning.

    Args:
        decision: A finished ``check`` decision (the output is the ``original`` candidate).
        outcome: Its ``ra_guard.outcome``.

    Example:
        >>> from ra_guard.decision import Candidate, Decision, PolicyScore
        >>> d = Decision(chosen_index=0, strategy="check", candidates=[
        ...     Candidate(index=0, text="hi", source="original", scores={"polite": PolicyScore(score=4.0)})])
        >>> [r["gen_ai.guardrail.result.value"] for r in guardrail_results(d, "passed")]
        ['pass', 'passed']
    """
    common = {"gen_ai.guardrail.component.name": GUARDRAIL_COMPONENT, "gen_ai.guardrail.source": "output"}
    results: list[dict[str, Any]] = []
    checked = next((c for c in decision.candidates if c.source == "original"), None)
    if checked is not None:
        for policy, score in checked.scores.items():
            result: dict[str, Any] = {
                **common,
                "gen_ai.guardrail.policy.id": policy,
                "gen_ai.guardrail.result.type": "label",
            }
            if score.error is not None:
                result["gen_ai.guardrail.result.value"] = "error"
                result["error.type"] = "JudgeError"
            else:
                result["gen_ai.guardrail.result.value"] = (
                    "vetoed" if score.vetoed else ("pass" if score.passed else "fail")
                )
            results.append(result)
    results.append({**common, "gen_ai.guardrail.result.type": "outcome", "gen_ai.guardrail.result.value": outcome})
    return results
