"""The state a traced decision keeps while it runs, and what backends and listeners see of it.

:mod:`ra_guard.tracing` writes the spans; this module holds what they share
through context variables: the running decision (:class:`DecisionState`) and
the running sampling or judge call (:class:`CallState`), which a backend's
:func:`record_retry` counts into. :class:`DecisionSpans` and
:class:`DecisionListener` are what listeners such as
:class:`ra_guard.phoenix.PhoenixAnnotator` receive.

Example:
    >>> record_retry(TimeoutError("read timed out"), attempt=2)  # outside a traced call: nothing happens
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span

from ra_guard._redact import redact_capped
from ra_guard.types import Usage

if TYPE_CHECKING:
    from ra_guard.decision import Decision

__all__ = ["MAX_MESSAGE", "CallState", "DecisionListener", "DecisionSpans", "DecisionState", "record_retry"]

#: Characters kept of an exception message on a span (capped, then redacted).
MAX_MESSAGE = 4096


@dataclass(frozen=True)
class DecisionSpans:
    """Where a decision's spans are, for listeners that annotate them (hex ids).

    Attributes:
        trace_id: The trace, 32 hex digits.
        root_span_id: The ``invoke_workflow`` span, 16 hex digits.
        candidate_span_ids: Per candidate index, the span its evaluations sit on
            (its sampling span, or the root for original and given candidates).
    """

    trace_id: str
    root_span_id: str
    candidate_span_ids: dict[int, str]


class DecisionListener(Protocol):
    """Called with every finished, traced decision (e.g. :class:`ra_guard.phoenix.PhoenixAnnotator`).

    It runs on the request path: hand work off to a thread and return.
    """

    def on_decision(self, decision: Decision, spans: DecisionSpans) -> None:
        """Take note of a finished decision."""


@dataclass
class CallState:
    """One sampling or judge call while it runs (per task, through a context variable)."""

    error_type: str | None = None
    usage: Usage | None = None
    retries: int = 0


@dataclass
class DecisionState:
    """One decision while it runs: its root and the sampling spans kept open for evaluation events."""

    root: Span
    recording: bool
    guard: str
    strategy: str
    started: float
    # No tracer provider and no meter provider set: every span is the API's invalid
    # span and every value is dropped, so the calls within skip their spans and figures.
    silent: bool = False
    finished: bool = False
    # attempt -> (sampling span, the time its call ended); the span is ended with
    # that time once the evaluation events of its candidates have been added.
    sampling: dict[int, tuple[Span, int]] = field(default_factory=dict)
    # Captured text -> its cleaned form: a candidate is recorded on its sampling span, in each
    # judge call and as the output, but redacted once per decision.
    cleaned: dict[str, str] = field(default_factory=dict)


# What a call inside a silent decision gets: the invalid span, nothing to set up or end
# (a nullcontext holds no state, so one serves every call).
SILENT_CALL: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)

decision_state: ContextVar[DecisionState | None] = ContextVar("ra_guard_decision", default=None)
call_state: ContextVar[CallState | None] = ContextVar("ra_guard_call", default=None)


def record_retry(error: BaseException | None = None, *, attempt: int | None = None) -> None:
    """Note, from inside a judge or sampler backend, that a call is being retried.

    Adds a ``ra_guard.retry`` event (with the redacted error) to the current span
    and counts the retry into the judge span's ``ra_guard.judge.retries`` and the
    ``ra_guard.judge.retries`` metric. Outside a traced call it does nothing.

    Args:
        error: What failed, if anything.
        attempt: The attempt about to be made (2 for the first retry).

    Example:
        >>> record_retry(TimeoutError("read timed out"), attempt=2)
    """
    state = call_state.get()
    if state is None:
        return
    state.retries += 1
    span = trace.get_current_span()
    if span.is_recording():
        attributes: dict[str, Any] = {}
        if attempt is not None:
            attributes["ra_guard.attempt"] = attempt
        if error is not None:
            attributes["error.type"] = type(error).__name__
            attributes["exception.message"] = redact_capped(str(error), MAX_MESSAGE)
        span.add_event("ra_guard.retry", attributes)
