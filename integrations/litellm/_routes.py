"""The answer and the conversation of a proxy request, per route: chat completions, Anthropic messages, Responses.

The proxy hands a post-call guardrail a ``ModelResponse`` for
``/v1/chat/completions``, a plain dict for ``/v1/messages`` (Anthropic
format) and a ``ResponsesAPIResponse`` for ``/v1/responses``; the request's
conversation is ``messages`` (+ ``system``) or ``input`` (+ ``instructions``).
This module reads the three into what the judge takes: chat messages and one
answer text.

Example:
    >>> answer = answer_of({"type": "message", "role": "assistant", "content": [{"type": "text", "text": "Hi."}]})
    >>> answer.route, answer.text, answer.calls_tools
    ('messages', 'Hi.', False)
    >>> conversation_of("responses", {"instructions": "Be brief.", "input": "Hello"})
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hello'}]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import litellm

from ra_guard.types import ChatMessage

from ._sampler import choice_text, to_chat_messages

__all__ = ["Answer", "Route", "answer_of", "conversation_of", "route_of", "stream_answer_of"]

Route = Literal["chat", "messages", "responses"]

#: Content part types that carry text, across the three formats.
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


@dataclass(frozen=True)
class Answer:
    """A response's answer as the judge reads it.

    Attributes:
        route: Which API produced it.
        text: Its text, tool calls written as ``[tool call] name(arguments)``.
        calls_tools: Whether it calls tools.
    """

    route: Route
    text: str
    calls_tools: bool


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


def _parts_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(str(_get(part, "text") or "") for part in content if _get(part, "type") in _TEXT_PARTS)
    return ""


def _tool_text(name: Any, arguments: Any) -> str:
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, default=str)
    return f"[tool call] {name}({arguments})"


def _anthropic_answer(response: Mapping[str, Any]) -> Answer:
    parts: list[str] = []
    calls = False
    for block in response.get("content") or []:
        kind = _get(block, "type")
        if kind == "text":
            parts.append(str(_get(block, "text") or ""))
        elif kind == "tool_use":
            calls = True
            parts.append(_tool_text(_get(block, "name"), _get(block, "input")))
    return Answer("messages", "\n".join(p for p in parts if p), calls)


def _responses_answer(response: Any) -> Answer:
    parts: list[str] = []
    calls = False
    for item in _get(response, "output") or []:
        kind = _get(item, "type")
        if kind == "message":
            parts.append(_parts_text(_get(item, "content")))
        elif kind == "function_call":
            calls = True
            parts.append(_tool_text(_get(item, "name"), _get(item, "arguments")))
    return Answer("responses", "\n".join(p for p in parts if p), calls)


def answer_of(response: Any) -> Answer | None:
    """The answer in a proxy response, or ``None`` for what is not a text answer (embeddings, images...)."""
    if isinstance(response, litellm.ModelResponse):
        if not response.choices:
            return None
        choice = response.choices[0]
        return Answer("chat", choice_text(choice), bool(getattr(choice.message, "tool_calls", None)))
    if isinstance(response, litellm.ResponsesAPIResponse):
        return _responses_answer(response)
    if isinstance(response, Mapping) and response.get("type") == "message" and response.get("role") == "assistant":
        return _anthropic_answer(response)
    return None


def _system(value: Any) -> list[ChatMessage]:
    text = _parts_text(value)
    return [{"role": "system", "content": text}] if text else []


def _responses_input(value: Any) -> list[ChatMessage]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    out: list[ChatMessage] = []
    for item in value or []:
        role = _get(item, "role")
        if role is None:  # function calls and their outputs: not conversation text
            continue
        text = _parts_text(_get(item, "content"))
        if text:
            out.append({"role": "assistant" if role == "assistant" else str(role), "content": text})
    return out


def conversation_of(route: Route, data: Mapping[str, Any]) -> list[ChatMessage]:
    """The request's conversation as plain-text chat messages (system first)."""
    if route == "chat":
        return to_chat_messages(data.get("messages") or [])
    if route == "messages":
        messages: list[ChatMessage] = [
            {"role": str(_get(m, "role") or "user"), "content": _parts_text(_get(m, "content"))}
            for m in data.get("messages") or []
        ]
        return [*_system(data.get("system")), *[m for m in messages if m["content"]]]
    return [*_system(data.get("instructions")), *_responses_input(data.get("input"))]


def _anthropic_events(chunks: Sequence[Any]) -> list[dict[str, Any]]:
    # Joined first: a server-sent event may be split across chunks.
    text = "".join(c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in chunks)
    events: list[dict[str, Any]] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            try:
                event = json.loads(line[5:].strip())
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def _anthropic_stream_answer(chunks: Sequence[Any]) -> Answer:
    parts: list[str] = []
    calls = False
    for event in _anthropic_events(chunks):
        delta = event.get("delta") or {}
        block = event.get("content_block") or {}
        if event.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
            parts.append(str(delta.get("text") or ""))
        elif event.get("type") == "content_block_start" and block.get("type") == "tool_use":
            calls = True
    return Answer("messages", "".join(parts), calls)


def _event_type(chunk: Any) -> str:
    kind = _get(chunk, "type")
    return str(getattr(kind, "value", kind))


def stream_answer_of(route: Route, chunks: Sequence[Any], messages: Any) -> Answer | None:
    """The answer in the buffered chunks of a streamed response (``messages``: the chat request's, to rebuild it)."""
    if route == "chat":
        built = litellm.stream_chunk_builder(chunks=list(chunks), messages=messages)
        return answer_of(built) if built is not None else None
    if route == "messages":
        return _anthropic_stream_answer(chunks)
    for chunk in reversed(chunks):  # the completed event carries the whole response
        if _event_type(chunk) == "response.completed":
            return _responses_answer(_get(chunk, "response"))
    deltas = [str(_get(c, "delta") or "") for c in chunks if _event_type(c) == "response.output_text.delta"]
    return Answer("responses", "".join(deltas), False)


def route_of(data: Mapping[str, Any]) -> Route | None:
    """The route of a proxy request, from its logging object's call type."""
    call_type = str(getattr(data.get("litellm_logging_obj"), "call_type", "") or "")
    if call_type in ("anthropic_messages",):
        return "messages"
    if call_type in ("responses", "aresponses"):
        return "responses"
    if call_type in ("completion", "acompletion", ""):
        return "chat"
    return None
