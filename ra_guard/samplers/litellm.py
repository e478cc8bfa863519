"""A sampler over any chat model that litellm reaches.

:class:`LiteLLMSampler` asks for ``n`` choices in one call where the provider
honours ``n``, checks how many came back, and tops up the missing ones with
parallel single-choice calls. A provider that ignores ``n`` (or rejects it) is
remembered, and later calls go straight to ``n`` parallel calls.

Token usage is kept per candidate so that the decision's total is exact: a
multi-choice call's prompt tokens are put on its first candidate and its
completion tokens are split evenly across its candidates.

Needs the ``litellm`` extra: ``pip install 'ra-guard[litellm]'``.

Example:
    >>> sampler = LiteLLMSampler("gpt-4o-mini", timeout=20)
    >>> sampler.name
    'litellm:gpt-4o-mini'
"""

from __future__ import annotations

import asyncio
from typing import Any

from ra_guard.exceptions import ConfigurationError, SamplerError
from ra_guard.judges._http import PerLoop
from ra_guard.judges.litellm_judge import close_loop_clients, import_litellm, usage_of
from ra_guard.samplers.base import Sampler
from ra_guard.types import Messages, Sample, Usage

__all__ = ["LiteLLMSampler"]


def _split_usage(usage: Usage | None, count: int) -> list[Usage]:
    """Spread one call's usage over ``count`` candidates, keeping the total exact.

    Example:
        >>> [u.completion_tokens for u in _split_usage(Usage(prompt_tokens=9, completion_tokens=7), 3)]
        [3, 2, 2]
    """
    if usage is None or count < 1:
        return [Usage() for _ in range(max(count, 0))]
    share, extra = divmod(usage.completion_tokens, count)
    return [
        Usage(prompt_tokens=usage.prompt_tokens if i == 0 else 0, completion_tokens=share + (1 if i < extra else 0))
        for i in range(count)
    ]


class LiteLLMSampler(Sampler):
    """Samples candidates through ``litellm.acompletion``.

    Args:
        model: A litellm model string (``gpt-4o-mini``, ``openai/<served-name>``...).
        max_concurrency: Calls in flight at once when sampling in parallel (per event loop).
        **litellm_kwargs: Passed to every call (``api_base``, ``api_key``,
            ``timeout``, ``num_retries``, ``max_tokens``...).

    Attributes:
        n_supported: ``True`` once the provider returned ``n`` choices for one
            call, ``False`` once it ignored or rejected ``n``, ``None`` before.

    Raises:
        MissingDependencyError: litellm is not installed.

    Example:
        >>> LiteLLMSampler("openai/m", api_base="http://127.0.0.1:8000/v1").n_supported is None
        True
    """

    def __init__(self, model: str, *, max_concurrency: int = 16, **litellm_kwargs: Any) -> None:
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._litellm = import_litellm()
        self.model = model
        self.max_concurrency = max_concurrency
        self.litellm_kwargs = litellm_kwargs
        self.name = f"litellm:{model}"
        self.n_supported: bool | None = None
        self._gates: PerLoop[asyncio.Semaphore] = PerLoop(
            lambda: asyncio.Semaphore(self.max_concurrency), closer=close_loop_clients
        )

    def __repr__(self) -> str:
        return f"LiteLLMSampler({self.model!r})"

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        """Return ``n`` samples; raise :class:`SamplerError` if any call fails.

        Example:
            >>> # await LiteLLMSampler("gpt-4o-mini").asample([{"role": "user", "content": "hi"}], n=4)
        """
        if n < 1:
            raise ConfigurationError(f"n must be at least 1, got {n}")
        samples: list[Sample] = []
        if n > 1 and self.n_supported is not False:
            samples = await self._call(messages, n=n, temperature=temperature)
            if len(samples) >= n:
                self.n_supported = True
                return samples[:n]
            if len(samples) <= 1:
                self.n_supported = False  # the provider ignores n; go parallel from now on
        missing = n - len(samples)
        results = await asyncio.gather(
            *(self._call(messages, n=1, temperature=temperature) for _ in range(missing)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
            samples.extend(result)
        if len(samples) < n:
            raise SamplerError(f"{self.name}: asked for {n} samples, got {len(samples)} (empty choices)")
        return samples[:n]

    async def aclose(self) -> None:
        """Close the HTTP clients litellm cached for the running loop."""
        await self._gates.aclose()

    async def _call(self, messages: Messages, *, n: int, temperature: float | None) -> list[Sample]:
        options: dict[str, Any] = dict(self.litellm_kwargs)
        if n > 1:
            options["n"] = n
        if temperature is not None:
            options["temperature"] = temperature
        litellm = self._litellm
        async with await self._gates.get():
            try:
                response = await litellm.acompletion(model=self.model, messages=list(messages), **options)
            except litellm.UnsupportedParamsError:
                if n == 1:
                    raise SamplerError(f"{self.name}: the provider rejected the call's parameters") from None
                self.n_supported = False
                return []
            except Exception as exc:
                raise SamplerError(f"{self.name}: sampling failed: {exc}") from exc
        choices = list(getattr(response, "choices", None) or [])
        usages = _split_usage(usage_of(response), len(choices))
        model, response_id = getattr(response, "model", None), getattr(response, "id", None)
        samples = []
        for choice, usage in zip(choices, usages, strict=True):
            content = getattr(getattr(choice, "message", None), "content", None)
            samples.append(
                Sample(
                    text=content if isinstance(content, str) else "",
                    finish_reason=getattr(choice, "finish_reason", None),
                    usage=usage,
                    model=model if isinstance(model, str) else self.model,
                    response_id=response_id if isinstance(response_id, str) else None,
                )
            )
        return samples
