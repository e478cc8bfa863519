"""A ``Model`` wrapper for the OpenAI Agents SDK: each final answer chosen best-of-N (or retried) by a guard.

:class:`GuardedModel` wraps any Agents SDK ``Model`` (``OpenAIResponsesModel``,
``OpenAIChatCompletionsModel``, a LiteLLM model...). On every model call of a
run it lets the guard's strategy call the wrapped model: ``BestOfN`` makes
``n`` calls side by side, ``RetryWithFeedback`` calls once and again with the
judge's critique appended to the input while the answer falls short. The judge
scores the answers against the policies and the winning ``ModelResponse`` goes
back to the runner, which carries on as usual (tool calls, output guardrails,
``output_type`` validation).

Turns where the model calls tools or hands off are not final answers: by
default, when any answer of the first round asks for a tool, the first such
answer is returned as it is, unjudged (the ``n`` calls are still paid; use
``judge_tool_calls=True`` to judge those turns too).

Streaming (``Runner.run_streamed``) streams each candidate from the wrapped
model off the user's stream, then replays the winner's own events: the user
sees one answer's tokens, the chosen one's. The winner's usage is that of
every call made for it, so the run's usage counts what was spent (judge
tokens aside: they are in the decision).

Example:
    >>> from agents import Agent, OpenAIChatCompletionsModel  # doctest: +SKIP
    >>> model = GuardedModel(OpenAIChatCompletionsModel("gpt-4o-mini", client), guard, n=4)  # doctest: +SKIP
    >>> agent = Agent(name="support", instructions="Be helpful.", model=model)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from agents import (
    AgentOutputSchemaBase,
    Handoff,
    ItemHelpers,
    Model,
    ModelBehaviorError,
    ModelResponse,
    ModelSettings,
    ModelTracing,
    Tool,
    TResponseInputItem,
    Usage,
    custom_span,
)
from agents.items import TResponseStreamEvent
from agents.models.multi_provider import MultiProvider
from openai.types.responses import ResponseCompletedEvent, ResponseOutputItemDoneEvent, ResponseUsage
from openai.types.responses.response_prompt_param import ResponsePromptParam

from ra_guard import ChatMessage, ConfigurationError, Decision, Guard, Sample
from ra_guard import Usage as RaGuardUsage
from ra_guard.decision import decision_summary
from ra_guard.integrations._model_calls import ModelCallSampler, ToolTurn

from ._convert import as_input_items, conversation, response_text, tool_calls_of

if TYPE_CHECKING:
    from agents.retry import ModelRetryAdvice, ModelRetryAdviceRequest

__all__ = ["GuardedModel"]

logger = logging.getLogger("ra_guard")


@dataclass
class _Answer:
    """One call of the wrapped model: its response and, when streamed, the events to replay."""

    response: ModelResponse
    events: list[TResponseStreamEvent] | None = None


_Call = Callable[["str | list[TResponseInputItem]", ModelSettings], Awaitable[_Answer]]
_Call0 = Callable[[], Awaitable[_Answer]]


class _ModelCallSampler(ModelCallSampler[_Answer]):
    """Samples by calling the wrapped model concurrently, keeping every answer by id.

    Retry-with-feedback appends the critique turns to the conversation; they
    are appended to the model's input items for the retry. A call that fails is
    dropped (logged) while at least one answers; if none does, the model's own
    error is raised, as the run would raise it without the guard.
    """

    def __init__(
        self,
        call: _Call,
        items: str | list[TResponseInputItem],
        settings: ModelSettings,
        *,
        prefix: int,
        pass_tool_turns: bool,
        forward_temperature: bool,
    ) -> None:
        self.call = call
        self.items = items
        self.settings = settings
        self.prefix = prefix
        self.pass_tool_turns = pass_tool_turns
        self.forward_temperature = forward_temperature
        self.answers: dict[str, _Answer] = {}
        self.name = "openai-agents-model"

    def _settings_for(self, temperature: float | None) -> ModelSettings:
        # Reasoning models (settings with `reasoning`) refuse a temperature other than their default.
        if temperature is None or not self.forward_temperature or self.settings.reasoning is not None:
            return self.settings
        return self.settings.resolve(ModelSettings(temperature=temperature))

    def _request(self, messages: Sequence[ChatMessage], temperature: float | None) -> tuple[bool, _Call0]:
        """Whether this is a retry (critique turns appended), and the call to make for one answer."""
        extra = list(messages[self.prefix :])
        items = self.items
        if extra:
            items = [*ItemHelpers.input_to_new_input_list(self.items), *as_input_items(extra)]
        settings = self._settings_for(temperature)
        return bool(extra), lambda: self.call(items, settings)

    def _keep(self, answer: _Answer) -> Sample:
        key = uuid.uuid4().hex
        self.answers[key] = answer  # kept before any tool-turn check: a tool turn's usage counts every call
        usage = answer.response.usage
        return Sample(
            text=response_text(answer.response),
            usage=RaGuardUsage(prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens),
            response_id=key,
        )

    def _tool_turn(self, answer: _Answer, retry: bool) -> bool:
        return self.pass_tool_turns and not retry and bool(tool_calls_of(answer.response))


def _spent(answers: Sequence[_Answer]) -> Usage:
    total = Usage()
    for answer in answers:
        total.add(answer.response.usage)
    return total


def _response_usage(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.input_tokens,
        input_tokens_details=usage.input_tokens_details,
        output_tokens=usage.output_tokens,
        output_tokens_details=usage.output_tokens_details,
        total_tokens=usage.total_tokens,
    )


async def _collect_stream(events: AsyncIterator[TResponseStreamEvent]) -> _Answer:
    """Drain one streamed call; its response is what the runner would build from the completed event."""
    collected: list[TResponseStreamEvent] = []
    done_items: list[Any] = []
    completed: ResponseCompletedEvent | None = None
    async for event in events:
        collected.append(event)
        if isinstance(event, ResponseOutputItemDoneEvent):
            done_items.append(event.item)
        elif isinstance(event, ResponseCompletedEvent):
            completed = event
    if completed is None:
        # What the runner itself raises for such a stream.
        raise ModelBehaviorError("the wrapped model's stream ended without a response.completed event")
    final = completed.response
    usage = Usage(requests=1)
    if final.usage is not None:
        usage = Usage(
            requests=1,
            input_tokens=final.usage.input_tokens,
            input_tokens_details=final.usage.input_tokens_details,
            output_tokens=final.usage.output_tokens,
            output_tokens_details=final.usage.output_tokens_details,
            total_tokens=final.usage.total_tokens,
        )
    output = list(final.output) or done_items
    return _Answer(ModelResponse(output=output, usage=usage, response_id=final.id), collected)


class GuardedModel(Model):
    """Wrap an Agents SDK ``Model`` so that each answer is chosen by a :class:`~ra_guard.Guard`.

    Args:
        model: The model to call: any ``agents.Model``, or a name the SDK's
            default provider resolves (``"gpt-4o-mini"``: OpenAI's Responses API).
        guard: Policies, judge and strategy (``BestOfN``: ``n`` answers side by
            side; ``RetryWithFeedback``: retry with the judge's critique).
        n: Answers per round, overriding the strategy's ``n``.
        judge_tool_calls: Judge turns that call tools or hand off too (default:
            the first such answer goes back to the runner unjudged).
        forward_temperature: Send the strategy's temperature as the
            ``temperature`` model setting, so that answers differ (never to a
            call whose settings ask for ``reasoning``: those models refuse it).
        on_decision: Called with every :class:`~ra_guard.Decision` made (the full
            one, candidate texts included), e.g. to keep it for an audit.

    Every decision's summary (:func:`decision_summary`) is recorded as a
    custom span, ``ra-guard decision``, in the SDK's trace. When every answer is
    vetoed by a hard policy, :class:`~ra_guard.AllCandidatesRejected` leaves
    ``Runner.run`` (or, with ``Guard(on_all_rejected="return_best")``, the best
    vetoed answer goes on).

    Example:
        >>> from agents import Agent  # doctest: +SKIP
        >>> agent = Agent(name="a", model=GuardedModel(inner_model, guard, n=4))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Model | str,
        guard: Guard,
        *,
        n: int | None = None,
        judge_tool_calls: bool = False,
        forward_temperature: bool = True,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        if isinstance(model, str):
            # What the SDK does with Agent(model="gpt-4o-mini"): its default provider (OPENAI_* settings).
            model = MultiProvider().get_model(model)
        if not isinstance(model, Model):
            raise ConfigurationError(
                f"GuardedModel wraps an agents.Model or a model name, got {type(model).__name__}; "
                "e.g. GuardedModel(OpenAIChatCompletionsModel('gpt-4o-mini', AsyncOpenAI()), guard)"
            )
        self.model: Model = model
        self.guard = guard
        self.n = n
        self.judge_tool_calls = judge_tool_calls
        self.forward_temperature = forward_temperature
        self.on_decision = on_decision

    def __repr__(self) -> str:
        return f"GuardedModel({self.model!r}, {self.guard!r}, n={self.n})"

    async def _decide(
        self,
        system_instructions: str | None,
        items: str | list[TResponseInputItem],
        settings: ModelSettings,
        call: _Call,
        tracing: ModelTracing,
    ) -> tuple[_Answer, Usage]:
        messages = conversation(system_instructions, items)
        sampler = _ModelCallSampler(
            call,
            items,
            settings,
            prefix=len(messages),
            pass_tool_turns=not self.judge_tool_calls,
            forward_temperature=self.forward_temperature,
        )
        try:
            decision = await self.guard.arun(messages, sampler=sampler, n=self.n)
        except ToolTurn as turn:
            return cast(_Answer, turn.answer), _spent(list(sampler.answers.values()))
        with custom_span("ra-guard decision", data=decision_summary(decision), disabled=tracing.is_disabled()):
            pass
        if self.on_decision is not None:
            self.on_decision(decision)
        return sampler.answers[decision.chosen.response_id or ""], _spent(list(sampler.answers.values()))

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        """Call the wrapped model as the guard's strategy asks and return the judged best response."""

        async def call(items: str | list[TResponseInputItem], settings: ModelSettings) -> _Answer:
            response = await self.model.get_response(
                system_instructions,
                items,
                settings,
                tools,
                output_schema,
                handoffs,
                tracing,
                previous_response_id=previous_response_id,
                conversation_id=conversation_id,
                prompt=prompt,
            )
            return _Answer(response)

        answer, spent = await self._decide(system_instructions, input, model_settings, call, tracing)
        return replace(answer.response, usage=spent)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Stream every candidate off the user's stream, then replay the chosen one's events."""

        async def call(items: str | list[TResponseInputItem], settings: ModelSettings) -> _Answer:
            stream = self.model.stream_response(
                system_instructions,
                items,
                settings,
                tools,
                output_schema,
                handoffs,
                tracing,
                previous_response_id=previous_response_id,
                conversation_id=conversation_id,
                prompt=prompt,
            )
            return await _collect_stream(stream)

        answer, spent = await self._decide(system_instructions, input, model_settings, call, tracing)
        for event in answer.events or []:
            if isinstance(event, ResponseCompletedEvent):
                # The run's usage counts every call made for this answer, as get_response does.
                response = event.response.model_copy(update={"usage": _response_usage(spent)})
                event = event.model_copy(update={"response": response})
            yield event

    # The rest of the Model contract goes to the wrapped model.

    async def close(self) -> None:
        """Close the wrapped model (the guard belongs to the caller: close it yourself)."""
        await self.model.close()

    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.model._cleanup_on_run_end(owner)

    def get_retry_advice(self, request: ModelRetryAdviceRequest) -> ModelRetryAdvice | None:
        """The wrapped model's advice on retrying a failed request."""
        return self.model.get_retry_advice(request)
