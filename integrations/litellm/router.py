"""A RewardAnything judge behind a litellm ``Router``: several endpoints, one model group.

Serve RewardAnything on several vLLM servers, list them under one model
group, and the router spreads judge calls across them, retries on another
deployment when one fails, and cools a failing one down.

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

from ra_guard._http import openai_explanation
from ra_guard._redact import redact_secrets
from ra_guard.exceptions import JudgeError, JudgeTimeoutError, MissingDependencyError
from ra_guard.judges.chat import ChatAnswer, ChatJudge, answer_from_completion
from ra_guard.types import ChatMessage

__all__ = ["RouterJudge", "router_judge"]


class RouterJudge(ChatJudge):
    """Judge through a ``litellm.Router`` model group serving a RewardAnything model.

    Args:
        router: The router (its own load balancing, retries, cooldowns and
            fallbacks apply to every judge call).
        model: The model group name to call.
        temperature: Sampling temperature of the judge (0: deterministic).
        max_tokens: Room for the judge's reasoning and verdict.
        **completion_kwargs: More arguments for ``router.acompletion``.

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
        **completion_kwargs: Any,
    ) -> None:
        self.router = router
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.completion_kwargs = completion_kwargs
        self.name = f"litellm-router:{model}"

    async def _chat(self, messages: list[ChatMessage], *, max_tokens: int | None) -> ChatAnswer:
        """One ``router.acompletion`` call, its failures mapped to :class:`JudgeError`."""
        from litellm.exceptions import Timeout

        kwargs: dict[str, Any] = {"temperature": self.temperature, **self.completion_kwargs}
        if max_tokens is not None:
            kwargs.setdefault("max_tokens", max_tokens)
        try:
            response = await self.router.acompletion(model=self.model, messages=messages, **kwargs)
        except asyncio.CancelledError:
            raise
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


def router_judge(
    endpoints: Sequence[str],
    *,
    model: str,
    group: str = "rewardanything",
    api_key: str = "EMPTY",
    num_retries: int = 3,
    allowed_fails: int = 0,
    timeout: float = 60.0,
    completion_kwargs: Mapping[str, Any] | None = None,
    **router_kwargs: Any,
) -> RouterJudge:
    """A :class:`RouterJudge` over OpenAI-compatible ``endpoints`` all serving ``model``.

    Args:
        endpoints: Base URLs (``http://gpu-1:8000/v1``...).
        model: The model name the servers serve.
        group: The model group name inside the router.
        api_key: Key sent to the servers (vLLM accepts anything without ``--api-key``).
        num_retries: Retries per judge call; each goes to a deployment not cooling down.
        allowed_fails: Failures a deployment may have (per minute) before it is
            cooled down; ``0`` takes a failing endpoint out of rotation at once, so
            that retries land on a live one.
        timeout: Seconds per attempt.
        completion_kwargs: Arguments for every judge call's ``router.acompletion``
            (``max_tokens``, ``response_format``, ``extra_body``...); ``temperature``
            and ``max_tokens`` here replace the judge's defaults (0 and 4096).
        **router_kwargs: More ``litellm.Router`` arguments (``routing_strategy``,
            ``allowed_fails``, ``cooldown_time``...).

    Example:
        >>> judge = router_judge(["http://gpu-1:8000/v1"], model="WisdomShell/RewardAnything-8B-v1",
        ...                      completion_kwargs={"max_tokens": 2048, "extra_body": {"top_k": 1}})
        >>> judge.max_tokens, judge.completion_kwargs
        (2048, {'extra_body': {'top_k': 1}})
    """
    try:
        from litellm.router import Router
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("litellm", extra="litellm") from exc
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
    return RouterJudge(router, group, **dict(completion_kwargs or {}))
