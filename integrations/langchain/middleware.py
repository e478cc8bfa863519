"""Agent middleware: best-of-N and retry-with-feedback around each model call of a LangChain agent.

:class:`RaGuardMiddleware` plugs into ``create_agent(model, tools, middleware=[...])``.
On every model call it asks the guard for a decision: the guard's strategy
calls the model (``BestOfN``: N calls side by side; ``RetryWithFeedback``:
one call, then again with the judge's critique while the answer falls below
``min_score``), judges the answers against the policies, and the winning
``AIMessage`` goes back to the agent with the decision in
``response_metadata["ra_guard"]`` (a JSON-able dict, ``Decision.model_validate``
reads it back).

Turns where the model calls tools are not final answers: by default, when any
candidate of the first round calls a tool, the first such candidate is returned
as it is, unjudged, and the agent runs the tool. Pass ``judge_tool_calls=True``
to judge those turns as well (tool calls are shown to the judge as text), or
``probe_first=True`` to spend one model call, not ``n``, on tool-calling turns.

Example:
    >>> from langchain.agents import create_agent  # doctest: +SKIP
    >>> guard = Guard(policies=["concise", "professional-tone"], judge="vllm:http://gpu:8000/v1")  # doctest: +SKIP
    >>> agent = create_agent(model, tools=[get_weather], middleware=[RaGuardMiddleware(guard, n=4)])  # doctest: +SKIP
    >>> reply = agent.invoke({"messages": [{"role": "user", "content": "Weather in Paris?"}]})  # doctest: +SKIP
    >>> reply["messages"][-1].response_metadata["ra_guard"]["why"]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain.agents.middleware.types import ExtendedModelResponse
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel

from ra_guard._sync import run_sync
from ra_guard.decision import Decision
from ra_guard.guard import Guard
from ra_guard.samplers.base import Sampler
from ra_guard.types import ChatMessage, Messages, Sample

from ._convert import from_chat_messages, message_text, to_chat_messages, usage_of

__all__ = ["DECISION_KEY", "RaGuardMiddleware"]

#: Key of the decision in the chosen message's ``response_metadata``.
DECISION_KEY = "ra_guard"

_Call = Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]


class _ToolTurn(Exception):
    """Raised by the sampler to hand a tool-calling turn back unjudged."""

    def __init__(self, response: ModelResponse[Any]) -> None:
        super().__init__("tool turn")
        self.response = response


def _final_message(response: ModelResponse[Any]) -> AIMessage | None:
    return next((m for m in response.result if isinstance(m, AIMessage)), None)


def _judged_text(response: ModelResponse[Any]) -> str:
    """What the judge reads: the structured response where there is one, else the message."""
    structured = response.structured_response
    if isinstance(structured, BaseModel):
        return structured.model_dump_json()
    if structured is not None:
        try:
            return json.dumps(structured, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return str(structured)
    message = _final_message(response)
    return message_text(message) if message is not None else ""


class _ModelCallSampler(Sampler):
    """Samples by running the agent's model call (the ``handler``) concurrently.

    Retry-with-feedback appends critique turns to the conversation; they are
    added to the request's messages for the retry. Calls that fail are dropped
    while at least one succeeds. Every response is kept by id
    so that the winner goes back to the agent whole (tool calls, metadata).
    """

    def __init__(
        self,
        request: ModelRequest[Any],
        call: _Call,
        *,
        prefix: int,
        pass_tool_turns: bool,
        temperature: bool,
        probe_first: bool,
    ):
        self.request = request
        self.probe_first = probe_first
        self.call = call
        self.prefix = prefix
        self.pass_tool_turns = pass_tool_turns
        self.forward_temperature = temperature
        self.responses: dict[str, ModelResponse[Any]] = {}
        self.name = "langchain-agent-model"

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        extra: list[ChatMessage] = list(messages[self.prefix :])
        request = self.request
        overrides: dict[str, Any] = {}
        if extra:
            overrides["messages"] = [*request.messages, *from_chat_messages(extra)]
        if temperature is not None and self.forward_temperature:
            overrides["model_settings"] = {**request.model_settings, "temperature": temperature}
        if overrides:
            request = request.override(**overrides)
        first_round = self.pass_tool_turns and not extra
        probed: list[ModelResponse[Any]] = []
        if first_round and self.probe_first and n > 1:
            probed = [await self.call(request)]
            self._pass_tool_turn(probed)
            n -= 1
        outcomes = await asyncio.gather(*(self.call(request) for _ in range(n)), return_exceptions=True)
        responses = probed + [o for o in outcomes if not isinstance(o, BaseException)]
        if not responses:
            # Every call failed: raise the model's own error, as the agent would without the guard
            # (so that retry and fallback middleware around this one still see it).
            raise next(o for o in outcomes if isinstance(o, BaseException))
        if first_round:
            self._pass_tool_turn(responses)
        samples = []
        for response in responses:
            key = uuid.uuid4().hex
            self.responses[key] = response
            message = _final_message(response)
            samples.append(
                Sample(
                    text=_judged_text(response),
                    finish_reason=(message.response_metadata or {}).get("finish_reason") if message else None,
                    usage=usage_of(message),
                    response_id=key,
                )
            )
        return samples

    @staticmethod
    def _pass_tool_turn(responses: list[ModelResponse[Any]]) -> None:
        for response in responses:
            message = _final_message(response)
            if message is not None and message.tool_calls:
                raise _ToolTurn(response)


def with_decision(response: ModelResponse[Any], decision: Decision, *, key: str = DECISION_KEY) -> ModelResponse[Any]:
    """``response`` with ``decision`` (as a JSON-able dict) in its AI message's ``response_metadata``."""
    message = _final_message(response)
    if message is None:
        return response
    metadata = {**(message.response_metadata or {}), key: decision.model_dump(mode="json")}
    stamped = message.model_copy(update={"response_metadata": metadata})
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
            model setting, so that candidates differ.
        probe_first: Call the model once before the others: a turn that calls
            tools then costs one call instead of ``n``, and a final answer costs
            a second round trip (the probe, then ``n - 1`` calls side by side).
        metadata_key: Key of the decision in ``response_metadata``.

    Both ``wrap_model_call`` (``agent.invoke``) and ``awrap_model_call``
    (``agent.ainvoke``/``astream``) are implemented; the sync one runs the
    model calls in worker threads.

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
    ) -> None:
        super().__init__()
        self.guard = guard
        self.n = n
        self.judge_tool_calls = judge_tool_calls
        self.forward_temperature = forward_temperature
        self.probe_first = probe_first
        self.metadata_key = metadata_key

    async def _decide(self, request: ModelRequest[Any], call: _Call) -> ModelResponse[Any]:
        system = [request.system_message] if request.system_message is not None else []
        messages = to_chat_messages([*system, *request.messages])
        sampler = _ModelCallSampler(
            request,
            call,
            prefix=len(messages),
            pass_tool_turns=not self.judge_tool_calls,
            temperature=self.forward_temperature,
            probe_first=self.probe_first,
        )
        try:
            decision = await self.guard.arun(messages, sampler=sampler, n=self.n)
        except _ToolTurn as turn:
            return turn.response
        chosen = sampler.responses[decision.chosen.response_id or ""]
        return with_decision(chosen, decision, key=self.metadata_key)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """Sample, judge and choose around a synchronous model call."""

        async def call(req: ModelRequest[Any]) -> ModelResponse[Any]:
            return await asyncio.to_thread(handler, req)

        return run_sync(self._decide(request, call))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """Sample, judge and choose around an asynchronous model call."""
        return await self._decide(request, handler)
