"""Agent middleware: best-of-N and retry-with-feedback around each model call of a LangChain agent.

:class:`RaGuardMiddleware` plugs into ``create_agent(model, tools, middleware=[...])``.
On every model call it asks the guard for a decision: the guard's strategy
calls the model through the agent's own handler (``BestOfN``: N calls side by
side; ``RetryWithFeedback``: one call, then again with the judge's critique
while the answer falls below ``min_score``), judges the answers against the
policies, and the winning ``AIMessage`` goes back to the agent.

- **Where the decision goes.** The message carries a compact summary in
  ``response_metadata["ra_guard"]`` (winner, its scores, passed, degraded, the
  decision and trace ids; read it with :func:`summary_of`), small enough for
  checkpoints. The whole decision goes to the traces, the guard's audit log,
  callback handlers (the custom event ``"ra_guard_decision"``) and the
  ``on_decision`` hook; ``stream_mode="custom"`` receives the summary.
- **Tool turns.** A turn where the model calls tools is not a final answer: by
  default, when a candidate of the first round calls a tool, it goes back to the
  agent unjudged (the decision notes it, its calls' tokens are counted, and
  nothing is an error). ``judge_tool_calls=True`` judges those turns too;
  ``probe_first=True`` spends one call, not ``n``, on them.
- **Structured output.** With ``response_format=...`` (``ToolStrategy`` or
  ``ProviderStrategy``) the structured answer is judged, as JSON.
- **Streaming.** Candidate calls carry LangGraph's ``nostream`` tag and
  ``ra_guard:candidate``: ``stream_mode="messages"`` shows the winner, not
  every candidate's tokens.

Example:
    >>> from langchain.agents import create_agent  # doctest: +SKIP
    >>> guard = Guard(policies=["concise", "professional-tone"], judge="vllm:http://gpu:8000/v1")  # doctest: +SKIP
    >>> agent = create_agent(model, tools=[get_weather], middleware=[RaGuardMiddleware(guard, n=4)])  # doctest: +SKIP
    >>> reply = agent.invoke({"messages": [{"role": "user", "content": "Weather in Paris?"}]})  # doctest: +SKIP
    >>> summary_of(reply["messages"][-1]).scores  # doctest: +SKIP
    {'concise': 5.0, 'professional-tone': 4.0}
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain.agents.middleware.types import ExtendedModelResponse
from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables.config import ensure_config, get_callback_manager_for_config

from ra_guard._sync import run_sync
from ra_guard._threads import call_in_thread
from ra_guard.decision import Decision
from ra_guard.guard import Guard

from ._agent_turn import AgentModelSampler, AgentTurn, Call, final_message, tagged
from ._calls import GUARD_TAG, NOSTREAM_TAG
from ._convert import to_chat_messages
from ._summary import DECISION_KEY, DecisionSummary, stamp, summary_of

__all__ = ["DECISION_EVENT", "DECISION_KEY", "RaGuardMiddleware", "summary_of"]

#: Name of the custom event (callbacks, ``astream_events``) and of the ``stream_mode="custom"`` item.
DECISION_EVENT = "ra_guard_decision"


def _has_parent_run() -> bool:
    """Whether a LangChain run is current (custom events attach to one; a bare call has none)."""
    return get_callback_manager_for_config(ensure_config()).parent_run_id is not None


def with_summary(response: ModelResponse[Any], decision: Decision, *, key: str) -> ModelResponse[Any]:
    """``response`` with the decision's summary on its AI message's ``response_metadata``."""
    message = final_message(response)
    if message is None:
        return response
    stamped = stamp(message, decision, key=key)
    result: list[BaseMessage] = [stamped if m is message else m for m in response.result]
    return ModelResponse(result=result, structured_response=response.structured_response)


class RaGuardMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Guard every model call of a ``create_agent`` agent with a :class:`~ra_guard.Guard`.

    Args:
        guard: The guard: policies, judge and strategy (``BestOfN`` samples
            ``n`` answers concurrently; ``RetryWithFeedback`` retries with the
            judge's critique while the best answer is below ``min_score``).
        n: Candidates per round, overriding the strategy's ``n``; ``n=1`` with
            ``RetryWithFeedback`` calls the model once and retries only on failure.
        judge_tool_calls: Judge turns that call tools too (default: a turn
            where a candidate calls a tool is passed through unjudged).
        forward_temperature: Send the strategy's temperature to the model as a
            model setting, so that candidates differ. Never sent to models that
            refuse one (``o1``, ``o3-mini``, ``gpt-5``...: see
            :func:`~ra_guard.integrations.langchain.sampler.accepts_temperature`).
        probe_first: Call the model once before the others: a turn that calls
            tools then costs one call instead of ``n``, and a final answer costs
            a second round trip (the probe, then ``n - 1`` calls side by side).
        metadata_key: Key of the decision summary in ``response_metadata``.
        on_decision: Called with every whole :class:`~ra_guard.decision.Decision`
            this middleware makes (tool turns passed through included).

    Both ``wrap_model_call`` (``agent.invoke``) and ``awrap_model_call``
    (``agent.ainvoke``/``astream``) are implemented; the sync one runs the
    model calls in worker threads.

    Order with other middleware (the first in ``middleware=[...]`` is the outermost):

    - ``ModelRetryMiddleware`` **outside** ra-guard (listed before it) retries
      the whole decision when every candidate call fails; **inside** (listed
      after) it retries each candidate call, and a call it turns into an error
      message (``on_failure="continue"``) is left out of the judging (noted on
      the decision); if all are, the first error message passes through unjudged
      (in a retry round: the best answer so far stands).
    - ``ModelCallLimitMiddleware`` counts agent model turns, whatever the order:
      ``run_limit=2`` allows 2 turns, that is ``2 * n`` model calls (plus the
      judge's). Bound the calls of a turn with the guard's ``Budget(max_candidates=...)``.

    Example:
        >>> from ra_guard import Guard
        >>> from ra_guard.testing import FunctionJudge
        >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {k: 3 for k in r.responses}))
        >>> RaGuardMiddleware(guard, n=2).name
        'RaGuardMiddleware'
    """

    def __init__(
        self,
        guard: Guard,
        *,
        n: int | None = None,
        judge_tool_calls: bool = False,
        forward_temperature: bool = True,
        probe_first: bool = False,
        metadata_key: str = DECISION_KEY,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        super().__init__()
        self.guard = guard
        self.n = n
        self.judge_tool_calls = judge_tool_calls
        self.forward_temperature = forward_temperature
        self.probe_first = probe_first
        self.metadata_key = metadata_key
        self.on_decision = on_decision

    async def _decide(self, request: ModelRequest[Any], call: Call) -> tuple[ModelResponse[Any], Decision, bool]:
        """The chosen response, the decision, and whether the response passed through unjudged."""
        system = [request.system_message] if request.system_message is not None else []
        messages = to_chat_messages([*system, *request.messages])
        sampler = AgentModelSampler(
            request,
            call,
            prefix=len(messages),
            pass_tool_turns=not self.judge_tool_calls,
            forward_temperature=self.forward_temperature,
            probe_first=self.probe_first,
        )
        # The guard's own strategy, wrapped for this call so that a tool turn ends before the judge.
        strategy = AgentTurn(self.guard.strategy, sampler)

        async def decide() -> Decision:
            tagged(NOSTREAM_TAG, GUARD_TAG)  # a task of its own: judge calls made with LangChain stay unstreamed
            return await self.guard.arun(messages, sampler=sampler, n=self.n, strategy=strategy)

        decision = await asyncio.ensure_future(decide())
        if sampler.passed_through is not None:
            return sampler.passed_through, decision, True
        chosen = sampler.responses[decision.chosen.response_id or ""]
        return with_summary(chosen, decision, key=self.metadata_key), decision, False

    def _publish(self, request: ModelRequest[Any], decision: Decision) -> None:
        """The summary to ``stream_mode="custom"``, the whole decision to the ``on_decision`` hook."""
        # A request built outside a running agent (middleware tests, direct calls) has no runtime.
        writer = getattr(request.runtime, "stream_writer", None)
        if writer is not None:
            writer({DECISION_EVENT: DecisionSummary.of(decision).model_dump(mode="json")})
        if self.on_decision is not None:
            self.on_decision(decision)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """Sample, judge and choose around a synchronous model call (model calls in worker threads)."""

        async def call(req: ModelRequest[Any]) -> ModelResponse[Any]:
            return await call_in_thread(handler, req)

        response, decision, passed_through = run_sync(self._decide(request, call))
        if not passed_through:
            self._publish(request, decision)
            if _has_parent_run():
                dispatch_custom_event(DECISION_EVENT, decision.model_dump(mode="json"))
        elif self.on_decision is not None:
            self.on_decision(decision)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """Sample, judge and choose around an asynchronous model call."""
        response, decision, passed_through = await self._decide(request, handler)
        if not passed_through:
            self._publish(request, decision)
            if _has_parent_run():
                await adispatch_custom_event(DECISION_EVENT, decision.model_dump(mode="json"))
        elif self.on_decision is not None:
            self.on_decision(decision)
        return response
