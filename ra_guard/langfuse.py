"""Send per-policy scores to Langfuse as scores (optional, for Langfuse users).

Langfuse ingests OpenTelemetry spans as observations under their own trace and
span ids. Give a :class:`LangfuseScores` to the tracer and, after each traced
decision, it creates from a background thread (never on the request path),
through the ``langfuse`` SDK:

- per candidate and policy, on the candidate's observation: ``name`` = policy,
  a ``NUMERIC`` score (the judge's 1–5), the label (``pass``/``fail``/``vetoed``)
  in the comment and metadata; a ``CATEGORICAL`` ``error`` where the policy could
  not be judged;
- per candidate, ``ra_guard.choice`` (``CATEGORICAL``: ``chosen``/``not_chosen``/``vetoed``);
- on the root, ``ra_guard.outcome`` (``CATEGORICAL``: ``passed``/``failed``/``rejected``/``unjudged``).

Score ids are derived from the decision, candidate and name, so a resend
updates. The SDK sends from its own queue; Langfuse being down never loses the
decision (the SDK logs what it could not send; what ra-guard could not hand
over is counted in :attr:`LangfuseScores.dropped` and logged).

Example:
    >>> from ra_guard.tracing import DecisionTracer
    >>> scores = LangfuseScores(base_url="https://cloud.langfuse.com")  # doctest: +SKIP
    >>> tracer = DecisionTracer(listeners=[scores])  # doctest: +SKIP
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

__all__ = ["LangfuseScores", "scores_for"]

_logger = logging.getLogger(__name__)
_NAMESPACE = uuid.UUID("5e1d7c3a-9b64-4f0e-8d21-6a0c2f9b7e43")


def scores_for(decision: Decision, spans: DecisionSpans, *, include_reasoning: bool = False) -> list[dict[str, Any]]:
    """The keyword arguments of ``Langfuse.create_score`` for one decision, one dict per score.

    Example:
        >>> from ra_guard.decision import Candidate, Decision, PolicyScore
        >>> from ra_guard.tracing import DecisionSpans
        >>> d = Decision(chosen_index=0, candidates=[Candidate(index=0, text="hi",
        ...              scores={"concise": PolicyScore(score=4.0, rank=0)})])
        >>> [(s["name"], s["value"]) for s in scores_for(d, DecisionSpans("0" * 32, "a" * 16, {}))]
        [('concise', 4.0), ('ra_guard.choice', 'chosen'), ('ra_guard.outcome', 'passed')]
    """
    scores: list[dict[str, Any]] = []
    for note in annotations_for(decision, spans, include_reasoning=include_reasoning):
        result, name = note["result"], note["name"]
        numeric = name not in ("ra_guard.choice", "ra_guard.outcome") and result["score"] is not None
        explanation = result["explanation"]
        scores.append(
            {
                "name": name,
                "value": float(result["score"]) if numeric else result["label"],
                "data_type": "NUMERIC" if numeric else "CATEGORICAL",
                "trace_id": spans.trace_id,
                "observation_id": note["span_id"],
                "score_id": str(uuid.uuid5(_NAMESPACE, f"{note['identifier']}:{name}")),
                "comment": f"{result['label']}: {explanation}" if explanation else result["label"],
                "metadata": {"source": "ra-guard", "label": result["label"], **note["metadata"]},
            }
        )
    return scores


class LangfuseScores(DecisionSender):
    """Creates each traced decision's scores as Langfuse scores, from a thread.

    Use it as a listener of :class:`~ra_guard.tracing.DecisionTracer`; the spans
    must reach Langfuse too (its OTLP endpoint), or the scores have no observation.

    Args:
        public_key: Langfuse public key (default: ``LANGFUSE_PUBLIC_KEY``).
        secret_key: Langfuse secret key (default: ``LANGFUSE_SECRET_KEY``; never logged).
        base_url: Langfuse's URL (default: ``LANGFUSE_BASE_URL``, else Langfuse cloud).
        client: A ``langfuse.Langfuse`` to use instead of building one.
        include_reasoning: Add the judge's reasoning to comments (content: off by default).
        max_queue: Decisions waiting to be handed over at most; more are dropped and counted.

    Attributes:
        sent: Scores handed to the SDK (it sends them from its own queue).

    Raises:
        MissingDependencyError: The ``langfuse`` package is not installed.
    """

    def __init__(
        self,
        *,
        public_key: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        client: Any = None,
        include_reasoning: bool = False,
        max_queue: int = 1000,
    ) -> None:
        if client is None:
            try:
                import langfuse
                from opentelemetry.sdk.trace import TracerProvider
            except ImportError:
                raise MissingDependencyError("langfuse", extra="langfuse") from None
            # A provider of its own: the SDK must not take over the application's global one.
            client = langfuse.Langfuse(
                public_key=public_key, secret_key=secret_key, base_url=base_url, tracer_provider=TracerProvider()
            )
        self.client = client
        self.include_reasoning = include_reasoning
        self._start(
            "ra-guard-langfuse",
            what=f"Langfuse scores for {redact_secrets(str(base_url or 'the default host'))}",
            max_queue=max_queue,
            on_close=self._close_client,
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Hand over every queued decision, then ask the SDK to send what it holds."""
        done = self._worker.flush(timeout)
        self._flush_client()
        return done

    def _flush_client(self) -> None:
        try:
            self.client.flush()
        except Exception as exc:
            _logger.warning("could not flush scores to Langfuse: %s", redact_secrets(f"{type(exc).__name__}: {exc}"))

    def _close_client(self) -> None:
        self._flush_client()
        try:
            self.client.shutdown()
        except Exception as exc:
            _logger.warning("could not shut down the Langfuse client: %s", redact_secrets(repr(exc)))

    def _handle(self, item: tuple[Decision, DecisionSpans]) -> None:
        decision, spans = item
        try:
            for score in scores_for(decision, spans, include_reasoning=self.include_reasoning):
                self.client.create_score(**score)
                self.sent += 1
        except Exception as exc:  # the SDK refused: the decision stands, the loss is counted
            self._unsent += 1
            _logger.warning("could not hand scores to Langfuse: %s", redact_secrets(f"{type(exc).__name__}: {exc}"))
