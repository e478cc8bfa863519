"""A sampler over any chat model that litellm reaches.

:class:`LiteLLMSampler` asks for ``n`` choices in one call where the provider
honours ``n``, checks how many came back, and tops up the missing ones with
parallel single-choice calls. A provider that ignores ``n`` or rejects it
(llama.cpp's server: HTTP 400 "Value must be between 1 <= value <= 2, but got
4") is remembered per sampler, with a rate-limited WARNING on the
``ra_guard.judges`` logger, and later calls go straight to ``n`` parallel calls.
:meth:`LiteLLMSampler.astream_samples` yields each sample as soon as its call
finishes, so that a caller can keep the finished ones when another hangs.

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
from collections.abc import AsyncIterator
from typing import Any

import openai

from ra_guard._http import PerLoop, openai_explanation, usage_of
from ra_guard._litellm import import_litellm, loop_gate, release_loop_clients
from ra_guard._trace_state import litellm_target, record_call_target
from ra_guard._warn import warn_fallback
from ra_guard.exceptions import ConfigurationError, SamplerError
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


class _NRejected(Exception):
    """The provider refused an ``n``-choice call (carried to the caller that falls back)."""


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
        # Spans and metrics name the provider and the model without litellm's routing prefix.
        self._target = litellm_target(self._litellm, model, litellm_kwargs)
        record_call_target(self.name, self._target)
        self.n_supported: bool | None = None
        self._rejection_unconfirmed = False
        self._gates: PerLoop[asyncio.Semaphore] = PerLoop(
            lambda: loop_gate(self.max_concurrency), closer=release_loop_clients
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
        samples = await self._sample_together(messages, n=n, temperature=temperature)
        if len(samples) >= n:
            return samples[:n]
        results = await asyncio.gather(
            *(self._call(messages, n=1, temperature=temperature) for _ in range(n - len(samples))),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                self._unconfirmed_rejection(any(not isinstance(r, BaseException) for r in results))
                raise result
            samples.extend(result)
        return self._exactly(samples, n)

    async def astream_samples(
        self, messages: Messages, *, n: int, temperature: float | None = None
    ) -> AsyncIterator[Sample]:
        """Yield ``n`` samples, each as soon as its call finishes.

        Where the provider honours ``n`` the samples of the one call come
        together; otherwise each parallel call's sample is yielded when it is
        done, so a caller that stops waiting (a deadline) keeps the finished
        ones. Leaving the loop early cancels the calls still running.

        Raises:
            SamplerError: A call failed (after the samples that finished before it).

        Example:
            >>> # async for sample in LiteLLMSampler("gpt-4o-mini").astream_samples(messages, n=4):
            >>> #     print(sample.text)
        """
        if n < 1:
            raise ConfigurationError(f"n must be at least 1, got {n}")
        together = await self._sample_together(messages, n=n, temperature=temperature)
        for sample in together[:n]:
            yield sample
        if len(together) >= n:
            return
        tasks = [
            asyncio.ensure_future(self._call(messages, n=1, temperature=temperature)) for _ in range(n - len(together))
        ]
        produced = len(together)
        try:
            for next_done in asyncio.as_completed(tasks):
                try:
                    result = await next_done
                except BaseException:
                    self._unconfirmed_rejection(produced > len(together))
                    raise
                for sample in result:
                    produced += 1
                    yield sample
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if produced < n:
            raise SamplerError(f"{self.name}: asked for {n} samples, got {produced} (empty choices)")

    async def _sample_together(self, messages: Messages, *, n: int, temperature: float | None) -> list[Sample]:
        """One ``n``-choice call where the provider may honour ``n``; learns whether it does."""
        if n == 1 or self.n_supported is False:
            return []
        try:
            samples = await self._call(messages, n=n, temperature=temperature)
        except _NRejected as exc:
            self.n_supported = False
            self._rejection_unconfirmed = True
            warn_fallback(
                self.name,
                "n_unsupported",
                f"the provider rejected n={n} ({exc}); sampling with {n} parallel single calls from now on",
            )
            return []
        if len(samples) >= n:
            self.n_supported = True
        elif len(samples) <= 1:
            self.n_supported = False  # the provider ignores n; go parallel from now on
            warn_fallback(
                self.name,
                "n_ignored",
                f"asked for n={n} choices, got {len(samples)}; sampling with parallel single calls from now on",
            )
        return samples

    def _unconfirmed_rejection(self, some_call_succeeded: bool) -> None:
        # A 400 on the n-call that single calls share was not about ``n``: forget the conclusion.
        if self._rejection_unconfirmed and not some_call_succeeded:
            self.n_supported = None
        self._rejection_unconfirmed = False

    def _exactly(self, samples: list[Sample], n: int) -> list[Sample]:
        self._rejection_unconfirmed = False
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
        record_call_target(self.name, self._target)
        litellm = self._litellm
        async with await self._gates.get():
            try:
                response = await litellm.acompletion(model=self.model, messages=list(messages), **options)
            except litellm.UnsupportedParamsError as exc:
                if n > 1:
                    raise _NRejected(str(exc)) from exc
                raise SamplerError(f"{self.name}: the provider rejected the call's parameters: {exc}") from None
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                # llama.cpp: 400 "Value must be between 1 <= value <= 2, but got 4" names no field.
                if n > 1:
                    raise _NRejected(f"HTTP {exc.status_code}: {openai_explanation(exc)}") from exc
                raise SamplerError(
                    f"{self.name}: sampling failed: HTTP {exc.status_code}: {openai_explanation(exc)}"
                ) from exc
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
