"""Small shared types: chat messages, token usage and sampled candidates.

Example:
    >>> from ra_guard.types import Usage
    >>> (Usage(prompt_tokens=3, completion_tokens=2) + Usage(prompt_tokens=1)).total_tokens
    6
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, TypedDict, get_args

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ROLES",
    "ChatMessage",
    "Messages",
    "Role",
    "Sample",
    "Usage",
    "content_text",
    "message_text",
    "messages_to_prompt",
]

#: The chat roles a message may have: OpenAI's (``developer`` is its newer ``system``,
#: ``function`` the tool result of its older function-calling API).
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]

#: :data:`Role`'s values, in order, for checks and error messages.
ROLES: tuple[str, ...] = get_args(Role)


class ChatMessage(TypedDict):
    """One OpenAI-style chat message (``{"role": "user", "content": "hi"}``)."""

    role: str
    content: str


Messages = Sequence[ChatMessage]


class Usage(BaseModel):
    """Token usage; adds up with ``+``.

    Example:
        >>> Usage(prompt_tokens=10, completion_tokens=5).total_tokens
        15
    """

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class Sample(BaseModel):
    """One sampled response, as a sampler returns it.

    Example:
        >>> Sample(text="Paris.", finish_reason="stop").text
        'Paris.'
    """

    model_config = ConfigDict(frozen=True)

    text: str
    finish_reason: str | None = None
    usage: Usage = Usage()
    model: str | None = None
    response_id: str | None = None


def content_text(content: object) -> tuple[str, list[str]]:
    """The text of a message's ``content``, and the types of the parts left out.

    ``content`` is a string, ``None`` (an assistant turn that only calls tools)
    or a list of OpenAI content parts; the judge reads text, so each non-text
    part is replaced by a marker such as ``[image_url part omitted]``.

    Example:
        >>> content_text([{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {"url": "x"}}])
        ('Look:\\n[image_url part omitted]', ['image_url'])
    """
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    dropped: list[str] = []
    for part in content if isinstance(content, (list, tuple)) else [content]:
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = str(part.get("type", "unknown")) if isinstance(part, Mapping) else type(part).__name__
        if kind == "text" and isinstance(part, Mapping) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            dropped.append(kind)
            texts.append(f"[{kind} part omitted]")
    return "\n".join(texts), dropped


def _tool_call_text(call: object) -> str:
    function = call.get("function") if isinstance(call, Mapping) else getattr(call, "function", None)
    if isinstance(function, Mapping):
        name, arguments = function.get("name", ""), function.get("arguments", "")
    else:
        name, arguments = getattr(function, "name", ""), getattr(function, "arguments", "")
    return f"[tool call] {name}({arguments if arguments is not None else ''})"


def message_text(message: Mapping[str, object]) -> str:
    """What the judge reads of one message: its text, and its tool calls as ``[tool call] name(args)``.

    Example:
        >>> message_text({"role": "assistant", "content": None,
        ...               "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]})
        '[tool call] f({})'
    """
    text, _ = content_text(message.get("content"))
    calls = message.get("tool_calls")
    lines = [text] if text else []
    if isinstance(calls, (list, tuple)):
        lines.extend(_tool_call_text(call) for call in calls)
    return "\n".join(lines)


def _header(message: Mapping[str, object]) -> str:
    role = str(message.get("role", "user"))
    if role in ("tool", "function"):  # a result: which call it answers, where the message says
        ref = message.get("tool_call_id") or message.get("name")
        return f"[{role} ({ref})]" if ref else f"[{role}]"
    return f"[{role}]"


def messages_to_prompt(messages: Sequence[Mapping[str, object]]) -> str:
    """Render a conversation as the ``prompt`` string a RewardAnything judge reads.

    A single user message is passed as its bare text (the format the judge was
    trained on); a longer conversation becomes a role-tagged transcript so that
    the judge sees the system instructions and the earlier turns. Content parts
    contribute their text, tool calls read ``[tool call] name(arguments)`` and a
    tool result is tagged with its call id.

    Example:
        >>> messages_to_prompt([{"role": "user", "content": "Capital of France?"}])
        'Capital of France?'
        >>> print(messages_to_prompt([{"role": "system", "content": "Be brief."},
        ...                           {"role": "user", "content": "Hi"}]))
        [system]
        Be brief.
        <BLANKLINE>
        [user]
        Hi
    """
    if not messages:
        raise ValueError("messages is empty: give at least one chat message")
    if len(messages) == 1 and messages[0].get("role") == "user":
        return message_text(messages[0])
    return "\n\n".join(f"{_header(m)}\n{message_text(m)}" for m in messages)
