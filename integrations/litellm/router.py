"""A RewardAnything judge behind a litellm ``Router``: several endpoints, one model group.

Serve RewardAnything on several vLLM servers, list them under one model
group, and the router spreads judge calls across them, retries on another
deployment when one fails, and cools a failing one down.

Retries fit a judge, as the HTTP judges' do: :func:`router_judge` retries
connection errors and 429/5xx answers (on another deployment), but not a
generation that timed out, unless ``retry_timeouts=True``: the server is most
likely still working on the abandoned generation, and a retry only piles up.
The router's ``timeout`` bounds each read; ``call_timeout`` bounds the whole
judge call, retries included, so a server trickling bytes cannot hold it.

Example:
    >>> judge = router_judge(["http://gpu-1:8000/v1", "http://gpu-2:8000/v1"], model="WisdomShell/RewardAnything-8B-v1")
    >>> judge.name
    'litellm-router:rewardanything'
    >>> len(judge.router.registry().all())
    2
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from ra_guard._http import PerLoop, openai_explanation
from ra_guard._litellm import join_loop_clients, release_loop_clients
from ra_guard._redact import redact_secrets
from ra_guard.exceptions import ConfigurationError, JudgeError, JudgeTimeoutError, MissingDependencyError
from ra_guard.judges.chat import ChatAnswer, ChatJudge, answer_from_completion
from ra_guard.types import ChatMessage

__all__ = ["RouterJudge", "router_judge"]

#: The longest wait litellm's router makes between two retries by its own backoff (``MAX_RETRY_DELAY``,
#: 8 s, plus up to 0.75 s of jitter); a server's ``Retry-After`` (up to 60 s) can ask for longer.
_ROUTER_BACKOFF_CAP_S = 8.75


class _Computed:
    """The type of :data:`COMPUTED`: "derive this setting from the others"."""

    def __repr__(self) -> str:
        return "COMPUTED"


#: ``router_judge(call_timeout=COMPUTED)`` (the default): derived from ``timeout``, ``num_retries`` and backoff.
COMPUTED = _Computed()


class RouterJudge(ChatJudge):
    """Judge through a ``litellm.Router`` model group serving a RewardAnything model.

    Args:
        router: The router (its own load balancing, retries, cooldowns and
            fallbacks apply to every judge call).
        model: The model group name to call.
        temperature: Sampling temperature of the judge (0: deterministic).
        max_tokens: Room for the judge's reasoning and verdict.
        call_timeout: Seconds one judge call may take as a whole, the router's
            retries included (``None``: unbounded but for the decision's
            deadline). The router's own ``timeout`` bounds each read only, which
            a server trickling bytes never trips.
        **completion_kwargs: More arguments for ``router.acompletion``.

    Raises:
        ConfigurationError: ``call_timeout`` is not a positive number of seconds.

    Example:
        >>> from litellm import Router
        >>> router = Router(model_list=[{"model_name": "ra", "litellm_params": {
        ...     "model": "openai/RewardAnything-8B", "api_base": "http://gpu-1:8000/v1", "api_key": "EMPTY"}}])
        >>> RouterJudge(router, "ra").name
        'litellm-router:ra'
    """

    model: str

    def __init__(
        self,
        router: Any,
        model: str,
        *,
        temperature: float = 0.0,
        max_tokens: int | None = 4096,
        call_timeout: float | None = None,
        **completion_kwargs: Any,
    ) -> None:
        if call_timeout is not None and not call_timeout > 0:
            raise ConfigurationError(f"call_timeout must be positive seconds or None, got {call_timeout}")
        self.router = router
        self.call_timeout = call_timeout
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.completion_kwargs = completion_kwargs
        self.name = f"litellm-router:{model}"
        # The router sends through litellm's per-loop clients: counted here, closed by aclose().
        self._loop_clients: PerLoop[None] = PerLoop(join_loop_clients, closer=release_loop_clients)

    async def _chat(self, messages: list[ChatMessage], *, max_tokens: int | None) -> ChatAnswer:
        """One ``router.acompletion`` call within ``call_timeout``, its failures mapped to :class:`JudgeError`.

        Raises:
            JudgeTimeoutError: An attempt timed out (and the router did not retry it),
                or the whole call took longer than ``call_timeout``.
            JudgeError: Any other failure, after the router's retries.
        """
        from litellm.exceptions import Timeout

        kwargs: dict[str, Any] = {"temperature": self.temperature, **self.completion_kwargs}
        if max_tokens is not None:
            kwargs.setdefault("max_tokens", max_tokens)
        await self._loop_clients.get()
        call = self.router.acompletion(model=self.model, messages=messages, **kwargs)
        try:
            # The router's timeout bounds each read; wait_for bounds the call, retries included.
            response = await (call if self.call_timeout is None else asyncio.wait_for(call, self.call_timeout))
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            raise JudgeTimeoutError(
                f"no answer from the router within call_timeout={self.call_timeout:g}s (retries included)",
                judge=self.name,
                retryable=True,
            ) from None
        except Timeout as exc:
            raise JudgeTimeoutError(f"the router timed out: {exc}", judge=self.name, retryable=True) from exc
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            if isinstance(status, int):  # keep the server's own explanation, not just "Error code: 400"
                detail = f"HTTP {status}: {openai_explanation(exc)}"
            else:
                detail = redact_secrets(repr(exc))
            raise JudgeError(f"the router failed: {detail}", judge=self.name, retryable=True) from exc
        return answer_from_completion(response, judge=self.name, source="the router's answer")

    async def aclose(self) -> None:
        """Close the HTTP clients litellm cached for the running loop (once no other ra-guard backend uses them)."""
        await self._loop_clients.aclose()


def router_judge(
    endpoints: Sequence[str],
    *,
    model: str,
    group: str = "rewardanything",
    api_key: str = "EMPTY",
    num_retries: int = 3,
    retry_timeouts: bool = False,
    allowed_fails: int = 0,
    timeout: float = 60.0,
    call_timeout: float | _Computed | None = COMPUTED,
    completion_kwargs: Mapping[str, Any] | None = None,
    **router_kwargs: Any,
) -> RouterJudge:
    """A :class:`RouterJudge` over OpenAI-compatible ``endpoints`` all serving ``model``.

    Args:
        endpoints: Base URLs (``http://gpu-1:8000/v1``...).
        model: The model name the servers serve.
        group: The model group name inside the router.
        api_key: Key sent to the servers (vLLM accepts anything without ``--api-key``).
        num_retries: Retries per judge call after connection errors and
            429/5xx answers; each goes to a deployment not cooling down.
        retry_timeouts: Also retry an attempt that timed out. Off: the router is
            given a ``RetryPolicy(TimeoutErrorRetries=0)``, since a server whose
            generation timed out is most likely still working on it. A
            ``retry_policy`` (or ``model_group_retry_policy``) of your own in
            ``router_kwargs`` wins over this.
        allowed_fails: Failures a deployment may have (per minute) before it is
            cooled down; ``0`` takes a failing endpoint out of rotation at once, so
            that retries land on a live one.
        timeout: Seconds each read of an attempt may wait (the router's timeout;
            a non-streamed generation sends nothing until it is done).
        call_timeout: Seconds the whole judge call may take, retries included
            (see :class:`RouterJudge`). By default the most the settings above
            allow: every attempt its whole ``timeout`` plus litellm's longest
            backoff (or ``retry_after``) before each retry, that is
            ``timeout * (num_retries + 1) + max(retry_after, 8.75) * num_retries``.
            It never cuts a call the router would finish, and stops a server
            that trickles bytes; pass a smaller value (``timeout``, say) for a
            tighter bound, or ``None`` for none but the decision's deadline.
        completion_kwargs: Arguments for every judge call's ``router.acompletion``
            (``max_tokens``, ``response_format``, ``extra_body``...); ``temperature``
            and ``max_tokens`` here replace the judge's defaults (0 and 4096).
        **router_kwargs: More ``litellm.Router`` arguments (``routing_strategy``,
            ``allowed_fails``, ``cooldown_time``...).

    Raises:
        ConfigurationError: ``num_retries`` is negative, or ``timeout`` or
            ``call_timeout`` is not positive.

    Example:
        >>> judge = router_judge(["http://gpu-1:8000/v1"], model="WisdomShell/RewardAnything-8B-v1",
        ...                      completion_kwargs={"max_tokens": 2048, "extra_body": {"top_k": 1}})
        >>> judge.max_tokens, judge.completion_kwargs
        (2048, {'extra_body': {'top_k': 1}})
        >>> judge.call_timeout  # 60 s per attempt, 3 retries, up to 8.75 s of backoff before each
        266.25
        >>> judge.router.retry_policy.TimeoutErrorRetries  # a timed-out generation is not retried
        0
    """
    try:
        from litellm.router import Router
        from litellm.types.router import RetryPolicy
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("litellm", extra="litellm") from exc
    if num_retries < 0:
        raise ConfigurationError(f"num_retries must be 0 or more, got {num_retries}")
    if not timeout > 0:
        raise ConfigurationError(f"timeout must be positive seconds, got {timeout}")
    if isinstance(call_timeout, _Computed):
        backoff = max(float(router_kwargs.get("retry_after") or 0), _ROUTER_BACKOFF_CAP_S)
        call_timeout = timeout * (num_retries + 1) + backoff * num_retries
    if not retry_timeouts and "retry_policy" not in router_kwargs:
        # Other failures fall back to num_retries: litellm reads a policy field that is None as "not set".
        router_kwargs["retry_policy"] = RetryPolicy(TimeoutErrorRetries=0)
    model_list = [
        {
            "model_name": group,
            "litellm_params": {"model": f"openai/{model}", "api_base": url, "api_key": api_key},
        }
        for url in endpoints
    ]
    router = Router(
        model_list=model_list, num_retries=num_retries, allowed_fails=allowed_fails, timeout=timeout, **router_kwargs
    )
    return RouterJudge(router, group, call_timeout=call_timeout, **dict(completion_kwargs or {}))
