"""The render → chat → parse path, written once for every judge that lets a chat model write its verdict.

A RewardAnything judge that generates its verdict does three things: render
the request in the exact RewardAnything input (:func:`render_messages`), call
a chat model, and parse the generation (:func:`parse_verdict`). Only the middle
step differs between backends, so :class:`ChatJudge` owns the path and a
backend implements one method, :meth:`ChatJudge._chat`: messages and a token
limit in, a :class:`ChatAnswer` (text, usage, answering model, whether it was
cut off) out. :func:`answer_from_completion` reads the OpenAI-shaped answers
of the ``openai`` SDK and of litellm alike; :func:`verdict_from_answer` is the
parse step on its own, for judges that produce answers another way (a batch of
local generations).

Used by :class:`~ra_guard.judges.openai_compat.OpenAICompatJudge` (``reasoning``
mode and the fallback of the digit modes),
:class:`~ra_guard.judges.litellm_judge.LiteLLMJudge` and the litellm router
judge of ``ra_guard.integrations.litellm``.

Example:
    >>> class Fixed(ChatJudge):
    ...     async def _chat(self, messages, *, max_tokens):
    ...         return ChatAnswer(text='<think>ok</think>{"scores": {"model-1": 4}}', model="fixed-1")
    >>> verdict = Fixed().judge(JudgeRequest(principle="p", prompt="q", responses={"a": "x"}))
    >>> verdict.scores, verdict.model
    ({'a': 4.0}, 'fixed-1')
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ra_guard._http import usage_of
from ra_guard.exceptions import JudgeOutputError
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.judges.format import RenderedRequest, render_messages
from ra_guard.judges.parsing import ReasonCode, parse_verdict
from ra_guard.types import ChatMessage, Usage
from ra_guard.verdict import Verdict

__all__ = ["ChatAnswer", "ChatJudge", "answer_from_completion", "verdict_from_answer"]


@dataclass(frozen=True)
class ChatAnswer:
    """What one chat call answered, as the parse step needs it.

    Attributes:
        text: The whole generation, thinking included (a server that moved the
            thinking out of the content has it put back, inside ``<think>``).
        usage: Tokens the call used, where the backend reports them.
        model: The model that answered, where the answer names it.
        truncated: The generation stopped at its token limit (``finish_reason
            == "length"``): thinking that was never closed then holds no verdict.

    Example:
        >>> ChatAnswer(text="{}").truncated
        False
    """

    text: str
    usage: Usage | None = None
    model: str | None = None
    truncated: bool = False


def answer_from_completion(response: Any, *, judge: str, source: str) -> ChatAnswer:
    """Read an OpenAI-shaped chat completion (the ``openai`` SDK's, litellm's ``ModelResponse``).

    The first choice's content is the text; a provider's separate thinking
    (vLLM's ``reasoning_content`` or ``reasoning``, litellm's
    ``reasoning_content``) is put back in front of it inside ``<think>``.

    Args:
        response: The chat completion (not validated by the SDKs: any shape may arrive).
        judge: The judge's name, for errors.
        source: Who answered, for errors (``"the server's answer"``, ``"litellm"``).

    Raises:
        JudgeOutputError: The response holds no message (reason ``empty_output``).

    Example:
        >>> from types import SimpleNamespace as Obj
        >>> reply = Obj(choices=[Obj(message=Obj(content="{}", reasoning_content="hm"), finish_reason="stop")],
        ...             model="m", usage=None)
        >>> answer_from_completion(reply, judge="j", source="the server").text
        '<think>hm</think>{}'
    """
    choices = getattr(response, "choices", None)
    first = choices[0] if isinstance(choices, Sequence) and not isinstance(choices, str) and choices else None
    message = getattr(first, "message", None)
    if message is None:
        raise JudgeOutputError(
            ReasonCode.EMPTY_OUTPUT.value,
            f"{source} is not a chat completion with a message: {str(response)[:200]}",
            raw_text=str(response),
            judge=judge,
        )
    content = getattr(message, "content", None)
    text = content if isinstance(content, str) else ""
    thinking = _thinking_of(message)
    if thinking and "</think>" not in text:
        text = f"<think>{thinking}</think>{text}"
    model = getattr(response, "model", None)
    return ChatAnswer(
        text=text,
        usage=usage_of(response),
        model=model if isinstance(model, str) and model else None,
        truncated=getattr(first, "finish_reason", None) == "length",
    )


def _thinking_of(message: Any) -> str:
    """The thinking a server or litellm moved out of ``content``, else ``""``."""
    extra = getattr(message, "model_extra", None)
    for key in ("reasoning_content", "reasoning"):
        value = getattr(message, key, None)
        if value is None and isinstance(extra, dict):  # a pydantic model keeping unknown fields aside
            value = extra.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def verdict_from_answer(
    answer: ChatAnswer,
    rendered: RenderedRequest,
    *,
    judge: str,
    model: str | None = None,
    notes: Sequence[str] = (),
) -> Verdict:
    """Parse a chat answer into a verdict keyed by the caller's names: the parse step of the path.

    Args:
        answer: What the chat model answered.
        rendered: What it was shown (maps names back; texts a verdict must not be quoted from).
        judge: The judge's name, for errors.
        model: The model to record where the answer names none.
        notes: ``"code: detail"`` notes put first in ``Verdict.repairs`` (e.g.
            how the input was shortened to fit).

    Raises:
        JudgeOutputError: The generation is no usable verdict.

    Example:
        >>> shown = RenderedRequest(messages=[], masked_to_caller={"model-1": "a"})
        >>> verdict_from_answer(ChatAnswer(text='{"scores": {"model-1": 5}}'), shown, judge="j", model="m").model
        'm'
    """
    verdict = parse_verdict(
        answer.text,
        rendered,
        model=answer.model or model,
        usage=answer.usage,
        judge=judge,
        truncated=answer.truncated,
    )
    if notes:
        verdict = verdict.model_copy(update={"repairs": [*notes, *verdict.repairs]})
    return verdict


class ChatJudge(Judge):
    """A judge whose chat model writes the verdict: render, :meth:`_chat`, parse, written once here.

    Subclasses implement :meth:`_chat`, one call of their chat model, raising
    :class:`~ra_guard.exceptions.JudgeError` (or a subclass) on failure.
    :meth:`ajudge` renders the request, calls it with :attr:`max_tokens` and
    parses the answer; :meth:`ajudge_rendered` runs the same path on an
    already rendered request with another token limit (a bounded fallback).

    Attributes:
        max_tokens: The generation limit of :meth:`ajudge` (``None``: the backend's default).

    Example:
        >>> class Constant(ChatJudge):
        ...     name = "constant"
        ...     async def _chat(self, messages, *, max_tokens):
        ...         return ChatAnswer(text='{"scores": {"model-1": 2, "model-2": 5}}')
        >>> Constant().judge(JudgeRequest(principle="p", prompt="q", responses={"a": "x", "b": "y"})).best in "ab"
        True
    """

    max_tokens: int | None = 4096

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        """Render ``request``, ask the chat model, parse its verdict.

        Raises:
            JudgeError: The chat call failed (as :meth:`_chat` raised it).
            JudgeOutputError: The answer cannot be read as a verdict.
        """
        return await self.ajudge_rendered(render_messages(request), max_tokens=self.max_tokens)

    async def ajudge_rendered(self, rendered: RenderedRequest, *, max_tokens: int | None) -> Verdict:
        """Ask the chat model about an already rendered request and parse its verdict.

        Example:
            >>> # verdict = await judge.ajudge_rendered(render_messages(request), max_tokens=512)
        """
        answer = await self._chat(rendered.messages, max_tokens=max_tokens)
        return verdict_from_answer(answer, rendered, judge=self.name, model=self.model)

    @abstractmethod
    async def _chat(self, messages: list[ChatMessage], *, max_tokens: int | None) -> ChatAnswer:
        """One chat call: the rendered messages in, the model's answer out; raise ``JudgeError`` on failure."""
