"""Sample candidates through any litellm ``acompletion`` (the SDK's or a ``Router``'s), keeping whole responses.

The guard only needs texts; callers need the winner back as a normal
``ModelResponse`` (tool calls, ids, usage), so every response is kept by id
and :func:`chosen_response` rebuilds a one-choice response around the winner.

Example:
    >>> to_chat_messages([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    [{'role': 'user', 'content': 'Hi'}]
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from ra_guard._http import usage_of
from ra_guard.decision import Decision
from ra_guard.exceptions import SamplerError
from ra_guard.judges.base import Judge
from ra_guard.samplers.base import Sampler
from ra_guard.types import ChatMessage, Messages, Sample, Usage

from ._cost import decision_cost

__all__ = ["DECISION_ATTRIBUTE", "CompletionSampler", "choice_text", "chosen_response", "to_chat_messages"]

#: Attribute of the returned ``ModelResponse`` (and key of its JSON body) holding the decision.
DECISION_ATTRIBUTE = "ra_guard"

Completion = Callable[..., Any]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return "" if content is None else str(content)


def to_chat_messages(messages: Sequence[Mapping[str, Any]]) -> list[ChatMessage]:
    """OpenAI-format messages (content parts, tool calls) as plain-text messages for the judge."""
    out: list[ChatMessage] = []
    for message in messages:
        text = _content_text(message.get("content"))
        calls = [_call_text(call) for call in message.get("tool_calls") or []]
        out.append({"role": str(message.get("role", "user")), "content": "\n".join([t for t in [text, *calls] if t])})
    return out


def _call_text(call: Any) -> str:
    function = call.get("function", {}) if isinstance(call, Mapping) else getattr(call, "function", None)
    name = function.get("name") if isinstance(function, Mapping) else getattr(function, "name", "")
    arguments = function.get("arguments") if isinstance(function, Mapping) else getattr(function, "arguments", "")
    return f"[tool call] {name}({arguments})"


def choice_text(choice: Any) -> str:
    """What the judge reads of a response choice: its content, and its tool calls as text."""
    message = choice.message
    parts = [_content_text(message.content)]
    parts.extend(_call_text(call) for call in getattr(message, "tool_calls", None) or [])
    return "\n".join(p for p in parts if p)


class CompletionSampler(Sampler):
    """Samples with ``acompletion(**kwargs)``: ``n`` calls side by side, or one call with ``n``.

    Args:
        completion: ``litellm.acompletion`` or ``router.acompletion``; with
            ``sync=True``, ``litellm.completion`` or ``router.completion`` (run in
            worker threads, so that sync callers keep litellm's sync clients).
        kwargs: The call's arguments (``model``, ``messages``, ``max_tokens``...).
            The caller's own ``temperature`` wins over the strategy's.
        use_n: Ask for ``n`` choices in one call (providers that support ``n``).
        name: The sampler's name in traces.
        sync: ``completion`` is a synchronous function.
        group_id: Id shared by every call of this sampler (default: a new uuid).

    Every call carries litellm ``metadata`` naming its group and its place in
    it, so that litellm callbacks (Langfuse, spend logs, a ``CustomLogger``)
    can put the calls of one decision together: ``ra_guard_group_id``,
    ``ra_guard_candidate`` (1, 2... in call order; the decision's candidates
    keep theirs in ``response_id``, ``<group>-<call>-<choice>``), also copied
    into ``spend_logs_metadata`` (which reaches ``standard_logging_object``).
    """

    def __init__(
        self,
        completion: Completion,
        kwargs: Mapping[str, Any],
        *,
        use_n: bool = False,
        name: str = "",
        sync: bool = False,
        group_id: str | None = None,
    ) -> None:
        self.completion = completion
        self.group_id = group_id or uuid.uuid4().hex
        self._calls = 0
        self.sync = sync
        self.kwargs = dict(kwargs)
        self.prefix = len(self.kwargs.get("messages") or [])
        self.use_n = use_n
        self.name = name or f"litellm:{self.kwargs.get('model', '?')}"
        self.responses: dict[str, tuple[Any, int]] = {}

    async def _call(self, extra: list[ChatMessage], n: int | None, temperature: float | None) -> tuple[int, Any]:
        kwargs = dict(self.kwargs)
        kwargs["messages"] = [*kwargs.get("messages", []), *(dict(m) for m in extra)]
        if temperature is not None:
            kwargs.setdefault("temperature", temperature)
        if n is not None:
            kwargs["n"] = n
        self._calls += 1
        call = self._calls
        tags = {"ra_guard_group_id": self.group_id, "ra_guard_candidate": call}
        metadata = dict(kwargs.get("metadata") or {})
        spend = dict(metadata.get("spend_logs_metadata") or {})
        kwargs["metadata"] = {**metadata, **tags, "spend_logs_metadata": {**spend, **tags}}
        if self.sync:
            return call, await asyncio.to_thread(self.completion, **kwargs)
        return call, await self.completion(**kwargs)

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        return [sample async for sample in self._samples(messages, n, temperature, in_order=True)]

    async def astream_samples(
        self, messages: Messages, *, n: int, temperature: float | None = None
    ) -> AsyncIterator[Sample]:
        """Yield each call's choices as that call returns (a hung call does not hold back the others)."""
        async for sample in self._samples(messages, n, temperature, in_order=False):
            yield sample

    async def _samples(
        self, messages: Messages, n: int, temperature: float | None, *, in_order: bool
    ) -> AsyncIterator[Sample]:
        extra = list(messages[self.prefix :])
        if self.use_n:
            calls = [asyncio.ensure_future(self._call(extra, n, temperature))]
        else:
            calls = [asyncio.ensure_future(self._call(extra, None, temperature)) for _ in range(n)]
        errors: list[BaseException] = []
        answered = 0
        try:
            for next_done in calls if in_order else asyncio.as_completed(calls):
                try:
                    call, response = await next_done
                except Exception as exc:  # some calls may fail; the guard chooses among those that answered
                    errors.append(exc)
                    continue
                answered += 1
                for sample in self._keep(call, response):
                    yield sample
        finally:
            for pending in calls:
                pending.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
        if not answered:
            raise SamplerError(f"{self.name}: every completion failed: {errors[0]!r}") from errors[0]

    def _keep(self, call: int, response: Any) -> list[Sample]:
        samples: list[Sample] = []
        for index, choice in enumerate(response.choices):
            key = f"{self.group_id}-{call}-{index}"
            self.responses[key] = (response, index)
            samples.append(
                Sample(
                    text=choice_text(choice),
                    finish_reason=getattr(choice, "finish_reason", None),
                    usage=(usage_of(response) or Usage()) if index == 0 else Usage(),
                    model=getattr(response, "model", None),
                    response_id=key,
                )
            )
        return samples

    def sampled_responses(self) -> list[Any]:
        """Every response this sampler received, each once (with ``use_n``, one response holds several candidates)."""
        unique = {id(response): response for response, _ in self.responses.values()}
        return list(unique.values())


def chosen_response(
    sampler: CompletionSampler, decision: Decision, *, judge: Judge | None = None, checked: Any = None
) -> Any:
    """The winner as a one-choice ``ModelResponse`` with the decision attached.

    The decision is set as the ``ra_guard`` attribute (a JSON-able dict, also
    serialized into the response body) and as ``_hidden_params["ra_guard_decision"]``
    (the :class:`~ra_guard.Decision` itself). ``usage`` and ``response_cost``
    are what the whole decision spent (with ``checked``, the answer the guard
    checked before re-sampling, included); see :func:`attach_decision`.
    """
    response, index = sampler.responses[decision.chosen.response_id or ""]
    return attach_decision(
        response, decision, choice_index=index, counted=True, sampler=sampler, judge=judge, checked=checked
    )


def attach_decision(
    response: Any,
    decision: Decision,
    *,
    choice_index: int = 0,
    counted: bool = False,
    sampler: CompletionSampler | None = None,
    judge: Judge | None = None,
    checked: Any = None,
) -> Any:
    """A copy of ``response`` keeping only choice ``choice_index`` (as index 0), decision attached.

    Cost tools read ``response.usage`` and ``response._hidden_params["response_cost"]``,
    so both report the decision's whole spend: every candidate sampled and every
    judge call, plus the answer the guard checked without sampling it: ``response``
    itself where the decision did not sample it (``counted=False``), or
    ``checked`` (the proxy's original answer, when a re-sampled one won).

    - tokens: ``usage`` is ``decision.total_usage`` (plus the checked answer's);
      the winner's own are ``ra_guard["winner_usage"]`` and
      ``_hidden_params["ra_guard_winner_usage"]``, the total also ``ra_guard["total_usage"]``.
    - dollars: ``response_cost`` is the sum of the prices litellm stamped on
      each call (the candidates of ``sampler``, the checked answer) and the
      judge's price where it is a litellm judge (see :mod:`._cost`); the
      winner's own call is ``_hidden_params["ra_guard_winner_cost"]``. The same
      figures are in ``ra_guard`` (``total_cost``, ``winner_cost``,
      ``candidates_cost``, ``judge_cost``) with ``cost_unpriced`` naming each
      part left out (a non-litellm judge has no price: ``judge_cost`` is ``None``).

    ``litellm.completion_cost(response)`` recomputes a price from ``usage`` at
    the answer model's price, judge tokens included: an estimate where the
    judge is another model; ``response_cost`` is the calls' own prices.
    """
    out = copy.deepcopy(response)
    choice = out.choices[choice_index]
    choice.index = 0
    out.choices = [choice]
    if not counted:
        checked = response
    winner = decision.chosen.usage if counted else usage_of(response) or Usage()
    total = decision.total_usage + (usage_of(checked) or Usage()) if checked is not None else decision.total_usage
    _set_usage(out, total)
    metadata = json.loads(decision.model_dump_json())
    metadata["winner_usage"] = _usage_dict(winner)
    metadata["total_usage"] = _usage_dict(total)
    cost = decision_cost(
        decision,
        sampled=sampler.sampled_responses() if sampler is not None else (),
        winner=response,
        checked=checked,
        judge=judge,
    )
    metadata.update(cost.as_dict())
    setattr(out, DECISION_ATTRIBUTE, metadata)
    hidden = dict(getattr(out, "_hidden_params", None) or {})
    hidden["ra_guard_decision"] = decision
    hidden["ra_guard_winner_usage"] = winner
    hidden["response_cost"] = cost.total
    hidden["ra_guard_winner_cost"] = cost.winner
    hidden["ra_guard_judge_cost"] = cost.judge
    hidden["ra_guard_cost_unpriced"] = cost.unpriced
    out._hidden_params = hidden
    return out


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _set_usage(response: Any, usage: Usage) -> None:
    import litellm

    response.usage = litellm.Usage(**_usage_dict(usage))
