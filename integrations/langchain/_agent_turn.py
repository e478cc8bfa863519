"""One model call of a LangChain agent, decided by a guard: candidates come from the agent's own handler.

:class:`AgentModelSampler` samples by running the agent's model call (the
``handler`` of ``wrap_model_call``) ``n`` times side by side, so inner
middleware, tool binding and structured output all apply to every candidate.
:class:`AgentTurn` wraps the guard's strategy for one call: where the first
round turns out to be a tool-calling turn (not a final answer), it stops before
the judge. The decision is then made, traced and counted like any other (the
sampling span carries the N calls' tokens) and notes why nothing was judged;
nothing is raised through the guard, so no trace shows an error that did not happen.

Candidate calls run with LangGraph's ``nostream`` tag and the ``ra_guard`` and
``ra_guard:candidate`` tags: their tokens stay out of ``stream_mode="messages"``
(LangGraph emits the winner when the model node returns), and ``astream_events``
consumers can drop them with ``exclude_tags=["ra_guard"]``.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}
    >>> calls_tools(ModelResponse(result=[AIMessage("", tool_calls=[call])]))
    True
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from langchain.agents.middleware import ModelRequest, ModelResponse
from langchain_core.messages import AIMessage
from langchain_core.runnables.config import ensure_config, var_child_runnable_config
from langgraph.errors import GraphBubbleUp
from pydantic import BaseModel

from ra_guard.samplers.base import Sampler
from ra_guard.strategies import Strategy
from ra_guard.types import ChatMessage, Messages, Sample

from ._calls import CANDIDATE_TAG, GUARD_TAG, NOSTREAM_TAG
from ._convert import from_chat_messages, message_text, usage_of
from .sampler import accepts_temperature, model_name_of, report_target

if TYPE_CHECKING:
    from ra_guard.engine import DecisionRun

__all__ = ["AgentModelSampler", "AgentTurn", "calls_tools", "judged_text", "made_by_middleware", "tagged"]

logger = logging.getLogger("ra_guard")

Call = Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]


def tagged(*tags: str) -> None:
    """Add ``tags`` to the current LangChain run config (this task's copy of the context only).

    Runnables invoked afterwards without a config of their own (the agent's
    model call) inherit them, and with them the parent's callbacks.
    """
    config = ensure_config()
    known = list(config.get("tags") or [])
    config["tags"] = known + [t for t in tags if t not in known]
    var_child_runnable_config.set(config)


def final_message(response: ModelResponse[Any]) -> AIMessage | None:
    """The AI message of a model response (a structured-output turn adds a tool message after it)."""
    return next((m for m in response.result if isinstance(m, AIMessage)), None)


def judged_text(response: ModelResponse[Any]) -> str:
    """What the judge reads: the structured response as JSON where there is one, else the message."""
    structured = response.structured_response
    if isinstance(structured, BaseModel):
        return structured.model_dump_json()
    if structured is not None:
        try:
            return json.dumps(structured, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return str(structured)
    message = final_message(response)
    return message_text(message) if message is not None else ""


def calls_tools(response: ModelResponse[Any]) -> bool:
    """Whether the agent runs tools next: tool calls, and no structured answer parsed from them.

    A ``ToolStrategy`` structured answer is a tool call too, but the agent
    parsed it into ``structured_response``: that is a final answer.
    """
    message = final_message(response)
    return message is not None and bool(message.tool_calls) and response.structured_response is None


def made_by_middleware(response: ModelResponse[Any]) -> bool:
    """Whether a response was written by middleware rather than returned by a model.

    ``ModelRetryMiddleware(on_failure="continue")`` turns a failed call into an
    ``AIMessage`` holding the error: no id, no provider metadata, no usage. A
    chat model's reply always has an id (the provider's, or LangChain's run id).
    """
    message = final_message(response)
    return message is not None and message.id is None and not message.response_metadata and not message.usage_metadata


class AgentModelSampler(Sampler):
    """Samples by running the agent's model call concurrently; keeps every response whole, by id.

    Retry-with-feedback appends critique turns to the conversation; they are
    added to the request's messages. A call that raises, or that middleware
    turned into an error message, is left out while another answers (a note on
    the decision and a WARNING say so); where all raise, the model's own error
    is raised, as the agent would without the guard (in a retry round, the
    round adds no candidate instead). Where all came back as
    error messages, the first round passes the first one on unjudged, and a
    retry round adds no candidate (the best answer so far stands).

    Args:
        request: The agent's model request.
        call: Runs one model call (the handler, or the handler in a worker thread).
        prefix: Messages of the conversation the guard was given (later ones are critique turns).
        pass_tool_turns: Hand a first round that calls tools back unjudged.
        forward_temperature: Send the strategy's temperature as a model setting
            (never to models that refuse one, see :func:`accepts_temperature`).
        probe_first: Call the model once before the others, so that a tool turn costs one call.
    """

    name = "langchain-agent-model"

    def __init__(
        self,
        request: ModelRequest[Any],
        call: Call,
        *,
        prefix: int,
        pass_tool_turns: bool,
        forward_temperature: bool,
        probe_first: bool,
    ) -> None:
        self.request = request
        self.call = call
        self.prefix = prefix
        self.pass_tool_turns = pass_tool_turns
        self.forward_temperature = forward_temperature
        self.probe_first = probe_first
        self.model = model_name_of(request.model)
        self.responses: dict[str, ModelResponse[Any]] = {}
        #: The response handed back unjudged (a tool turn, or only error messages), once known.
        self.passed_through: ModelResponse[Any] | None = None
        #: Things the decision should say (calls left out, a temperature withheld).
        self.notes: list[str] = []
        self._rounds = 0

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _request_for(self, messages: Messages, temperature: float | None) -> ModelRequest[Any]:
        extra: list[ChatMessage] = list(messages[self.prefix :])
        request = self.request
        overrides: dict[str, Any] = {}
        if extra:
            overrides["messages"] = [*request.messages, *from_chat_messages(extra)]
        if temperature is not None and self.forward_temperature:
            if accepts_temperature(self.model):
                overrides["model_settings"] = {**request.model_settings, "temperature": temperature}
            else:
                self._note(f"temperature {temperature:g} not sent: {self.model} takes only its default")
        return request.override(**overrides) if overrides else request

    async def _candidate(self, request: ModelRequest[Any]) -> ModelResponse[Any]:
        tagged(NOSTREAM_TAG, GUARD_TAG, CANDIDATE_TAG)  # runs as its own task: the tags stay on this call
        return await self.call(request)

    async def _calls(self, request: ModelRequest[Any], n: int) -> list[ModelResponse[Any] | BaseException]:
        return list(await asyncio.gather(*(self._candidate(request) for _ in range(n)), return_exceptions=True))

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        report_target(self.name, self.request.model)  # in the call: one name serves every agent's model
        self._rounds += 1
        request = self._request_for(messages, temperature)
        first_round = self.pass_tool_turns and self._rounds == 1
        outcomes: list[ModelResponse[Any] | BaseException] = []
        if first_round and self.probe_first and n > 1:
            outcomes = await self._calls(request, 1)
            probe = outcomes[0]
            if isinstance(probe, BaseException) or not calls_tools(probe):
                outcomes += await self._calls(request, n - 1)
        else:
            outcomes = await self._calls(request, n)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        responses = [o for o in outcomes if not isinstance(o, BaseException)]
        for error in errors:
            # Cancellation, and LangGraph's interrupts and commands (human in the loop inside
            # ra-guard), are not failed model calls: they go up to the agent whatever the others did.
            if not isinstance(error, Exception) or isinstance(error, GraphBubbleUp):
                raise error
        if not responses and self._rounds == 1:
            raise errors[0]  # the model's own error, for retry and fallback middleware around this one
        if errors:
            kinds = ", ".join(sorted({type(e).__name__ for e in errors}))
            self._left_out(f"{len(errors)} of {len(outcomes)} model calls raised ({kinds}) and were left out")
        answers = [r for r in responses if not made_by_middleware(r)]
        if len(answers) < len(responses):
            self._left_out(
                f"{len(responses) - len(answers)} of {len(outcomes)} model calls came back as middleware error "
                "messages (ModelRetryMiddleware inside ra-guard) and were left out"
            )
        if not answers and self._rounds > 1:
            return []  # a retry round brought nothing: the best answer of the earlier rounds stands
        if not answers:
            # Every call failed and inner middleware chose to answer with an error message: pass it on.
            self.passed_through = responses[0]
            self._note("every model call came back as a middleware error message: the first passed through unjudged")
            answers = responses[:1]
        elif first_round:
            tool_turns = [r for r in answers if calls_tools(r)]
            if tool_turns:
                self.passed_through = tool_turns[0]
                self._note(
                    f"tool-calling turn: passed through unjudged ({len(answers)} model call(s), the agent runs "
                    "the tools next)"
                )
                answers = [tool_turns[0], *(r for r in answers if r is not tool_turns[0])]  # it is candidate 0
        return [self._keep(response) for response in answers]

    def _left_out(self, text: str) -> None:
        logger.warning("ra-guard agent middleware: %s", text)
        self._note(text)

    def _keep(self, response: ModelResponse[Any]) -> Sample:
        key = uuid.uuid4().hex
        self.responses[key] = response
        message = final_message(response)
        finish = (message.response_metadata or {}).get("finish_reason") if message is not None else None
        return Sample(
            text=judged_text(response),
            finish_reason=finish if isinstance(finish, str) else None,
            usage=usage_of(message),
            model=self.model,
            response_id=key,
        )


class _PassThrough(Exception):
    """Control flow inside :class:`AgentTurn` only: the round is not judged."""


class _RunView:
    """A :class:`DecisionRun` as the wrapped strategy sees it: sampling stops at a pass-through round."""

    def __init__(self, run: DecisionRun, sampler: AgentModelSampler) -> None:
        self._run = run
        self._sampler = sampler

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)

    async def sample(self, messages: Messages, *, n: int, temperature: float | None) -> list[int]:
        new = await self._run.sample(messages, n=n, temperature=temperature)
        if self._sampler.passed_through is not None:
            raise _PassThrough
        return new


class AgentTurn(Strategy):
    """The guard's strategy for one agent model call; a round passed through ends it before the judge.

    The run's sampling (span, tokens, budgets) is unchanged; the sampler's
    notes (tool turn, calls left out) go on the decision.

    Args:
        inner: The guard's own strategy.
        sampler: The agent model sampler of this call.

    Example:
        >>> from ra_guard.strategies import BestOfN
        >>> AgentTurn(BestOfN(n=3), sampler=None).name  # type: ignore[arg-type]
        'best_of_n'
    """

    def __init__(self, inner: Strategy, sampler: AgentModelSampler) -> None:
        self.inner = inner
        self.sampler = sampler
        self.name = inner.name
        self.n = inner.n
        self.temperature = inner.temperature

    async def decide(self, run: DecisionRun) -> None:
        try:
            await self.inner.decide(cast("DecisionRun", _RunView(run, self.sampler)))
        except _PassThrough:
            pass
        finally:
            for note in self.sampler.notes:
                run.note(note)
