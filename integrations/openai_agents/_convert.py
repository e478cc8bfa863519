"""Render the Agents SDK's Responses-format items as the chat messages and texts a judge reads.

Only the judge reads what is built here: nothing is sent back to a model
except the critique turns of retry-with-feedback (:func:`as_input_items`).
Tool calls read ``[tool call] name(arguments)`` and tool results are tagged
with their call id, as everywhere in ra-guard; an item kind the judge cannot
read (an image, a file, a reasoning item) becomes a marker, not nothing.

Example:
    >>> conversation("Be brief.", [{"role": "user", "content": "Hi"}])
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pydantic_core
from agents import ItemHelpers, ModelResponse, TResponseInputItem
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseReasoningItem

from ra_guard import ChatMessage

__all__ = ["as_input_items", "conversation", "output_as_text", "response_text", "tool_calls_of"]

_TEXT_PARTS = {"input_text", "output_text", "text"}


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content if isinstance(content, (list, tuple)) else [content]:
        kind = _get(part, "type")
        if kind in _TEXT_PARTS and isinstance(_get(part, "text"), str):
            texts.append(_get(part, "text"))
        elif kind == "refusal":
            texts.append(f"[refusal] {_get(part, 'refusal') or ''}")
        else:
            texts.append(f"[{kind or type(part).__name__} part omitted]")
    return "\n".join(texts)


def _item_message(item: Any) -> ChatMessage:
    kind = _get(item, "type")
    role = _get(item, "role")
    if role is not None and kind in (None, "message"):
        return {"role": str(role), "content": _content_text(_get(item, "content"))}
    if kind == "function_call":
        return {"role": "assistant", "content": f"[tool call] {_get(item, 'name')}({_get(item, 'arguments') or ''})"}
    if kind == "function_call_output":
        output = _get(item, "output")
        return {"role": "tool", "content": f"[tool result {_get(item, 'call_id')}]\n{_content_text(output)}"}
    return {"role": "assistant", "content": f"[{kind or type(item).__name__} item omitted]"}


def conversation(system_instructions: str | None, items: str | Sequence[TResponseInputItem]) -> list[ChatMessage]:
    """The judge's view of a model call: the agent's instructions, then its input items.

    Example:
        >>> conversation(None, [{"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c1"}])
        [{'role': 'assistant', 'content': '[tool call] f({})'}]
    """
    messages: list[ChatMessage] = []
    if system_instructions:
        messages.append({"role": "system", "content": system_instructions})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    messages.extend(_item_message(item) for item in items)
    return messages


def as_input_items(messages: Sequence[ChatMessage]) -> list[TResponseInputItem]:
    """Chat messages (the critique turns of a retry) as Responses input items for the next model call.

    Example:
        >>> as_input_items([{"role": "user", "content": "Shorter, please."}])
        [{'role': 'user', 'content': 'Shorter, please.'}]
    """
    return [{"role": m["role"], "content": m["content"]} for m in messages]  # type: ignore[misc]


def tool_calls_of(response: ModelResponse) -> list[Any]:
    """The output items that ask the runner to act (tool calls, handoffs, built-in tools): all but messages."""
    return [item for item in response.output if not isinstance(item, (ResponseOutputMessage, ResponseReasoningItem))]


def response_text(response: ModelResponse) -> str:
    """What the judge reads of a model response: the text the runner takes as final output, and any tool calls.

    The runner's final output is the text of the response's last message
    (``ItemHelpers.extract_text``); with an ``output_type`` that text is the JSON
    the runner validates, so structured answers are judged as that JSON.
    """
    messages = [item for item in response.output if isinstance(item, ResponseOutputMessage)]
    lines = [ItemHelpers.extract_text(messages[-1]) or ""] if messages else []
    for item in tool_calls_of(response):
        if isinstance(item, ResponseFunctionToolCall):
            lines.append(f"[tool call] {item.name}({item.arguments})")
        else:
            lines.append(f"[{_get(item, 'type') or type(item).__name__} item]")
    return "\n".join(line for line in lines if line)


def output_as_text(output: Any) -> str:
    """An agent's final output as the judge reads it: a string as is, anything else as JSON.

    Example:
        >>> output_as_text({"city": "Paris", "temp_c": 21})
        '{"city":"Paris","temp_c":21}'
    """
    if isinstance(output, str):
        return output
    return pydantic_core.to_json(output, fallback=str).decode()
