"""``guarded_completion``: litellm's ``completion``, best-of-N and judged, returning a normal ``ModelResponse``.

Example:
    >>> from ra_guard import Guard
    >>> guard = Guard(policies=["concise"], judge="vllm:http://gpu:8000/v1")  # doctest: +SKIP
    >>> response = guarded_completion(guard, model="openai/gpt-4o-mini",
    ...                               messages=[{"role": "user", "content": "Capital of France?"}])  # doctest: +SKIP
    >>> response.choices[0].message.content  # doctest: +SKIP
    'Paris.'
    >>> response.ra_guard["why"]  # doctest: +SKIP
    'candidate 2 had the best combined score 4.50 (concise 5)'
"""

from __future__ import annotations

from typing import Any

from ra_guard._sync import run_sync
from ra_guard.exceptions import ConfigurationError
from ra_guard.guard import Guard

from ._sampler import CompletionSampler, chosen_response, to_chat_messages

__all__ = ["guarded_acompletion", "guarded_completion"]


async def guarded_acompletion(
    guard: Guard,
    *,
    n: int | None = None,
    use_n: bool = False,
    router: Any | None = None,
    **litellm_kwargs: Any,
) -> Any:
    """Sample with ``litellm.acompletion(**litellm_kwargs)``, judge, and return the chosen response.

    The result is a ``litellm.ModelResponse`` with one choice, the winner
    (content, tool calls, finish reason as the model gave them). The decision
    rides along as ``response.ra_guard`` (JSON-able dict, also in
    ``response.model_dump()``) and ``response._hidden_params["ra_guard_decision"]``
    (the :class:`~ra_guard.Decision`). ``response.usage`` is what the whole
    decision spent (every candidate and every judge call, ``decision.total_usage``);
    the winner's own usage is ``response.ra_guard["winner_usage"]`` and
    ``response._hidden_params["ra_guard_winner_usage"]``. Likewise in dollars:
    ``response._hidden_params["response_cost"]`` adds up litellm's price of
    every candidate call and of the judge calls (a litellm judge's; any other
    judge's cost is ``None`` in ``ra_guard["judge_cost"]`` and named in
    ``ra_guard["cost_unpriced"]``); the winner's call alone is
    ``_hidden_params["ra_guard_winner_cost"]`` and ``ra_guard["winner_cost"]``.
    Each call is also logged by litellm on its own (callbacks, spend logs); the
    guarded response is not logged again.

    Args:
        guard: Policies, judge and strategy.
        n: Candidates per round (overrides the strategy's ``n``). Not litellm's
            ``n``: for that, see ``use_n``.
        use_n: Ask the provider for the candidates in one call with ``n``
            instead of ``n`` parallel calls.
        router: A ``litellm.Router`` to sample through (``model`` is then a model group).
        **litellm_kwargs: Everything ``litellm.acompletion`` takes (``model``,
            ``messages``, ``api_base``, ``max_tokens``...). A ``temperature``
            given here wins over the strategy's.

    Raises:
        ConfigurationError: ``stream=True`` (a guarded answer is known only
            once judged: call without streaming) or no ``messages``.
        AllCandidatesRejected: Every candidate was vetoed by a hard policy.
        SamplerError: litellm failed.

    Example:
        >>> import asyncio
        >>> from ra_guard import Guard
        >>> from ra_guard.testing import FunctionJudge
        >>> judge = FunctionJudge(lambda r: {k: 5 - len(t) / 20 for k, t in r.responses.items()})
        >>> guard = Guard(policies=["concise"], judge=judge)
        >>> reply = asyncio.run(guarded_acompletion(guard, n=2, model="openai/m", mock_response="Paris.",
        ...                                         messages=[{"role": "user", "content": "Capital of France?"}]))
        >>> reply.choices[0].message.content, reply.ra_guard["strategy"]
        ('Paris.', 'best_of_n')
    """
    return await _guarded(guard, n=n, use_n=use_n, router=router, sync=False, kwargs=litellm_kwargs)


async def _guarded(guard: Guard, *, n: int | None, use_n: bool, router: Any, sync: bool, kwargs: dict[str, Any]) -> Any:
    if kwargs.get("stream"):
        raise ConfigurationError(
            "guarded_completion does not stream: the answer is chosen only after every candidate is judged; "
            "drop stream=True (or stream the chosen text yourself)"
        )
    messages = kwargs.get("messages")
    if not messages:
        raise ConfigurationError("guarded_completion needs messages=[...], as litellm.completion does")
    if router is None:
        import litellm

        router = litellm
    # Sync callers too get litellm's acompletion, on ra-guard's one background loop: litellm builds
    # one async client per loop and keeps it. Its sync completion, called from n worker threads,
    # raced to build n clients for a cold cache and kept one, leaving the others' sockets unclosed.
    # A caller's own client (a sync one, for the sync entry point) is used as given.
    threaded = sync and kwargs.get("client") is not None
    call = router.completion if threaded else router.acompletion
    sampler = CompletionSampler(call, kwargs, use_n=use_n, sync=threaded)
    decision = await guard.arun(to_chat_messages(messages), sampler=sampler, n=n)
    return chosen_response(sampler, decision, judge=guard.judge)


def guarded_completion(
    guard: Guard,
    *,
    n: int | None = None,
    use_n: bool = False,
    router: Any | None = None,
    **litellm_kwargs: Any,
) -> Any:
    """Synchronous :func:`guarded_acompletion`, on ra-guard's one background event loop.

    litellm's ``acompletion`` is called there (litellm keeps one client per
    loop, so repeated calls reuse its connections). Where you pass a
    ``client=`` of your own (a sync ``openai.OpenAI``), litellm's sync
    ``completion`` is called with it instead, in worker threads.
    """
    return run_sync(_guarded(guard, n=n, use_n=use_n, router=router, sync=True, kwargs=litellm_kwargs))
