"""A pydantic-ai ``WrapperModel``: each final answer chosen best-of-N (or retried) by a guard.

:class:`GuardedModel` wraps any pydantic-ai model (``OpenAIChatModel``, an
``'openai:gpt-4o-mini'`` string, ...). On every request of a run it lets the
guard's strategy call the wrapped model: ``BestOfN`` makes ``n`` requests side
by side, ``RetryWithFeedback`` one, then again with the judge's critique while
the answer falls short. The judge scores the answers against the policies and
the winning ``ModelResponse`` goes back to the agent, with the decision's
summary in ``response.metadata["ra_guard"]`` (kept in the history, never sent
to a model). Structured answers (an output tool's arguments, or JSON text) are
judged as their JSON.

A response that calls a function tool is not a final answer: by default, when
any answer of the first round calls one, the first such answer is returned as
it is, unjudged (the ``n`` requests are still paid; ``judge_tool_calls=True``
judges those turns too). The winner's ``usage`` adds up every request made for
it, so the run's usage counts what was spent (judge tokens aside).

Streaming (``agent.run_stream``, ``run_stream_events``) makes the decision
first, then streams the chosen response's parts.

Example:
    >>> from pydantic_ai import Agent  # doctest: +SKIP
    >>> agent = Agent(GuardedModel("openai:gpt-4o-mini", guard, n=4))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from pydantic_ai import RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import (
    CompletedStreamedResponse,
    KnownModelName,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from ra_guard import ChatMessage, Decision, Guard, Sample, Usage
from ra_guard.decision import decision_summary
from ra_guard.integrations._model_calls import ModelCallSampler, ToolTurn

from ._convert import conversation, critique_turns, function_tool_calls, response_text
from .validator import METADATA_KEY

if TYPE_CHECKING:  # batch requests exist in recent pydantic-ai only
    from pydantic_ai.models.batch import BatchRequest, EncodedBatchRequest

__all__ = ["GuardedModel"]

logger = logging.getLogger("ra_guard")


class _RequestSampler(ModelCallSampler[ModelResponse]):
    """Samples by sending the request to the wrapped model concurrently, keeping every response by id.

    Retry-with-feedback's critique turns are appended to the messages. A
    request that fails is dropped (logged) while one answers; if none does,
    the model's own error is raised, as the run would raise it without the guard.
    """

    def __init__(
        self,
        model: Model,
        messages: list[ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
        *,
        prefix: int,
        pass_tool_turns: bool,
        forward_temperature: bool,
    ) -> None:
        # ``model`` is the model's name (the Sampler contract); the pydantic-ai model is ``wrapped_model``.
        self.wrapped_model = model
        self.model = model.model_name
        self.messages = messages
        self.settings = settings
        self.parameters = parameters
        self.prefix = prefix
        self.pass_tool_turns = pass_tool_turns
        self.forward_temperature = forward_temperature
        self.responses: dict[str, ModelResponse] = {}
        self.name = f"pydantic-ai:{model.model_name}"

    def _request(
        self, messages: Sequence[ChatMessage], temperature: float | None
    ) -> tuple[bool, Callable[[], Awaitable[ModelResponse]]]:
        """Whether this is a retry (critique turns appended), and the request to make for one answer."""
        extra = list(messages[self.prefix :])
        history = [*self.messages, *critique_turns(extra)] if extra else self.messages
        settings = self.settings
        if temperature is not None and self.forward_temperature:
            settings = ModelSettings(**{**(settings or {}), "temperature": temperature})
        return bool(extra), lambda: self.wrapped_model.request(history, settings, self.parameters)

    def _keep(self, response: ModelResponse) -> Sample:
        key = uuid.uuid4().hex
        self.responses[key] = response  # kept before any tool-turn check: a tool turn's usage counts every request
        return Sample(
            text=response_text(response, self.parameters),
            finish_reason=response.finish_reason,
            usage=Usage(prompt_tokens=response.usage.input_tokens, completion_tokens=response.usage.output_tokens),
            model=response.model_name,
            response_id=key,
        )

    def _tool_turn(self, response: ModelResponse, retry: bool) -> bool:
        return self.pass_tool_turns and not retry and bool(function_tool_calls(response, self.parameters))


class GuardedModel(WrapperModel):
    """Wrap a pydantic-ai model so that each answer is chosen by a :class:`~ra_guard.Guard`.

    Args:
        wrapped: The model (a ``Model`` or a name such as ``"openai:gpt-4o-mini"``).
        guard: Policies, judge and strategy (``BestOfN``: ``n`` answers side by
            side; ``RetryWithFeedback``: retry with the judge's critique).
        n: Answers per round, overriding the strategy's ``n``.
        judge_tool_calls: Judge turns that call function tools too (default:
            the first such answer goes back to the agent unjudged).
        forward_temperature: Send the strategy's temperature as the
            ``temperature`` setting, so that answers differ (turn it off for
            models that refuse one, such as OpenAI's reasoning models).
        on_decision: Called with every :class:`~ra_guard.Decision` (the full one).

    When every answer is vetoed by a hard policy,
    :class:`~ra_guard.AllCandidatesRejected` leaves the run (or, with
    ``Guard(on_all_rejected="return_best")``, the best vetoed answer goes on).

    Example:
        >>> from ra_guard import Guard
        >>> from ra_guard.testing import FunctionJudge
        >>> from pydantic_ai.models.test import TestModel
        >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {k: 4 for k in r.responses}))
        >>> GuardedModel(TestModel(), guard, n=2).model_name
        'test'
    """

    def __init__(
        self,
        wrapped: Model | KnownModelName | str,
        guard: Guard,
        *,
        n: int | None = None,
        judge_tool_calls: bool = False,
        forward_temperature: bool = True,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.guard = guard
        self.n = n
        self.judge_tool_calls = judge_tool_calls
        self.forward_temperature = forward_temperature
        self.on_decision = on_decision

    def __repr__(self) -> str:
        return f"GuardedModel({self.wrapped!r}, {self.guard!r}, n={self.n})"

    async def _decide(
        self,
        messages: list[ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> ModelResponse:
        chat = conversation(messages)
        sampler = _RequestSampler(
            self.wrapped,
            messages,
            settings,
            parameters,
            prefix=len(chat),
            pass_tool_turns=not self.judge_tool_calls,
            forward_temperature=self.forward_temperature,
        )
        try:
            decision = await self.guard.arun(chat, sampler=sampler, n=self.n)
        except ToolTurn as turn:
            return self._with_usage(cast(ModelResponse, turn.answer), sampler.responses.values())
        if self.on_decision is not None:
            self.on_decision(decision)
        chosen = sampler.responses[decision.chosen.response_id or ""]
        chosen = replace(chosen, metadata={**(chosen.metadata or {}), METADATA_KEY: decision_summary(decision)})
        return self._with_usage(chosen, sampler.responses.values())

    @staticmethod
    def _with_usage(response: ModelResponse, spent: Any) -> ModelResponse:
        responses = list(spent)
        usage = responses[0].usage
        for other in responses[1:]:
            usage = usage + other.usage
        return replace(response, usage=usage)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Send the request as the guard's strategy asks and return the judged best response."""
        return await self._decide(messages, model_settings, model_request_parameters)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        """Decide first, then stream the chosen response's parts."""
        response = await self._decide(messages, model_settings, model_request_parameters)
        yield CompletedStreamedResponse(response, model_request_parameters=model_request_parameters, replay_events=True)

    async def batch_encode(self, request: BatchRequest) -> EncodedBatchRequest:
        """Refused: a provider's batch job answers each request once, later, with nothing to choose among."""
        raise NotImplementedError(
            f"`{type(self).__name__}` does not support batch requests: a batch job returns one answer per request, "
            "so there is nothing to judge best-of-N; send the requests through the agent instead"
        )
