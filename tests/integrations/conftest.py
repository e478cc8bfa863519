"""Fixtures for the framework integrations: scripted agent turns on the loopback server, warning filters.

The suite runs with ``filterwarnings = error``; the few third-party warnings
LangChain and litellm raise are ignored by name in ``pyproject.toml``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tests.support.openai_server import OpenAIStubServer, RecordedRequest


def tool_call_body(name: str, arguments: dict[str, Any], *, call_id: str = "call_1") -> dict[str, Any]:
    """A raw chat completion whose only choice calls ``name(arguments)``."""
    return {
        "id": f"chatcmpl-{call_id}",
        "object": "chat.completion",
        "created": 0,
        "model": "ra-stub",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(arguments)},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


class Answers:
    """Hands out scripted answers to sampler requests, one per call, thread-safe; records who asked."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._texts = itertools.cycle(texts)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return next(self._texts)


def answer_samplers(stub: OpenAIStubServer, *replies: Any) -> None:
    """Answer ``stub``'s sampler requests with ``replies`` in turn (cycled); judge requests get its default."""
    answers = Answers(replies)

    def handle(request: RecordedRequest) -> Any:
        return answers.next() if request.kind == "sampler" else None

    stub.handler = handle


def agent_handler(
    answers: Sequence[str], *, tool: str = "get_weather", args: dict[str, Any] | None = None
) -> Callable[[RecordedRequest], Any]:
    """A stub handler for an agent: call ``tool`` first, then answer with ``answers`` in turn.

    Judge requests fall through to the stub's automatic judge (``score=N`` markers).
    """
    texts = Answers(answers)

    def handle(request: RecordedRequest) -> Any:
        if request.kind != "sampler":
            return None
        has_result = any(m.get("role") == "tool" for m in request.messages)
        if request.body.get("tools") and not has_result:
            return tool_call_body(tool, args or {"city": "Paris"})
        return texts.next()

    return handle


@pytest.fixture
def stub(openai_server: OpenAIStubServer) -> OpenAIStubServer:
    """The suite's loopback server, named for these tests."""
    return openai_server


def chat_openai(server: OpenAIStubServer, **kwargs: Any) -> Any:
    """A real ``ChatOpenAI`` pointed at the loopback server."""
    from langchain_openai import ChatOpenAI

    kwargs.setdefault("max_retries", 0)
    return ChatOpenAI(model="ra-stub", base_url=server.base_url, api_key="sk-test", **kwargs)
