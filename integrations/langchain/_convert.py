"""Translate between LangChain messages and ra-guard's OpenAI-style chat messages.

The judge reads a conversation as role-tagged text, so tool calls and tool
results are rendered into the text a judge can see; nothing here is sent back
to a chat model except the critique turns of retry-with-feedback.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> to_chat_messages([HumanMessage("hi"), AIMessage("hello")])
    [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages
from langchain_core.messages import ChatMessage as LangChainChatMessage

from ra_guard.types import ChatMessage, Usage

__all__ = ["from_chat_messages", "message_text", "to_chat_messages", "usage_of"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def message_text(message: BaseMessage, *, with_tool_calls: bool = True) -> str:
    """The text of ``message``, with its tool calls rendered where it has any.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> call = {"name": "add", "args": {"a": 1}, "id": "c1"}
        >>> print(message_text(AIMessage("", tool_calls=[call])))
        [tool call] add({"a": 1})
    """
    text = str(message.text)
    if with_tool_calls and isinstance(message, AIMessage) and message.tool_calls:
        calls = [
            f"[tool call] {call['name']}({json.dumps(call['args'], ensure_ascii=False, sort_keys=True)})"
            for call in message.tool_calls
        ]
        text = "\n".join([text, *calls]) if text else "\n".join(calls)
    return text


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[ChatMessage]:
    """LangChain messages as ``{"role", "content"}`` dicts for the guard and its judge."""
    out: list[ChatMessage] = []
    for message in messages:
        role = message.role if isinstance(message, LangChainChatMessage) else _ROLES.get(message.type, message.type)
        out.append({"role": role, "content": message_text(message)})
    return out


def from_chat_messages(messages: Sequence[ChatMessage]) -> list[BaseMessage]:
    """``{"role", "content"}`` dicts (the critique turns of a retry) as LangChain messages.

    Example:
        >>> [type(m).__name__ for m in from_chat_messages([{"role": "user", "content": "Try again"}])]
        ['HumanMessage']
    """
    return list(convert_to_messages([dict(m) for m in messages]))


def usage_of(message: Any) -> Usage:
    """Token usage of an ``AIMessage`` (its ``usage_metadata``), or zero."""
    metadata = getattr(message, "usage_metadata", None) or {}
    return Usage(
        prompt_tokens=int(metadata.get("input_tokens", 0) or 0),
        completion_tokens=int(metadata.get("output_tokens", 0) or 0),
    )
