"""Render pydantic-ai messages as the chat messages and texts a judge reads.

Only the judge reads what is built here, except :func:`critique_turns`: the
assistant turn and critique that retry-with-feedback sends to the model.
Tool calls read ``[tool call] name(arguments)``, tool results are tagged with
their call id, and a part the judge cannot read (an image, a file, thinking)
becomes a marker, not nothing.

Example:
    >>> from pydantic_ai.messages import ModelRequest, UserPromptPart
    >>> conversation([ModelRequest(parts=[UserPromptPart("Hi")], instructions="Be brief.")])
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic_core
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters

from ra_guard import ChatMessage

__all__ = ["conversation", "critique_turns", "function_tool_calls", "output_as_text", "response_text"]

_RETRY_KINDS = ("retry-prompt", "retry-feedback")


def _user_text(content: str | Sequence[Any]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(
        item if isinstance(item, str) else f"[{getattr(item, 'kind', type(item).__name__)} part omitted]"
        for item in content
    )


def _request_messages(request: ModelRequest) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    for part in request.parts:
        kind = str(getattr(part, "part_kind", ""))
        if isinstance(part, SystemPromptPart):
            messages.append({"role": "system", "content": part.content})
        elif isinstance(part, UserPromptPart):
            messages.append({"role": "user", "content": _user_text(part.content)})
        elif isinstance(part, ToolReturnPart):
            messages.append(
                {"role": "tool", "content": f"[tool result {part.tool_call_id}]\n{part.model_response_str()}"}
            )
        elif kind in _RETRY_KINDS:
            # A validator's or a tool's retry request, as the model reads it (part classes vary by version).
            respond: Any = getattr(part, "model_response", None)
            messages.append({"role": "user", "content": str(respond() if callable(respond) else part)})
        elif kind.endswith(("-delta", "-baseline")):
            continue  # the harness's bookkeeping (tool availability, settings, instructions), not conversation
        else:
            messages.append({"role": "user", "content": f"[{type(part).__name__} omitted]"})
    return messages


def _part_text(part: Any) -> str:
    if isinstance(part, TextPart):
        return part.content
    if isinstance(part, ToolCallPart):
        return f"[tool call] {part.tool_name}({part.args_as_json_str()})"
    if isinstance(part, ThinkingPart):
        return ""  # the model's own scratchpad is not part of its answer
    return f"[{type(part).__name__} omitted]"


def conversation(messages: Sequence[ModelMessage]) -> list[ChatMessage]:
    """The judge's view of a run's messages: the latest instructions, then every turn.

    pydantic-ai sends only the latest request's ``instructions`` to the model,
    so that is the system message the judge sees (system prompt parts stay
    where they are).

    Example:
        >>> from pydantic_ai.messages import ModelResponse, ToolCallPart
        >>> conversation([ModelResponse(parts=[ToolCallPart("f", {"a": 1}, tool_call_id="c1")])])
        [{'role': 'assistant', 'content': '[tool call] f({"a":1})'}]
    """
    out: list[ChatMessage] = []
    instructions = next(
        (m.instructions for m in reversed(messages) if isinstance(m, ModelRequest) and m.instructions), None
    )
    if instructions:
        out.append({"role": "system", "content": instructions})
    for message in messages:
        if isinstance(message, ModelRequest):
            out.extend(_request_messages(message))
        else:
            text = "\n".join(t for t in (_part_text(p) for p in message.parts) if t)
            out.append({"role": "assistant", "content": text})
    return out


def function_tool_calls(response: ModelResponse, parameters: ModelRequestParameters) -> list[ToolCallPart]:
    """The calls of ``response`` to function tools: a turn the agent goes on from, not a final answer."""
    outputs = {tool.name for tool in parameters.output_tools}
    return [p for p in response.parts if isinstance(p, ToolCallPart) and p.tool_name not in outputs]


def response_text(response: ModelResponse, parameters: ModelRequestParameters) -> str:
    """What the judge reads of a model response: its text, and a structured answer as its JSON arguments.

    With tool output (pydantic-ai's default for ``output_type``), the answer is
    the call to an output tool; its arguments are the JSON the agent validates.
    """
    outputs = {tool.name for tool in parameters.output_tools}
    lines = []
    for part in response.parts:
        if isinstance(part, ToolCallPart) and part.tool_name in outputs:
            lines.append(part.args_as_json_str())
        elif text := _part_text(part):
            lines.append(text)
    return "\n".join(lines)


def critique_turns(extra: Sequence[ChatMessage]) -> list[ModelMessage]:
    """Retry-with-feedback's chat turns (answer, critique) as pydantic-ai messages for the next request."""
    turns: list[ModelMessage] = []
    for message in extra:
        if message["role"] == "assistant":
            turns.append(ModelResponse(parts=[TextPart(message["content"])]))
        else:
            turns.append(ModelRequest(parts=[UserPromptPart(message["content"])]))
    return turns


def output_as_text(output: Any) -> str:
    """An agent's output as the judge reads it: a string as is, anything else as JSON.

    Example:
        >>> output_as_text({"city": "Paris"})
        '{"city":"Paris"}'
    """
    if isinstance(output, str):
        return output
    return pydantic_core.to_json(output, fallback=str).decode()
