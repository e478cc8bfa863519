"""A judge served by the reference ``rewardanything serve`` API.

The reference package's server renders, masks, generates and parses on its
side; it answers ``{"thoughts": str, "results": {"scores", "best-to-worst"}}``
keyed by the caller's own names. :class:`RewardAnythingServerJudge` posts to
``/api/rewardanything`` (or ``/api/rewardanything_batch`` for several
requests) with ``httpx``, retries connection errors and 409/429/5xx (not a
timed-out generation unless ``retry_timeouts=True``: the server is still busy
with it), bounds each request as a whole by ``timeout``, and checks every
answer with the same rules as :func:`~ra_guard.judges.parsing.parse_verdict`.
:meth:`RewardAnythingServerJudge.aping` asks the server's ``GET /health``.

Example:
    >>> judge = RewardAnythingServerJudge("http://gpu-1:8000")
    >>> judge.name
    'rewardanything:gpu-1:8000'
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx

from ra_guard._http import InjectedClient, PerLoop, borrowed_transport, server_explanation
from ra_guard._redact import redact_secrets
from ra_guard._trace_state import record_target, server_of
from ra_guard.exceptions import ConfigurationError, JudgeError, JudgeOutputError, JudgeTimeoutError
from ra_guard.judges._http import RetryPolicy, post_json
from ra_guard.judges._url import install_log_redaction, parse_judge_url
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.judges.format import RenderedRequest
from ra_guard.judges.parsing import ReasonCode, parse_verdict
from ra_guard.verdict import Verdict

__all__ = ["RewardAnythingServerJudge"]


async def _close_client(client: httpx.AsyncClient) -> None:
    await client.aclose()


def batch_name(index: int, name: str) -> str:
    """A candidate's name in a batch call: its request's index, a slash, its own name.

    The reference server (1.0.1) returns batch answers in completion order; the
    prefix lets each answer be matched to its request (the server masks names
    before the model sees them, so the prefix does not reach the judge model).

    Example:
        >>> batch_name(2, "short")
        '2/short'
    """
    return f"{index}/{name}"


def _unbatch(answer: Any) -> tuple[int | None, Any]:
    """The request index an answer's names carry, and the answer in the caller's own names."""
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, dict):
        return None, answer
    scores = results.get("scores")
    if not isinstance(scores, dict) or not scores:
        return None, answer
    prefixes = {str(name).partition("/")[0] for name in scores}
    if len(prefixes) != 1:
        return None, answer
    prefix = prefixes.pop()
    if not prefix.isdigit():
        return None, answer

    def strip(name: Any) -> Any:
        return name.partition("/")[2] if isinstance(name, str) and name.startswith(prefix + "/") else name

    unprefixed = {
        key: (
            {strip(n): v for n, v in value.items()}
            if isinstance(value, dict)
            else [strip(n) for n in value]
            if isinstance(value, list)
            else value
        )
        for key, value in results.items()
    }
    return int(prefix), {**answer, "results": unprefixed}


class RewardAnythingServerJudge(Judge):
    """A RewardAnything judge behind the reference package's HTTP API.

    Args:
        base_url: The server root, e.g. ``http://gpu-1:8000`` (a trailing
            ``/api`` or ``/v1`` is accepted and dropped).
        timeout: Seconds one HTTP request may take in total (the reference
            generates the whole thinking before answering: leave room).
        max_retries: Retries after the first attempt on 409/429/5xx and
            connection errors (backoff from 0.5 s doubling, or ``Retry-After``).
        retry_timeouts: Also retry a request that timed out (and 408/504).
        max_concurrency: Connections in flight at once (per event loop).
        batch: Let :meth:`ajudge_many` send one ``/api/rewardanything_batch``
            call. The reference server (1.0.1) returns batch results in
            completion order, not request order, so candidates travel under
            :func:`batch_name` (request index, slash, name) and each answer is
            matched to its request by those names; an answer naming no request
            fails that request alone. Off by default. With it on, a guard
            sends each judging round (one request per policy) as one batch
            call (see :attr:`~ra_guard.judges.base.Judge.batches`).
        http_client: Your own ``httpx.AsyncClient`` (proxies, TLS settings,
            ``httpx.MockTransport`` in tests). It stays yours: :meth:`aclose`
            leaves it open. The judge's URL credentials and ``timeout`` are sent
            with each of its requests. Its connections belong to the event loop
            it is first used on, so the judge refuses a call from another loop
            with a :class:`ConfigurationError`; the sync API (``judge.judge``,
            ``guard.run``) runs on ra-guard's background loop. To serve every
            loop, pass ``transport=`` instead.
        transport: An ``httpx.AsyncBaseTransport`` (``httpx.MockTransport``,
            ``httpx.ASGITransport``...) from which the judge builds its own
            client for each event loop, so the sync and async APIs both work. It
            stays yours: closing the judge leaves it open.

    Raises:
        ConfigurationError: The URL has no http(s) scheme or host, an argument
            is out of range, or both ``http_client`` and ``transport`` are given.

    Example:
        >>> RewardAnythingServerJudge("http://gpu-1:8000/api", timeout=30).base_url
        'http://gpu-1:8000'
        >>> mock = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": "healthy"}))
        >>> RewardAnythingServerJudge("http://gpu-1:8000", transport=mock).ping() is None  # no network
        True
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 300.0,
        max_retries: int = 3,
        retry_timeouts: bool = False,
        max_concurrency: int = 16,
        batch: bool = False,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parsed = parse_judge_url(base_url, example="rewardanything:URL")
        if http_client is not None and transport is not None:
            raise ConfigurationError("give http_client or transport, not both (a client carries its own transport)")
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries}")
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be positive seconds, got {timeout}")
        url = parsed.base_url
        for suffix in ("/api", "/v1"):
            url = url.removesuffix(suffix)
        self.base_url = url
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries=max_retries, retry_timeouts=retry_timeouts)
        self.max_concurrency = max_concurrency
        self.batch = batch
        self.name = f"rewardanything:{parsed.host}"
        # The reference server's own API (not OpenAI's): a provider name of its own, and its address.
        address, port = server_of(self.base_url)
        record_target(self.name, provider="rewardanything", server_address=address, server_port=port)
        self._auth = parsed.basic_auth
        self._query = parsed.query
        self._transport = transport
        self._injected: InjectedClient[httpx.AsyncClient] | None = None
        if http_client is not None:
            self._injected = InjectedClient(http_client, owner=f"RewardAnythingServerJudge({self.base_url})")
        self._clients: PerLoop[httpx.AsyncClient] = PerLoop(self._new_client, closer=_close_client)
        # Credentials travel as basic auth and query parameters, never in a URL that httpx logs;
        # they go with each request, so that a client passed in gets them too.
        # Only what the URL carries is set per request: a client passed in keeps its own auth otherwise.
        self._request_options: dict[str, Any] = {"timeout": httpx.Timeout(timeout, pool=None)}
        if self._auth is not None:
            self._request_options["auth"] = self._auth
        if self._query:
            self._request_options["params"] = self._query
        install_log_redaction()

    @property
    def batches(self) -> bool:  # type: ignore[override]
        """Whether :meth:`ajudge_many` sends one batch call: ``batch``."""
        return self.batch

    def __repr__(self) -> str:
        return f"RewardAnythingServerJudge({self.base_url!r})"

    def _new_client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        # The pool's connection limit is the concurrency limit; its pool timeout stays unbounded so
        # that calls queue for a connection instead of failing while others are in flight.
        timeout = httpx.Timeout(self.timeout, pool=None)
        transport = borrowed_transport(self._transport) if self._transport is not None else None
        return httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)

    async def _client(self) -> httpx.AsyncClient:
        """The caller's client (checked to be on its loop), else this loop's own."""
        if self._injected is not None:
            return self._injected.get()
        return await self._clients.get()

    async def _post(self, path: str, payload: Any) -> Any:
        client = await self._client()
        url = f"{self.base_url}{path}"
        return await post_json(
            client,
            url,
            payload,
            retry=self.retry,
            judge=self.name,
            timeout=self.timeout,
            where=url,
            request_options=self._request_options,
        )

    async def aping(self) -> None:
        """Check that the reference server answers: ``GET /health`` must say ``healthy``.

        Raises:
            JudgeTimeoutError: No answer within ``timeout``.
            JudgeError: The server cannot be reached or is not the reference server.

        Example:
            >>> # await RewardAnythingServerJudge("http://gpu-1:8000").aping()
        """
        client = await self._client()
        where = f"{self.base_url}/health"
        try:
            response = await asyncio.wait_for(client.get(where, **self._request_options), self.timeout)
        except TimeoutError:
            raise JudgeTimeoutError(f"no answer within {self.timeout:g}s from {where}", judge=self.name) from None
        except httpx.ConnectError as exc:
            raise JudgeError(
                f"cannot connect to {self.name.split(':', 1)[1]} ({redact_secrets(str(exc))}); "
                f"is `rewardanything serve` running at {self.base_url}?",
                judge=self.name,
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            message = f"checking {where} failed: {redact_secrets(repr(exc))}"
            raise JudgeError(message, judge=self.name, retryable=True) from exc
        if response.status_code == 404:
            raise JudgeError(
                f"HTTP 404 at {where}: not the reference `rewardanything serve` API (it answers /health and "
                "/api/rewardanything); for vLLM or another OpenAI-compatible server use 'openai-compat:URL/v1'",
                judge=self.name,
            )
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if not response.is_success or not isinstance(body, dict) or body.get("status") != "healthy":
            detail = server_explanation(body, fallback=response.reason_phrase)
            raise JudgeError(f"HTTP {response.status_code} from {where}: {detail}", judge=self.name)

    @staticmethod
    def _payload(request: JudgeRequest) -> dict[str, Any]:
        if request.permutation is not None:
            raise NotImplementedError(
                "RewardAnythingServerJudge cannot present candidates in a chosen permutation: the reference "
                "server orders them itself; use OpenAICompatJudge against the same model for permutations"
            )
        return {
            "principle": request.principle,
            "prompt": request.prompt,
            "responses": dict(request.responses),
            "mask_responses": request.mask,
        }

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        """Judge one request through ``POST /api/rewardanything``.

        Raises:
            JudgeTimeoutError: No answer within ``timeout``.
            JudgeError: A transport or HTTP failure (``retryable`` where a later try could succeed).
            JudgeOutputError: The answer is not a usable verdict.
        """
        answer = await self._post("/api/rewardanything", self._payload(request))
        return self._verdict(answer, request)

    async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
        """Judge several requests: one batch call when ``batch=True``, else side by side.

        A failed batch call fails every request in it (returned in place, not raised).
        """
        if not self.batch or len(requests) < 2:
            return await super().ajudge_many(requests)
        try:
            payload = [self._payload(r) for r in requests]
            for index, item in enumerate(payload):
                item["responses"] = {batch_name(index, name): text for name, text in item["responses"].items()}
            answers = await self._post("/api/rewardanything_batch", payload)
        except (JudgeError, NotImplementedError) as exc:
            return [exc for _ in requests]
        if not isinstance(answers, list) or len(answers) != len(requests):
            count = len(answers) if isinstance(answers, list) else type(answers).__name__
            error = JudgeError(
                f"the batch endpoint answered {count} results for {len(requests)} requests", judge=self.name
            )
            return [error for _ in requests]
        # The reference answers in completion order: each answer's names say which request it is.
        matched: dict[int, Any] = {}
        for position, answer in enumerate(answers):
            named, unprefixed = _unbatch(answer)
            matched.setdefault(position if named is None else named, unprefixed)
        results: list[Verdict | BaseException] = []
        for index, request in enumerate(requests):
            try:
                if index not in matched:
                    raise JudgeOutputError(
                        ReasonCode.MISSING_CANDIDATE.value,
                        f"no answer of the batch names this request's candidates ({batch_name(index, '...')})",
                        raw_text=json.dumps(answers, ensure_ascii=False)[:2000],
                        judge=self.name,
                    )
                results.append(self._verdict(matched[index], request))
            except JudgeError as exc:
                results.append(exc)
        return results

    def _verdict(self, answer: Any, request: JudgeRequest) -> Verdict:
        """Check a reference answer (already in the caller's names) and build the verdict."""
        raw_text = json.dumps(answer, ensure_ascii=False)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, dict):
            raise JudgeOutputError(
                ReasonCode.NOT_AN_OBJECT.value,
                "the answer has no 'results' object; expected {'thoughts': ..., 'results': {'scores': ...}}",
                raw_text=raw_text,
                judge=self.name,
            )
        # The server already unmasked the names: check them against the caller's own.
        identity = RenderedRequest(messages=[], masked_to_caller={name: name for name in request.responses})
        try:
            # The identity rendering holds no messages: name the shown texts so quotes are still caught.
            verdict = parse_verdict(
                json.dumps(results, ensure_ascii=False),
                identity,
                judge=self.name,
                candidates=[request.prompt, request.principle, *request.responses.values()],
            )
        except JudgeOutputError as exc:
            raise JudgeOutputError(exc.reason, str(exc).split("] ", 1)[-1], raw_text=raw_text, judge=self.name) from exc
        thoughts = answer.get("thoughts")
        return verdict.model_copy(
            update={"reasoning": thoughts if isinstance(thoughts, str) else "", "raw_text": raw_text}
        )

    async def aclose(self) -> None:
        """Close the running loop's HTTP client; an ``http_client`` you passed in stays open (it is yours)."""
        await self._clients.aclose()
