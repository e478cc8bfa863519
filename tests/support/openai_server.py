"""A real OpenAI-compatible HTTP server on 127.0.0.1, scripted for tests and benchmarks.

:class:`OpenAIStubServer` runs an asyncio HTTP/1.1 server in a background
thread on a free loopback port. It answers

- ``POST /v1/chat/completions`` (``n`` choices, usage, logprobs passthrough,
  ``stream: true`` as server-sent events),
- ``GET /v1/models``,
- ``POST /api/rewardanything`` and ``POST /api/rewardanything_batch`` (the
  reference ``rewardanything serve`` API),

so one server can play the sampler *and* the RewardAnything judge: a chat
request whose user message is the judge's JSON input gets a judge verdict
computed from the candidates, any other gets sampled-looking answers.

Every answer can be scripted (a :class:`Completion`, plain text, a raw JSON
body) or replaced by a :class:`Fault`: a hang (the client times out), an HTTP
error status (429 with ``Retry-After``), a dropped connection, a garbage body.
Requests are logged, and the server records how many were in flight at once.
The HTTP layer is hand-written on asyncio streams so that faults are exact (a
dropped connection really closes the socket mid-request).

Example:
    >>> import httpx
    >>> with OpenAIStubServer(models=["ra-judge"]) as server:
    ...     server.script("Hello!")
    ...     body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    ...     reply = httpx.post(f"{server.base_url}/chat/completions", json=body).json()
    >>> reply["choices"][0]["message"]["content"]
    'Hello!'
    >>> server.requests[0].path
    '/v1/chat/completions'

Run it as a separate process (benchmarks keep its CPU time out of theirs)::

    python -m tests.support.openai_server --sampler-latency 0.05 --judge-latency 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "Completion",
    "Fault",
    "OpenAIStubServer",
    "RecordedRequest",
    "Reply",
    "is_judge_request",
    "judge_text",
    "TRUNCATED_JUDGE_TEXT",
]

#: A judge generation cut off by ``max_tokens``: no closing ``</think>``, no JSON.
TRUNCATED_JUDGE_TEXT = "<think>\nLet me compare the responses. model-1 is direct, while model-2"

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}
_SCORE_MARKER = re.compile(r"score=([1-5])")


@dataclass(frozen=True)
class Fault:
    """A failure to inject instead of an answer.

    Build one with the class methods: :meth:`hang`, :meth:`error`,
    :meth:`rate_limit`, :meth:`drop`, :meth:`garbage`.

    Example:
        >>> Fault.rate_limit(retry_after=0.01).status
        429
    """

    kind: Literal["hang", "status", "drop", "garbage", "trickle"]
    status: int = 500
    retry_after: float | None = None
    body: bytes = b""
    seconds: float = 30.0
    message: str = ""
    shape: Literal["openai", "fastapi"] = "openai"
    interval: float = 0.5

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Never answer (for ``seconds``, or until the client gives up)."""
        return cls(kind="hang", seconds=seconds)

    @classmethod
    def error(
        cls,
        status: int = 500,
        *,
        retry_after: float | None = 0.01,
        message: str = "",
        shape: Literal["openai", "fastapi"] = "openai",
    ) -> Fault:
        """Answer with an HTTP error status and an error body.

        ``retry_after`` (seconds) is sent as ``retry-after-ms`` and ``retry-after``:
        the OpenAI SDK honours it before its own backoff, which keeps retry
        tests fast; ``None`` sends no header. ``shape="fastapi"`` sends
        ``{"detail": message}`` (the reference server, ``transformers serve``)
        instead of OpenAI's ``{"error": {"message": ...}}``.
        """
        return cls(kind="status", status=status, retry_after=retry_after, message=message, shape=shape)

    @classmethod
    def trickle(cls, *, interval: float = 0.5, seconds: float = 30.0) -> Fault:
        """Answer 200 headers, then one byte of body every ``interval`` seconds (a slow-loris server)."""
        return cls(kind="trickle", interval=interval, seconds=seconds)

    @classmethod
    def rate_limit(cls, *, retry_after: float = 0.01) -> Fault:
        """Answer 429 Too Many Requests with a ``Retry-After``."""
        return cls(kind="status", status=429, retry_after=retry_after)

    @classmethod
    def drop(cls) -> Fault:
        """Read the request, then close the socket without a byte of answer."""
        return cls(kind="drop")

    @classmethod
    def garbage(cls, body: bytes = b"<html>502 upstream \x00\xff gone</html>") -> Fault:
        """Answer 200 ``application/json`` with a body that is not JSON."""
        return cls(kind="garbage", body=body)


@dataclass(frozen=True)
class Completion:
    """A scripted chat completion.

    Attributes:
        texts: One text per choice; a shorter list is cycled up to the request's ``n``.
        finish_reason: Finish reason of every choice.
        logprobs: Per choice, the ``logprobs`` object to pass through (or ``None``).
        prompt_tokens: Usage to report (``None``: a word count of the messages).
        completion_tokens: Usage to report (``None``: a word count of the texts).
        delay: Extra seconds before answering.
        choices: Choices to return whatever ``n`` says (``None``: honour ``n``).

    Example:
        >>> Completion(texts=["a", "b"]).texts
        ['a', 'b']
    """

    texts: list[str] = field(default_factory=lambda: ["ok"])
    finish_reason: str = "stop"
    logprobs: list[Any] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    delay: float = 0.0
    choices: int | None = None

    @classmethod
    def truncated_judge(cls) -> Completion:
        """A judge answer cut off by ``max_tokens`` (``finish_reason="length"``)."""
        return cls(texts=[TRUNCATED_JUDGE_TEXT], finish_reason="length")


#: What a handler or a script entry answers: text, a :class:`Completion`, a raw JSON body or a :class:`Fault`.
Reply: TypeAlias = "str | Completion | Fault | dict[str, Any] | list[Any]"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it.

    Attributes:
        method: ``GET`` or ``POST``.
        path: The path, ``/v1`` prefix kept.
        headers: Lower-cased header names.
        body: The decoded JSON body (``None`` when empty or not JSON).
        received_at: ``time.perf_counter()`` on arrival.
        query: The raw query string (after ``?``), empty when none.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    received_at: float
    query: str = ""

    @property
    def route(self) -> str:
        """The path without the ``/v1`` prefix (``/chat/completions``, ``/api/rewardanything``...)."""
        return self.path[3:] if self.path.startswith("/v1/") else self.path

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a completion request (empty otherwise)."""
        body = self.body if isinstance(self.body, dict) else {}
        messages = body.get("messages", [])
        return list(messages) if isinstance(messages, list) else []

    @property
    def kind(self) -> str:
        """``judge``, ``sampler``, ``rewardanything``, ``models`` or ``other``."""
        if self.route.startswith("/api/rewardanything"):
            return "rewardanything"
        if self.route == "/models" or self.path == "/health":
            return "models"
        if self.route == "/chat/completions":
            return "judge" if is_judge_request(self) else "sampler"
        return "other"

    @property
    def judge_input(self) -> dict[str, Any] | None:
        """The judge's ``{"principle", "prompt", "responses"}`` input, for judge requests."""
        for message in reversed(self.messages):
            if message.get("role") != "user" or not isinstance(message.get("content"), str):
                continue
            try:
                data = json.loads(message["content"])
            except ValueError:
                return None
            if isinstance(data, dict) and {"principle", "prompt", "responses"} <= set(data):
                return data
            return None
        return None


def is_judge_request(request: RecordedRequest) -> bool:
    """Whether a chat request carries a RewardAnything judge input (a predicate for :meth:`script`).

    Example:
        >>> body = {"messages": [{"role": "user", "content": '{"principle": "p", "prompt": "q", "responses": {}}'}]}
        >>> is_judge_request(RecordedRequest("POST", "/v1/chat/completions", {}, body, 0.0))
        True
    """
    return request.judge_input is not None


def score_by_marker(principle: str, prompt: str, responses: Mapping[str, str]) -> dict[str, int]:
    """The default judge scorer: ``score=N`` written in a response, else 3.

    Example:
        >>> score_by_marker("p", "q", {"a": "meh score=2", "b": "no marker"})
        {'a': 2, 'b': 3}
    """
    out: dict[str, int] = {}
    for name, text in responses.items():
        match = _SCORE_MARKER.search(text)
        out[name] = int(match.group(1)) if match else 3
    return out


def _ranking(scores: Mapping[str, int]) -> list[str]:
    order = list(scores)
    return sorted(order, key=lambda name: (-scores[name], order.index(name)))


def judge_text(scores: Mapping[str, int], ranking: list[str] | None = None, *, thoughts: str = "") -> str:
    """A RewardAnything-style generation: ``<think>`` reasoning, then the JSON verdict.

    Example:
        >>> judge_text({"model-1": 2, "model-2": 4}).splitlines()[-1]
        '{"scores": {"model-1": 2, "model-2": 4}, "best-to-worst": ["model-2", "model-1"]}'
    """
    ranking = ranking if ranking is not None else _ranking(scores)
    thoughts = thoughts or f"Comparing {', '.join(scores)} against the principle."
    verdict = json.dumps({"scores": dict(scores), "best-to-worst": ranking})
    return f"<think>\n{thoughts}\n</think>\n{verdict}"


Scorer = Callable[[str, str, Mapping[str, str]], Mapping[str, int]]
SampleText = Callable[[RecordedRequest, int], str]
Handler = Callable[[RecordedRequest], "Reply | None"]


def _default_sample_text(request: RecordedRequest, index: int) -> str:
    users = [m.get("content", "") for m in request.messages if m.get("role") == "user"]
    return f"answer {index} to: {users[-1] if users else ''}"


def _words(text: str) -> int:
    return len(text.split())


class OpenAIStubServer:
    """An OpenAI-compatible (and ``rewardanything serve``-compatible) server on 127.0.0.1.

    Args:
        models: Model ids listed by ``GET /v1/models``; the first names completions.
        sampler_latency: Seconds before answering a non-judge chat request.
        judge_latency: Seconds before answering a judge request (chat or reference API).
        max_choices: Return at most this many choices whatever ``n`` asks
            (``1`` mimics a provider that ignores ``n``); ``None`` honours ``n``.
        scorer: ``(principle, prompt, responses) -> {name: 1..5}`` for automatic
            judge answers (default: ``score=N`` markers, else 3).
        sample_text: ``(request, i) -> text`` for automatic sampler answers.
        port: Port to bind (0: a free one).

    Attributes:
        requests: Every request received, in arrival order.
        model_extras: Extra fields of every ``GET /v1/models`` entry (e.g.
            vLLM's ``{"max_model_len": 8192}``).
        max_in_flight: Per request kind (``judge``, ``sampler``, ``rewardanything``,
            ``models``, ``all``), the most requests in flight at once.
        handler: Optional ``fn(request) -> Reply | None`` consulted after the
            script and before the automatic answers (``None`` falls through).

    Example:
        >>> with OpenAIStubServer(max_choices=1) as server:
        ...     server.base_url.startswith("http://127.0.0.1:")
        True

        Streaming, ``n`` choices and logprobs through the ``openai`` SDK:

        >>> import openai
        >>> logprobs = {"content": [{"token": "4", "logprob": -0.1, "bytes": None, "top_logprobs": []}]}
        >>> with OpenAIStubServer() as server, openai.OpenAI(base_url=server.base_url, api_key="x") as client:
        ...     server.script(Completion(texts=["Streamed, sixteen characters at a time."]))
        ...     chunks = list(client.chat.completions.create(
        ...         model="m", messages=[{"role": "user", "content": "hi"}], n=2, stream=True,
        ...         stream_options={"include_usage": True}))
        ...     server.script(Completion(texts=["4"], logprobs=[logprobs]))
        ...     scored = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        >>> "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == 1)
        'Streamed, sixteen characters at a time.'
        >>> chunks[-1].usage.completion_tokens  # 6 words in each of 2 choices
        12
        >>> scored.choices[0].logprobs.content[0].logprob
        -0.1
    """

    def __init__(
        self,
        *,
        models: list[str] | None = None,
        sampler_latency: float = 0.0,
        judge_latency: float = 0.0,
        max_choices: int | None = None,
        scorer: Scorer = score_by_marker,
        sample_text: SampleText = _default_sample_text,
        port: int = 0,
        batch_reversed: bool = False,
    ) -> None:
        self.models = list(models or ["ra-stub"])
        # The reference server answers a batch in completion order; reversed is the worst case.
        self.batch_reversed = batch_reversed
        self.sampler_latency = sampler_latency
        self.judge_latency = judge_latency
        self.max_choices = max_choices
        self.scorer = scorer
        self.sample_text = sample_text
        self.handler: Handler | None = None
        self.model_extras: dict[str, Any] = {}
        self.requests: list[RecordedRequest] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self._port = port
        self._rules: list[tuple[Callable[[RecordedRequest], bool] | None, deque[Reply]]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.start()

    # -- lifecycle --------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port."""
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def root_url(self) -> str:
        """The server root, ``http://127.0.0.1:PORT`` (the reference API lives under ``/api``)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def open_connections(self) -> int:
        """Client connections currently open (a client that closes its pool brings this to 0)."""
        return len(self._connections)

    def wait_connections_closed(self, timeout: float = 10.0) -> bool:
        """Wait until every client connection is closed; ``False`` if some are still open after ``timeout`` s.

        Returns as soon as the last one closes. A close can wait on a finalizer, a
        loop in another thread or a garbage-collector pause (0.3-0.45 s each on a
        loaded 2-core machine), hence seconds rather than a fraction of one. Not
        much longer: litellm's aiohttp pool drops a connection idle for 15 s
        (``AIOHTTP_KEEPALIVE_TIMEOUT``), and a wait past that could not tell a
        ``close()`` that worked from one that left the connection open.
        """
        deadline = time.monotonic() + timeout
        while self._connections and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._connections

    def start(self) -> None:
        """Start serving in a background thread (called by the constructor)."""
        if self._thread is not None:
            return
        ready = threading.Event()
        errors: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve_forever, args=(ready, errors), daemon=True)
        self._thread.name = "openai-stub-server"
        self._thread.start()
        if not ready.wait(10) or errors:
            raise RuntimeError(f"stub server did not start: {errors[0] if errors else 'timeout'}")

    def _serve_forever(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._connection, "127.0.0.1", self._port, limit=2**24, backlog=1024)
            )
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            return
        self._port = self._server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._shutdown())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def close(self) -> None:
        """Stop the server, closing open connections (idempotent)."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> OpenAIStubServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scripting --------------------------------------------------------

    def script(self, *replies: Reply, when: Callable[[RecordedRequest], bool] | None = None) -> None:
        """Queue answers for the next matching requests, consumed in order.

        Args:
            replies: Texts, :class:`Completion` s, raw JSON bodies or :class:`Fault` s.
            when: Only requests for which this is true consume these replies
                (e.g. :func:`is_judge_request`); ``None`` matches every POST.
                GET ``/v1/models`` and ``/health`` take scripted :class:`Fault` s
                only through a ``when`` that matches them.

        Example:
            >>> with OpenAIStubServer() as server:
            ...     server.script(Fault.error(500), Fault.rate_limit(), when=is_judge_request)
            ...     server.pending()
            2
        """
        with self._lock:
            self._rules.append((when, deque(replies)))

    def of_kind(self, kind: str) -> list[RecordedRequest]:
        """The requests received of one :attr:`RecordedRequest.kind` (``judge``, ``models``...), in order.

        Example:
            >>> with OpenAIStubServer() as server:
            ...     server.of_kind("judge")
            []
        """
        with self._lock:
            return [r for r in self.requests if r.kind == kind]

    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return sum(len(queue) for _, queue in self._rules)

    def reset(self) -> None:
        """Forget scripts, the request log and the in-flight maxima."""
        with self._lock:
            self._rules.clear()
            self.requests.clear()
            self.max_in_flight.clear()

    def _scripted(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            for when, queue in self._rules:
                if queue and (request.method == "POST" if when is None else when(request)):
                    return queue.popleft()
        return None

    # -- HTTP -------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines:
                    if line:
                        key, _, value = line.partition(":")
                        headers[key.strip().lower()] = value.strip()
                if "content-length" in headers:
                    raw = await reader.readexactly(int(headers["content-length"]))
                elif headers.get("transfer-encoding", "").lower() == "chunked":
                    raw = await _read_chunked(reader)
                else:
                    raw = b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                path, _, query = target.partition("?")
                request = RecordedRequest(method, path, headers, body, time.perf_counter(), query)
                keep_open = await self._handle(request, reader, writer)
                if not keep_open or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # the server is closing; ending quietly keeps asyncio from logging the cancellation
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _handle(
        self, request: RecordedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        kind = request.kind
        with self._lock:
            self.requests.append(request)
        for key in (kind, "all"):
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            self.max_in_flight[key] = max(self.max_in_flight.get(key, 0), self.in_flight[key])
        try:
            return await self._answer(request, reader, writer)
        finally:
            for key in (kind, "all"):
                self.in_flight[key] -= 1

    async def _answer(
        self, request: RecordedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if request.method == "GET" and request.route == "/models":
            scripted = self._scripted(request)
            if isinstance(scripted, Fault):
                return await self._fault(scripted, reader, writer)
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "stub", **self.model_extras} for m in self.models
            ]
            return await _send_json(writer, 200, {"object": "list", "data": data})
        if request.method == "GET" and request.path == "/health":
            scripted = self._scripted(request)
            if isinstance(scripted, Fault):
                return await self._fault(scripted, reader, writer)
            return await _send_json(writer, 200, {"status": "healthy", "service": "RewardAnything API"})
        if request.method != "POST" or request.kind not in ("judge", "sampler", "rewardanything"):
            return await _send_json(writer, 404, {"error": {"message": f"no route {request.method} {request.path}"}})
        reply = self._scripted(request)
        if reply is None and self.handler is not None:
            reply = self.handler(request)
        latency = self.judge_latency if request.kind in ("judge", "rewardanything") else self.sampler_latency
        if latency:
            await asyncio.sleep(latency)
        if isinstance(reply, Fault):
            return await self._fault(reply, reader, writer)
        if isinstance(reply, (dict, list)):
            return await _send_json(writer, 200, reply)
        if request.kind == "rewardanything":
            return await _send_json(writer, 200, self._reference_answer(request))
        completion = self._completion(request, reply)
        if completion.delay:
            await asyncio.sleep(completion.delay)
        body = request.body if isinstance(request.body, dict) else {}
        if body.get("stream"):
            return await self._stream(writer, request, completion)
        return await _send_json(writer, 200, self._completion_body(request, completion))

    async def _fault(self, fault: Fault, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if fault.kind == "hang":
            # Wait for the client to give up (EOF) rather than a fixed time.
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(1), fault.seconds)
            return False
        if fault.kind == "drop":
            writer.transport.abort()
            return False
        if fault.kind == "garbage":
            return await _send(writer, 200, fault.body, "application/json")
        if fault.kind == "trickle":
            # Each read gets a byte before a per-read timeout fires; only a whole-call limit stops this.
            count = max(int(fault.seconds / fault.interval), 1)
            head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {count + 2}\r\n\r\n{{"
            writer.write(head.encode("latin-1"))
            with contextlib.suppress(ConnectionError):
                for _ in range(count):
                    await writer.drain()
                    await asyncio.sleep(fault.interval)
                    writer.write(b" ")
                writer.write(b"}")
                await writer.drain()
            return False
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after-ms"] = str(int(fault.retry_after * 1000) or 1)
            headers["retry-after"] = f"{max(fault.retry_after, 0.001):g}"
        text = fault.message or f"stub fault {fault.status}"
        message: dict[str, Any] = {"error": {"message": text, "type": "stub_fault", "code": fault.status}}
        if fault.shape == "fastapi":
            message = {"detail": text}
        return await _send(writer, fault.status, json.dumps(message).encode(), "application/json", headers)

    # -- answers ----------------------------------------------------------

    def _completion(self, request: RecordedRequest, reply: str | Completion | None) -> Completion:
        if isinstance(reply, Completion):
            return reply
        if isinstance(reply, str):
            return Completion(texts=[reply])
        judge_input = request.judge_input
        if judge_input is not None:
            scores = dict(self.scorer(judge_input["principle"], judge_input["prompt"], judge_input["responses"]))
            return Completion(texts=[judge_text(scores)])
        n = _requested_n(request)
        return Completion(texts=[self.sample_text(request, i) for i in range(n)])

    def _completion_body(self, request: RecordedRequest, completion: Completion) -> dict[str, Any]:
        texts = self._choice_texts(request, completion)
        choices = []
        for i, text in enumerate(texts):
            choice: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": completion.finish_reason,
                "logprobs": completion.logprobs[i % len(completion.logprobs)] if completion.logprobs else None,
            }
            choices.append(choice)
        return {
            "id": f"chatcmpl-stub-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self._model_of(request),
            "choices": choices,
            "usage": self._usage(request, completion, texts),
        }

    def _choice_texts(self, request: RecordedRequest, completion: Completion) -> list[str]:
        count = completion.choices if completion.choices is not None else _requested_n(request)
        if self.max_choices is not None:
            count = min(count, self.max_choices)
        return [completion.texts[i % len(completion.texts)] for i in range(count)]

    def _usage(self, request: RecordedRequest, completion: Completion, texts: list[str]) -> dict[str, int]:
        prompt = completion.prompt_tokens
        if prompt is None:
            prompt = sum(_words(str(m.get("content", ""))) for m in request.messages)
        done = completion.completion_tokens
        if done is None:
            done = sum(_words(t) for t in texts)
        return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}

    def _model_of(self, request: RecordedRequest) -> str:
        body = request.body if isinstance(request.body, dict) else {}
        model = body.get("model")
        return model if isinstance(model, str) and model else self.models[0]

    async def _stream(self, writer: asyncio.StreamWriter, request: RecordedRequest, completion: Completion) -> bool:
        texts = self._choice_texts(request, completion)
        ident, model, created = f"chatcmpl-stub-{next(self._ids)}", self._model_of(request), int(time.time())
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        writer.write(head)

        async def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
            chunk.update(choices=choices, **extra)
            data = f"data: {json.dumps(chunk)}\n\n".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()

        for i, text in enumerate(texts):
            await event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            pieces = [text[k : k + 16] for k in range(0, len(text), 16)] or [""]
            for piece in pieces:
                await event([{"index": i, "delta": {"content": piece}, "finish_reason": None}])
            await event([{"index": i, "delta": {}, "finish_reason": completion.finish_reason}])
        body = request.body if isinstance(request.body, dict) else {}
        if (body.get("stream_options") or {}).get("include_usage"):
            await event([], usage=self._usage(request, completion, texts))
        done = b"data: [DONE]\n\n"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
        await writer.drain()
        return True

    def _reference_answer(self, request: RecordedRequest) -> Any:
        if request.route.endswith("_batch"):
            items = request.body if isinstance(request.body, list) else []
            answers = [self._reference_one(item) for item in items]
            return answers[::-1] if self.batch_reversed else answers
        return self._reference_one(request.body if isinstance(request.body, dict) else {})

    def _reference_one(self, item: Mapping[str, Any]) -> dict[str, Any]:
        responses = dict(item.get("responses") or {})
        scores = dict(self.scorer(str(item.get("principle", "")), str(item.get("prompt", "")), responses))
        return {
            "thoughts": f"Comparing {', '.join(responses)} against the principle.",
            "results": {"scores": scores, "best-to-worst": _ranking(scores)},
        }


def _requested_n(request: RecordedRequest) -> int:
    body = request.body if isinstance(request.body, dict) else {}
    n = body.get("n")
    return n if isinstance(n, int) and n > 0 else 1


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str] | None = None,
) -> bool:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"content-type: {content_type}"]
    lines.append(f"content-length: {len(body)}")
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    return True


async def _send_json(writer: asyncio.StreamWriter, status: int, payload: Any) -> bool:
    return await _send(writer, status, json.dumps(payload).encode(), "application/json")


@contextlib.contextmanager
def serve(**kwargs: Any) -> Iterator[OpenAIStubServer]:
    """Context manager shorthand: ``with serve(judge_latency=0.1) as server: ...``."""
    server = OpenAIStubServer(**kwargs)
    try:
        yield server
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted, printing the base URL on the first line of stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sampler-latency", type=float, default=0.0)
    parser.add_argument("--judge-latency", type=float, default=0.0)
    parser.add_argument("--max-choices", type=int, default=None)
    parser.add_argument("--model", action="append", dest="models")
    args = parser.parse_args(argv)
    server = OpenAIStubServer(
        port=args.port,
        models=args.models,
        sampler_latency=args.sampler_latency,
        judge_latency=args.judge_latency,
        max_choices=args.max_choices,
    )
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
