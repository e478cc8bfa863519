"""A guarded LCEL runnable: best-of-N or retry-with-feedback around any chat model or chain.

``GuardedRunnable(chain, guard)`` behaves like ``chain``: same input, same
output type, ``invoke``/``ainvoke``/``batch``/``abatch``/``stream``/``astream``,
callbacks and ``RunnableConfig`` passed through to the inner calls. Each call
samples candidates by running ``chain`` (concurrently), judges them against
the guard's policies and returns the winner.

Where the chain starts with a prompt template (``prompt | model | parser``),
the formatted prompt is what the judge reads and retry-with-feedback appends
the critique to it before running the rest of the chain again. For other
runnables the input must be chat input (a string, messages, a prompt value)
for critique turns to be sent; otherwise retries simply resample.

Streaming: a guarded answer cannot be streamed before it is judged, so
``stream``/``astream`` buffer every candidate, judge them, then stream the
chosen answer (in word-sized chunks for text and messages, one chunk for
other outputs). Time to first token is the time of the whole decision.

The decision: a message output carries its compact summary in
``response_metadata["ra_guard"]`` (read it with :func:`summary_of`); any output
gets the whole decision with ``with_decision=True`` (the output becomes
``{"output": ..., "decision": Decision}``); callbacks receive the whole decision
as the custom event ``"ra_guard_decision"``.

Example:
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> from langchain_core.messages import AIMessage
    >>> from langchain_core.output_parsers import StrOutputParser
    >>> from langchain_core.prompts import ChatPromptTemplate
    >>> from ra_guard import Guard
    >>> from ra_guard.testing import FunctionJudge
    >>> model = GenericFakeChatModel(messages=iter([AIMessage("Paris, the capital of France."), AIMessage("Paris.")]))
    >>> chain = ChatPromptTemplate.from_template("Capital of {country}?") | model | StrOutputParser()
    >>> judge = FunctionJudge(lambda r: {k: 5 - len(t) / 10 for k, t in r.responses.items()})
    >>> guarded = GuardedRunnable(chain, Guard(policies=["concise"], judge=judge), n=2)
    >>> guarded.invoke({"country": "France"})
    'Paris.'
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import BasePromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSequence
from pydantic import BaseModel

from ra_guard._sync import run_sync
from ra_guard.decision import Decision
from ra_guard.guard import Guard
from ra_guard.samplers.base import Sampler
from ra_guard.types import ChatMessage, Messages, Sample

from ._calls import CANDIDATE_TAG, GUARD_TAG, NOSTREAM_TAG, with_tags
from ._convert import from_chat_messages, message_text, to_chat_messages, usage_of
from ._summary import stamp, summary_of
from .middleware import DECISION_EVENT

__all__ = ["DECISION_EVENT", "GuardedRunnable", "summary_of"]


def default_text_of(output: Any) -> str:
    """What the judge reads of an output: text, message text, or JSON.

    Example:
        >>> default_text_of({"answer": 42})
        '{"answer": 42}'
    """
    if isinstance(output, str):
        return output
    if isinstance(output, BaseMessage):
        return message_text(output)
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    try:
        return json.dumps(output, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(output)


def _as_messages(value: Any) -> list[BaseMessage] | None:
    """Chat input as messages, or ``None`` where ``value`` is not chat input."""
    if isinstance(value, str):
        return [HumanMessage(value)]
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, Sequence):
        try:
            return list(convert_to_messages(value))
        except (ValueError, TypeError, NotImplementedError):
            return None
    return None


def _split(runnable: Runnable[Any, Any]) -> tuple[BasePromptTemplate[Any] | None, Runnable[Any, Any]]:
    """``prompt | rest`` -> ``(prompt, rest)``; anything else -> ``(None, runnable)``."""
    if isinstance(runnable, RunnableSequence) and isinstance(runnable.first, BasePromptTemplate):
        steps = [*runnable.middle, runnable.last]
        rest: Runnable[Any, Any] = steps[0] if len(steps) == 1 else RunnableSequence(*steps)
        return runnable.first, rest
    return None, runnable


class _ChainSampler(Sampler):
    """Samples by running the chain ``n`` times; keeps outputs by id for the winner."""

    def __init__(
        self,
        body: Runnable[Any, Any],
        *,
        base: list[BaseMessage] | None,
        original_input: Any,
        prefix: int,
        config: RunnableConfig,
        text_of: Callable[[Any], str],
        sync: bool,
    ) -> None:
        self.body = body
        self.sync = sync
        self.base = base
        self.original_input = original_input
        self.prefix = prefix
        self.config = config
        self.text_of = text_of
        self.outputs: dict[str, Any] = {}
        self.name = f"langchain:{body.get_name()}"

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        extra: list[ChatMessage] = list(messages[self.prefix :])
        if self.base is not None:
            chain_input: Any = [*self.base, *from_chat_messages(extra)]
        else:
            chain_input = self.original_input  # not chat input: a retry resamples without the critique
        inputs = [chain_input] * n
        if self.sync:  # sync callers get the chain's sync clients, as LangChain's own sync path would
            outcomes = await asyncio.to_thread(self.body.batch, inputs, self.config, return_exceptions=True)
        else:
            outcomes = await self.body.abatch(inputs, self.config, return_exceptions=True)
        outputs = [o for o in outcomes if not isinstance(o, BaseException)]
        if not outputs:  # every run failed: raise the chain's own error, as the chain would
            raise next(o for o in outcomes if isinstance(o, BaseException))
        samples = []
        for output in outputs:
            key = uuid.uuid4().hex
            self.outputs[key] = output
            samples.append(Sample(text=self.text_of(output), usage=usage_of(output), response_id=key))
        return samples


class GuardedRunnable(Runnable[Any, Any]):
    """Any chat model or chain, guarded: candidates are sampled, judged, and the best returned.

    Args:
        runnable: A chat model, or a chain (``prompt | model | parser``).
        guard: Policies, judge and strategy.
        n: Candidates per round, overriding the strategy's ``n``.
        with_decision: Return ``{"output": ..., "decision": Decision}`` instead of the output.
        prompt_of: For inputs that are neither chat input nor behind a prompt
            template: what the judge reads as the prompt (default: the input as JSON).
        text_of: What the judge reads of an output (default: :func:`default_text_of`).

    Set the model's temperature above zero, or the candidates will be alike.

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> from ra_guard import Guard
        >>> from ra_guard.testing import FunctionJudge
        >>> model = GenericFakeChatModel(messages=iter([AIMessage("Hello there, friend!"), AIMessage("Hi.")]))
        >>> judge = FunctionJudge(lambda r: {k: 5 - len(t) / 10 for k, t in r.responses.items()})
        >>> reply = GuardedRunnable(model, Guard(policies=["concise"], judge=judge), n=2).invoke("Greet me")
        >>> reply.content, summary_of(reply).chosen_index
        ('Hi.', 1)
    """

    def __init__(
        self,
        runnable: Runnable[Any, Any],
        guard: Guard,
        *,
        n: int | None = None,
        with_decision: bool = False,
        prompt_of: Callable[[Any], str] | None = None,
        text_of: Callable[[Any], str] = default_text_of,
    ) -> None:
        self.runnable = runnable
        self.guard = guard
        self.n = n
        self.with_decision = with_decision
        self.prompt_of = prompt_of
        self.text_of = text_of
        self.name = f"Guarded{runnable.get_name()}"

    def get_input_schema(self, config: RunnableConfig | None = None) -> Any:
        """The wrapped runnable's input schema."""
        return self.runnable.get_input_schema(config)

    @property
    def InputType(self) -> Any:
        """The wrapped runnable's input type."""
        return self.runnable.InputType

    async def _decide(self, input: Any, config: RunnableConfig, *, sync: bool) -> tuple[Any, Decision]:
        """Sample, judge and choose; ``sync`` runs the chain's sync methods in worker threads."""
        prompt, body = _split(self.runnable)
        base: list[BaseMessage] | None
        if prompt is None:
            base = _as_messages(input)
        elif sync:
            base = (await asyncio.to_thread(prompt.invoke, input, config)).to_messages()
        else:
            base = (await prompt.ainvoke(input, config)).to_messages()
        if base is not None:
            messages: list[ChatMessage] = to_chat_messages(base)
        else:
            shown = self.prompt_of(input) if self.prompt_of else default_text_of(input)
            messages = [{"role": "user", "content": shown}]
        sampler = _ChainSampler(
            body if base is not None else self.runnable,
            base=base,
            original_input=input,
            prefix=len(messages),
            # Inside a LangGraph node, candidate tokens must not reach a ``messages`` stream.
            config=with_tags(config, NOSTREAM_TAG, GUARD_TAG, CANDIDATE_TAG),
            text_of=self.text_of,
            sync=sync,
        )
        decision = await self.guard.arun(messages, sampler=sampler, n=self.n)
        return sampler.outputs[decision.chosen.response_id or ""], decision

    def _finish(self, output: Any, decision: Decision) -> Any:
        output = stamp(output, decision)
        if self.with_decision:
            return {"output": output, "decision": decision}
        return output

    async def _aguard(self, input: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig) -> Any:
        output, decision = await self._decide(input, config, sync=False)
        await adispatch_custom_event(DECISION_EVENT, decision.model_dump(mode="json"), config=config)
        return self._finish(output, decision)

    def _guard(self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> Any:
        output, decision = run_sync(self._decide(input, config, sync=True))
        dispatch_custom_event(DECISION_EVENT, decision.model_dump(mode="json"), config=config)
        return self._finish(output, decision)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Sample, judge and return the best output (async)."""
        return await self._acall_with_config(self._aguard, input, config, run_type="chain", **kwargs)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Sample, judge and return the best output."""
        return self._call_with_config(self._guard, input, config, run_type="chain", **kwargs)

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        """Buffer and judge the candidates, then stream the chosen output."""
        output = await self.ainvoke(input, config, **kwargs)
        for chunk in _chunks(output):
            yield chunk
            await asyncio.sleep(0)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        """Buffer and judge the candidates, then stream the chosen output."""
        yield from _chunks(self.invoke(input, config, **kwargs))


_PIECES = re.compile(r"\s*\S+\s*|\s+")


def _chunks(output: Any) -> list[Any]:
    """The chosen output as stream chunks that add back up to it."""
    if isinstance(output, str):
        return _PIECES.findall(output) or [output]
    if isinstance(output, AIMessage) and isinstance(output.content, str):
        pieces = _PIECES.findall(output.content) or [""]
        first = AIMessageChunk(
            content=pieces[0],
            id=output.id,
            additional_kwargs=output.additional_kwargs,
            response_metadata=output.response_metadata,
            usage_metadata=output.usage_metadata,
            tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(output.tool_calls)
            ],
        )
        return [first, *(AIMessageChunk(content=piece, id=output.id) for piece in pieces[1:])]
    return [output]
