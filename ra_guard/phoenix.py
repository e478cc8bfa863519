"""Push per-candidate scores to Phoenix as span annotations (optional, for Phoenix users).

Spans already carry ``gen_ai.evaluation.result`` events; Phoenix shows those in
a span's details. Annotations go further: Phoenix lists them as columns of the
spans table that you can filter and sort on (``concise < 3``). Give a
:class:`PhoenixAnnotator` to the tracer and, after each traced decision, it
posts (from a background thread, never on the request path) to Phoenix's REST
API ``POST /v1/span_annotations``:

- per candidate and policy, on the candidate's span (its ``chat`` sampling span,
  or the root for original and given candidates): ``name`` = policy name,
  ``score`` = the judge's 1–5 score, ``label`` = ``pass``/``fail``/``vetoed``/``error``;
- per candidate, ``ra_guard.choice``: ``chosen``/``not_chosen``/``vetoed``, score = combined;
- on the root span, ``ra_guard.outcome``: ``passed``/``failed``/``rejected``.

All with ``annotator_kind="LLM"`` (the judge is a model) and an ``identifier``
per decision and candidate, so re-sending updates instead of duplicating.
Phoenix accepts annotations for spans it has not ingested yet and attaches them
when the spans arrive.

Example:
    >>> from ra_guard.tracing import DecisionTracer
    >>> annotator = PhoenixAnnotator("http://127.0.0.1:6006")
    >>> tracer = DecisionTracer(listeners=[annotator])
    >>> annotator.close()
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ra_guard._background import DecisionSender
from ra_guard._redact import redact_capped, redact_secrets
from ra_guard.metrics import decision_outcome

if TYPE_CHECKING:
    from ra_guard.decision import Decision
    from ra_guard.tracing import DecisionSpans

__all__ = ["PhoenixAnnotator", "annotations_for"]

_logger = logging.getLogger(__name__)
AnnotatorKind = Literal["LLM", "CODE", "HUMAN"]


def annotations_for(
    decision: Decision,
    spans: DecisionSpans,
    *,
    annotator_kind: AnnotatorKind = "LLM",
    include_reasoning: bool = False,
    max_explanation: int = 2000,
) -> list[dict[str, Any]]:
    """The span annotations (Phoenix REST ``SpanAnnotationData``) for one decision.

    Args:
        decision: The finished decision.
        spans: Where its spans are (from the tracer).
        annotator_kind: ``LLM`` (the judge is a model), ``CODE`` or ``HUMAN``.
        include_reasoning: Add the judge's reasoning to explanations (content:
            off by default, secrets always redacted).
        max_explanation: Characters kept of each explanation.

    Example:
        >>> from ra_guard.decision import Candidate, Decision, PolicyScore
        >>> from ra_guard.tracing import DecisionSpans
        >>> d = Decision(chosen_index=0, candidates=[Candidate(index=0, text="hi",
        ...              scores={"concise": PolicyScore(score=4.0, rank=0)})])
        >>> notes = annotations_for(d, DecisionSpans("0" * 32, "a" * 16, {0: "b" * 16}))
        >>> [(a["name"], a["span_id"][:2], a["result"]["label"]) for a in notes]
        [('concise', 'bb', 'pass'), ('ra_guard.choice', 'bb', 'chosen'), ('ra_guard.outcome', 'aa', 'passed')]
    """
    notes: list[dict[str, Any]] = []
    # Capped, then redacted: an error or a reasoning of any length costs at most max_explanation.
    why = redact_capped(decision.why, max_explanation)
    for candidate in decision.candidates:
        span_id = spans.candidate_span_ids.get(candidate.index, spans.root_span_id)
        identifier = f"ra-guard:{decision.decision_id}:{candidate.index}"
        metadata = {
            "decision_id": decision.decision_id,
            "candidate_index": candidate.index,
            "candidate_source": candidate.source,
            "response_id": redact_secrets(candidate.response_id) if candidate.response_id else None,
        }
        for policy, score in candidate.scores.items():
            if score.error is not None:
                label = "error"
                explanation = f"not judged: {score.error}"
            else:
                label = "vetoed" if score.vetoed else ("pass" if score.passed else "fail")
                explanation = f"candidate {candidate.index}: " + (
                    f"scored {score.score:g}/5" if score.score is not None else "not scored"
                )
            if include_reasoning and score.reasoning:
                explanation += f". {score.reasoning}"
            notes.append(
                {
                    "span_id": span_id,
                    "name": policy,
                    "annotator_kind": annotator_kind,
                    "result": {
                        "label": label,
                        "score": score.score,
                        "explanation": redact_capped(explanation, max_explanation),
                    },
                    "metadata": {**metadata, "rank": score.rank},
                    "identifier": identifier,
                }
            )
        chosen = candidate.index == decision.chosen_index and not candidate.vetoed
        label = "chosen" if chosen else ("vetoed" if candidate.vetoed else "not_chosen")
        notes.append(
            {
                "span_id": span_id,
                "name": "ra_guard.choice",
                "annotator_kind": annotator_kind,
                "result": {
                    "label": label,
                    "score": candidate.combined,
                    "explanation": why if chosen else None,
                },
                "metadata": metadata,
                "identifier": identifier,
            }
        )
    chosen_candidate = decision.candidates[decision.chosen_index] if decision.candidates else None
    notes.append(
        {
            "span_id": spans.root_span_id,
            "name": "ra_guard.outcome",
            "annotator_kind": annotator_kind,
            "result": {
                "label": decision_outcome(decision),
                "score": chosen_candidate.combined if chosen_candidate is not None else None,
                "explanation": why,
            },
            "metadata": {"decision_id": decision.decision_id, "chosen_index": decision.chosen_index},
            "identifier": f"ra-guard:{decision.decision_id}",
        }
    )
    return notes


class PhoenixAnnotator(DecisionSender):
    """Posts each traced decision's scores to Phoenix as span annotations, from a thread.

    Use it as a listener of :class:`~ra_guard.tracing.DecisionTracer`.

    Args:
        endpoint: Phoenix's base URL (``http://127.0.0.1:6006``; no ``/v1``).
        api_key: Phoenix API key, when authentication is on (sent as a bearer
            token; never logged).
        annotator_kind: ``LLM`` (default), ``CODE`` or ``HUMAN``.
        include_reasoning: Add the judge's reasoning to explanations.
        max_queue: Decisions waiting to be sent at most; more are dropped and counted.
        attempts: Tries per batch on connection errors and 5xx answers.
        timeout_s: HTTP timeout per request.
        transport: An httpx transport (tests).

    Attributes:
        sent: Annotations Phoenix accepted.
        dropped: Decisions not sent (queue full, or every attempt failed).

    Example:
        >>> annotator = PhoenixAnnotator("http://127.0.0.1:6006", include_reasoning=False)
        >>> annotator.sent, annotator.dropped
        (0, 0)
        >>> annotator.close()
    """

    def __init__(
        self,
        endpoint: str = "http://127.0.0.1:6006",
        *,
        api_key: str | None = None,
        annotator_kind: AnnotatorKind = "LLM",
        include_reasoning: bool = False,
        max_queue: int = 1000,
        attempts: int = 3,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.annotator_kind: AnnotatorKind = annotator_kind
        self.include_reasoning = include_reasoning
        self.attempts = max(1, attempts)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.endpoint, headers=headers, timeout=timeout_s, transport=transport)
        # Annotations are built and sent on the worker; what is queued is sent at close() or at exit.
        self._start(
            "ra-guard-phoenix",
            what=f"Phoenix annotator for {redact_secrets(self.endpoint)}",
            max_queue=max_queue,
            on_close=self._client.close,
        )

    def __repr__(self) -> str:
        return f"PhoenixAnnotator({self.endpoint!r})"

    def _handle(self, item: tuple[Decision, DecisionSpans]) -> None:
        decision, spans = item
        try:
            notes = annotations_for(
                decision, spans, annotator_kind=self.annotator_kind, include_reasoning=self.include_reasoning
            )
        except Exception:
            self._unsent += 1
            raise  # the worker logs it and goes on with the next decision
        self._send(notes)

    def _send(self, notes: list[dict[str, Any]]) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._client.post("/v1/span_annotations", params={"sync": "false"}, json={"data": notes})
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    self.sent += len(notes)
                    return
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500:
                    break  # the request is wrong; retrying will not help
            if attempt < self.attempts:
                time.sleep(0.2 * 2 ** (attempt - 1))
        self._unsent += 1
        _logger.warning("could not send span annotations to Phoenix at %s: %s", self.endpoint, redact_secrets(problem))
