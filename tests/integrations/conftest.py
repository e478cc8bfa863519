"""Fixtures for the framework integrations: scripted agent turns on the loopback server, warning filters.

The suite runs with ``filterwarnings = error``; the few third-party warnings
LangChain and litellm raise are ignored by name in ``pyproject.toml``.

``ChatOpenAI`` models come from :func:`chat_openai`, each with an async HTTP
client of its own that the :func:`chat_clients` fixture closes on the test's
loop. langchain-openai's default is one async client per base URL for the whole
process: its pooled connections stay bound to the event loop of the test that
opened them, and a later test whose stub got the same port number (the same
base URL) would reuse them and fail with "Event loop is closed".
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
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


#: The async clients :func:`chat_openai` handed out inside :func:`closing_chat_clients` (``None``: outside).
_open_clients: list[httpx.AsyncClient] | None = None


@contextlib.asynccontextmanager
async def closing_chat_clients() -> AsyncIterator[list[httpx.AsyncClient]]:
    """Close, on leaving (on this loop), the async clients that :func:`chat_openai` handed out inside."""
    global _open_clients
    outer, _open_clients = _open_clients, []
    try:
        yield _open_clients
    finally:
        mine, _open_clients = _open_clients, outer
        for client in mine:
            await client.aclose()


@pytest.fixture
async def chat_clients() -> AsyncIterator[None]:
    """The test's ``ChatOpenAI`` models get async clients of their own, closed on the test's loop after it.

    Modules that call :func:`chat_openai` use it:
    ``pytestmark = pytest.mark.usefixtures("chat_clients")``.
    """
    async with closing_chat_clients():
        yield


def chat_openai(server: OpenAIStubServer, *, model: str = "ra-stub", **kwargs: Any) -> Any:
    """A real ``ChatOpenAI`` pointed at the loopback server, with an async HTTP client of its own.

    The client is closed by the :func:`chat_clients` fixture; an ``http_async_client``
    passed in is the caller's to close. Sync calls keep langchain-openai's shared sync
    client, which no event loop binds.
    """
    from langchain_openai import ChatOpenAI

    if "http_async_client" not in kwargs:
        if _open_clients is None:
            raise RuntimeError(
                "chat_openai() outside the chat_clients fixture: its async client would never be closed; "
                'add pytestmark = pytest.mark.usefixtures("chat_clients") to the test module'
            )
        kwargs["http_async_client"] = httpx.AsyncClient()
        _open_clients.append(kwargs["http_async_client"])
    kwargs.setdefault("max_retries", 0)
    return ChatOpenAI(model=model, base_url=server.base_url, api_key="sk-test", **kwargs)
