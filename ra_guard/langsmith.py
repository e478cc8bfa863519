"""Send per-policy scores to LangSmith as feedback (optional, for LangSmith users).

LangSmith ingests OpenTelemetry spans as runs, deriving each run's id from the
span id (``langsmith.integrations.otel.langsmith_run_id_from_otel_span_id``).
Give a :class:`LangSmithFeedback` to the tracer and, after each traced decision,
it creates from a background thread (never on the request path) one feedback
per candidate and policy on the candidate's run, one ``ra_guard.choice`` per
candidate and one ``ra_guard.outcome`` on the decision's root run: the same
scores :class:`~ra_guard.phoenix.PhoenixAnnotator` posts to Phoenix.

Feedback ids are derived from the decision, candidate and key, so a resent
feedback updates instead of duplicating. LangSmith being down never loses the
decision: what cannot be sent is counted in :attr:`LangSmithFeedback.dropped`
and logged (WARNING).

Example:
    >>> from ra_guard.tracing import DecisionTracer
    >>> feedback = LangSmithFeedback(api_url="http://127.0.0.1:1984", api_key="lsv2-...")  # doctest: +SKIP
    >>> tracer = DecisionTracer(listeners=[feedback])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from ra_guard._background import DecisionSender
from ra_guard._redact import redact_secrets
from ra_guard.exceptions import MissingDependencyError
from ra_guard.phoenix import annotations_for

if TYPE_CHECKING:
    from ra_guard.decision import Decision
    from ra_guard.tracing import DecisionSpans

__all__ = ["LangSmithFeedback", "run_id_of"]

_logger = logging.getLogger(__name__)
# Feedback ids: uuid5 in this namespace of "decision:candidate:key", stable across resends.
_NAMESPACE = uuid.UUID("8c0f3b52-2d0e-4d56-9a57-3b7a3e8f4c11")


def run_id_of(span_id: str) -> uuid.UUID:
    """The LangSmith run id of an OpenTelemetry span (16 hex digits): its bytes right-aligned in 16.

    This is LangSmith's ingest rule (its SDK's ``langsmith_run_id_from_otel_span_id``).

    Example:
        >>> run_id_of("00000000000000ff")
        UUID('00000000-0000-0000-0000-0000000000ff')
    """
    return uuid.UUID(bytes=int(span_id, 16).to_bytes(16, "big"))


class LangSmithFeedback(DecisionSender):
    """Creates each traced decision's scores as LangSmith feedback, from a thread.

    Use it as a listener of :class:`~ra_guard.tracing.DecisionTracer`; the spans
    must reach LangSmith too (its OTLP endpoint), or the feedback has no run.

    Args:
        api_url: LangSmith's API URL (default: the SDK's, ``LANGSMITH_ENDPOINT``).
        api_key: LangSmith API key (default: ``LANGSMITH_API_KEY``; never logged).
        client: A ``langsmith.Client`` to use instead (``api_url``/``api_key`` then unused).
        session_id: The id of the LangSmith project (tracing session) the spans go to;
            feedback without one is deprecated by LangSmith (its SDK warns).
        include_reasoning: Add the judge's reasoning to comments (content: off by default).
        max_queue: Decisions waiting to be sent at most; more are dropped and counted.
        attempts: Tries per feedback (the SDK's ``stop_after_attempt``).

    Attributes:
        sent: Feedback LangSmith accepted.

    Raises:
        MissingDependencyError: The ``langsmith`` package is not installed.

    Example:
        >>> feedback = LangSmithFeedback(api_url="http://127.0.0.1:9", api_key="k")  # doctest: +SKIP
        >>> feedback.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        client: Any = None,
        session_id: str | uuid.UUID | None = None,
        include_reasoning: bool = False,
        max_queue: int = 1000,
        attempts: int = 2,
    ) -> None:
        if client is None:
            try:
                import langsmith
            except ImportError:
                # langsmith comes with LangChain (the extra that installs it).
                raise MissingDependencyError("langsmith", extra="langsmith") from None
            # auto_batch_tracing off: each feedback is one POST /feedback from our own thread.
            client = langsmith.Client(api_url=api_url, api_key=api_key, auto_batch_tracing=False)
        self.client = client
        self.session_id = session_id
        self.include_reasoning = include_reasoning
        self.attempts = max(1, attempts)
        where = redact_secrets(str(getattr(client, "api_url", api_url)))
        self._start("ra-guard-langsmith", what=f"LangSmith feedback for {where}", max_queue=max_queue)

    def _handle(self, item: tuple[Decision, DecisionSpans]) -> None:
        decision, spans = item
        trace_id = run_id_of(spans.root_span_id)
        failed = False
        for note in annotations_for(decision, spans, include_reasoning=self.include_reasoning):
            result = note["result"]
            key = note["name"]
            feedback_id = uuid.uuid5(_NAMESPACE, f"{note['identifier']}:{key}")
            try:
                self.client.create_feedback(
                    run_id=run_id_of(note["span_id"]),
                    trace_id=trace_id,
                    key=key,
                    score=result["score"],
                    value=result["label"],
                    comment=result["explanation"],
                    feedback_id=feedback_id,
                    feedback_source_type="model",
                    source_info={"source": "ra-guard", **note["metadata"]},
                    stop_after_attempt=self.attempts,
                    session_id=self.session_id,
                )
            except Exception as exc:  # LangSmith down or refusing: the decision stands, the loss is counted
                failed = True
                problem = redact_secrets(f"{type(exc).__name__}: {exc}")[:500]
                _logger.warning("could not send feedback %r to LangSmith: %s", key, problem)
                break  # the next feedback of this decision would fail the same way
            self.sent += 1
        if failed:
            self._unsent += 1
