"""An output guardrail for the OpenAI Agents SDK that judges the agent's final output against policies.

:func:`ra_guard_output_guardrail` builds an ``OutputGuardrail`` (the same object
the SDK's ``@output_guardrail`` decorator makes). After the agent produces its
final output, the guardrail has the guard's judge score it against the
policies (``Guard.acheck``: judging only, nothing is sampled) and trips the
tripwire when the decision does not pass: ``Runner.run`` then raises the SDK's
``OutputGuardrailTripwireTriggered``, whose
``guardrail_result.output.output_info`` holds ra-guard's summary (passed, the
scores, the trace id, degraded and its reasons; never candidate texts).

A judge that fails follows each policy's ``on_judge_error``: ``fail_open``
lets the output through with ``degraded=True`` in ``output_info`` (and a
WARNING on the ``ra_guard`` logger), ``fail_closed`` trips the wire.

Example:
    >>> from ra_guard import Guard
    >>> from ra_guard.testing import FunctionJudge
    >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {k: 4 for k in r.responses}))
    >>> ra_guard_output_guardrail(guard).get_name()
    'ra_guard'
"""

from __future__ import annotations

from typing import Any, Literal

from agents import Agent, GuardrailFunctionOutput, OutputGuardrail, RunContextWrapper

from ra_guard import AllCandidatesRejected, ConfigurationError, Decision, Guard
from ra_guard.decision import decision_summary

from ._convert import conversation, output_as_text

__all__ = ["TripOn", "ra_guard_output_guardrail"]

#: ``not_passed``: trip when any policy is below its ``min_score`` (or vetoes);
#: ``veto``: trip only when a hard policy (or a ``fail_closed`` judge error) vetoes.
TripOn = Literal["not_passed", "veto"]


def _tripped(decision: Decision, trip_on: TripOn) -> bool:
    if trip_on == "veto":
        return decision.chosen.vetoed
    return not decision.passed


def ra_guard_output_guardrail(
    guard: Guard, *, name: str = "ra_guard", trip_on: TripOn = "not_passed"
) -> OutputGuardrail[Any]:
    """An ``OutputGuardrail`` that judges the agent's final output with ``guard``.

    The judge sees the agent's instructions, the run's input items and the
    final output: a string as it is, a structured output (``output_type``) as
    JSON. ``output_info`` is :func:`~ra_guard.integrations.openai_agents.decision_summary`
    of the decision.

    Args:
        guard: The guard whose policies and judge decide; its strategy and
            sampler must be unset (a guardrail can only let the output through
            or stop the run; use :class:`GuardedModel` to choose among answers).
        name: The guardrail's name in the SDK's traces and results.
        trip_on: ``"not_passed"`` (default) trips when any policy fails;
            ``"veto"`` only when a hard policy vetoes the output.

    Example:
        >>> from agents import Agent  # doctest: +SKIP
        >>> agent = Agent(name="support", output_guardrails=[ra_guard_output_guardrail(guard)])  # doctest: +SKIP
    """
    if trip_on not in ("not_passed", "veto"):
        raise ConfigurationError(f"trip_on must be 'not_passed' or 'veto', got {trip_on!r}")
    if guard.sampler is not None:
        # Guard.acheck would sample alternatives to a failing output, which a guardrail cannot use.
        raise ConfigurationError(
            "the output guardrail only judges the agent's output: give it a Guard without a sampler, "
            "and wrap the agent's model in GuardedModel to choose among several answers"
        )

    async def judge_output(context: RunContextWrapper[Any], agent: Agent[Any], output: Any) -> GuardrailFunctionOutput:
        messages = conversation(await agent.get_system_prompt(context), context.turn_input)
        try:
            decision = await guard.acheck(messages, output_as_text(output))
        except AllCandidatesRejected as rejected:  # the output itself was vetoed
            decision = rejected.decision
        return GuardrailFunctionOutput(
            output_info=decision_summary(decision), tripwire_triggered=_tripped(decision, trip_on)
        )

    return OutputGuardrail(guardrail_function=judge_output, name=name)
