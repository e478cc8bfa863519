"""A pydantic-ai output validator that judges the agent's output and asks for a retry with the judge's critique.

Register :class:`RaGuardOutputValidator` with ``agent.output_validator(...)``.
When the agent has its output, the guard's judge scores it against the
policies (``Guard.acheck``: judging only); an output that falls short raises
pydantic-ai's ``ModelRetry`` whose message is the critique (each failed policy,
its score, the judge's notes), so the model's next request carries it and the
agent tries again, within the agent's output retries.

A judge that fails follows each policy's ``on_judge_error``: ``fail_open``
lets the output through, degraded; ``fail_closed`` blocks it with
:class:`~ra_guard.AllCandidatesRejected` (asking the model again cannot fix
a judge that is down). Either way the decision's summary is written to the
final response's ``metadata["ra_guard"]`` (``result.response.metadata``),
which pydantic-ai keeps in the history and never sends to the model.

Example:
    >>> from ra_guard import Guard
    >>> from ra_guard.testing import FunctionJudge
    >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {k: 4 for k in r.responses}))
    >>> RaGuardOutputValidator(guard).retry_on
    'not_passed'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse

from ra_guard import AllCandidatesRejected, ConfigurationError, Decision, Guard, Policy
from ra_guard.decision import decision_summary

from ._convert import conversation, output_as_text

__all__ = ["DEFAULT_CRITIQUE", "METADATA_KEY", "RaGuardOutputValidator", "RetryOn", "critique"]

OutputT = TypeVar("OutputT")

#: ``not_passed``: retry when any policy is below its ``min_score``; ``veto``: only on a hard policy's veto.
RetryOn = Literal["not_passed", "veto"]

#: Key of the decision summary in the response's ``metadata``.
METADATA_KEY = "ra_guard"

#: The retry message; ``{failures}`` and ``{notes}`` are filled in.
DEFAULT_CRITIQUE = (
    "A reviewer checked your answer against these requirements and it fell short:\n"
    "{failures}\n\n"
    "Reviewer's notes:\n{notes}\n\n"
    "Write an improved answer that meets every requirement."
)


def critique(decision: Decision, policies: tuple[Policy, ...], *, template: str = DEFAULT_CRITIQUE) -> str:
    """The judge's critique of a decision's chosen candidate, as a message to the model.

    Example:
        >>> from ra_guard import Decision, Policy
        >>> from ra_guard.decision import Candidate, PolicyScore
        >>> policy = Policy(name="brief", principle="Be brief.", min_score=4)
        >>> score = PolicyScore(score=2, passed=False, reasoning="Long.")
        >>> chosen = Candidate(index=0, text="...", scores={"brief": score})
        >>> print(critique(Decision(chosen_index=0, candidates=[chosen]), (policy,)).splitlines()[1])
        - brief: Be brief. (scored 2/5; needs 4)
    """
    by_name = {p.name: p for p in policies}
    failures: list[str] = []
    notes: list[str] = []
    for name, score in decision.chosen.scores.items():
        if score.passed and not score.vetoed:
            continue
        policy = by_name.get(name)
        principle = policy.principle.strip() if policy is not None else name
        needs = f"; needs {policy.min_score:g}" if policy is not None else ""
        got = "not judged" if score.score is None else f"scored {score.score:.3g}/5"
        failures.append(f"- {name}: {principle} ({got}{needs})")
        if score.reasoning:
            notes.append(f"[{name}] {score.reasoning.strip()}")
    return template.format(failures="\n".join(failures), notes="\n\n".join(notes) or "(none)")


def _final_response(messages: list[ModelMessage]) -> ModelResponse | None:
    last = messages[-1] if messages else None
    return last if isinstance(last, ModelResponse) else None


class RaGuardOutputValidator:
    """Judge a pydantic-ai agent's output with a :class:`~ra_guard.Guard`; retry with the critique when it fails.

    Args:
        guard: The guard whose policies and judge decide. Its sampler must be
            unset: the validator judges the agent's output, the agent retries.
        retry_on: ``"not_passed"`` (default): retry when any policy is below
            its ``min_score``; ``"veto"``: only when a hard policy vetoes.
        template: The retry message, with ``{failures}`` and ``{notes}``.
        on_decision: Called with every :class:`~ra_guard.Decision` (the full one).

    The judge sees the run's instructions, the conversation so far and the
    output: a string as it is, a structured output (``output_type``) as JSON.
    Partial outputs of a streamed run are not judged, only the final one.

    Example:
        >>> from pydantic_ai import Agent  # doctest: +SKIP
        >>> agent = Agent("openai:gpt-4o-mini", output_retries=2)  # doctest: +SKIP
        >>> agent.output_validator(RaGuardOutputValidator(guard))  # doctest: +SKIP
    """

    def __init__(
        self,
        guard: Guard,
        *,
        retry_on: RetryOn = "not_passed",
        template: str = DEFAULT_CRITIQUE,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        if retry_on not in ("not_passed", "veto"):
            raise ConfigurationError(f"retry_on must be 'not_passed' or 'veto', got {retry_on!r}")
        if guard.sampler is not None:
            # Guard.acheck would sample alternatives to a failing output; here the agent retries instead.
            raise ConfigurationError(
                "the output validator only judges the agent's output: give it a Guard without a sampler "
                "(the agent retries with the critique), or wrap the model in GuardedModel for best-of-N"
            )
        self.guard = guard
        self.retry_on: RetryOn = retry_on
        self.template = template
        self.on_decision = on_decision

    def _fails(self, decision: Decision) -> bool:
        return decision.chosen.vetoed if self.retry_on == "veto" else not decision.passed

    async def __call__(self, ctx: RunContext[Any], output: OutputT) -> OutputT:
        """Judge ``output``; return it if it passes, else raise ``ModelRetry`` with the critique."""
        if ctx.partial_output:
            return output
        final = _final_response(ctx.messages)
        before = ctx.messages[:-1] if final is not None else ctx.messages
        rejected: AllCandidatesRejected | None = None
        try:
            decision = await self.guard.acheck(conversation(before), output_as_text(output))
        except AllCandidatesRejected as exc:  # the output itself was vetoed
            decision, rejected = exc.decision, exc
        if final is not None:
            # Not sent to the model; the application reads it from result.response.metadata.
            final.metadata = {**(final.metadata or {}), METADATA_KEY: decision_summary(decision)}
        if self.on_decision is not None:
            self.on_decision(decision)
        if not self._fails(decision):
            return output
        failed = [s for s in decision.chosen.scores.values() if not s.passed or s.vetoed]
        if rejected is not None and all(s.error is not None for s in failed):
            raise rejected  # fail_closed on a judge error: a retry cannot help, block the output
        raise ModelRetry(critique(decision, self.guard.policies, template=self.template))
