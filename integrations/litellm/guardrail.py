"""A litellm proxy guardrail: judge each response against your policies, re-sample or block below threshold.

Add it to the proxy's ``config.yaml``::

    guardrails:
      - guardrail_name: ra-guard
        litellm_params:
          guardrail: ra_guard.integrations.litellm.guardrail.RaGuardGuardrail
          mode: post_call
          default_on: true
          policies: [concise, professional-tone]
          judge_model: rewardanything        # a model group of this proxy serving RewardAnything
          # judge: openai-compat:http://gpu-1:8000/v1   # ...or any ra-guard judge spec
          on_fail: resample                  # or: block
          candidates: 4

After each (non-streaming) chat completion the response is judged. When it
meets every policy's ``min_score`` it goes out unchanged. Below it,
``on_fail: resample`` samples ``candidates`` alternatives through the proxy's
own router (same model group, same parameters), judges them with the
original and returns the best; ``on_fail: block`` answers HTTP 400 with the
failed policies instead. ``block_if_still_failing: true`` blocks when even the
best re-sampled answer fails. Every guarded response carries the decision as
the ``ra_guard`` field of its JSON body.

Streaming: a streamed response reaches the client as it is generated, before
it could be judged, so streaming requests pass through unguarded by default.
With ``guard_streams: true`` the guardrail buffers the stream, judges the
whole answer, and then either replays the chunks (it passed, or was the best)
or blocks; re-sampling is not done for streams.

Example:
    >>> from ra_guard.testing import FunctionJudge
    >>> guardrail = RaGuardGuardrail(policies=["concise"], judge=FunctionJudge(lambda r: {k: 5 for k in r.responses}),
    ...                              guardrail_name="ra-guard", event_hook="post_call")
    >>> guardrail.on_fail, guardrail.candidates
    ('resample', 4)
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, Literal

import litellm
from fastapi import HTTPException
from litellm.integrations.custom_guardrail import CustomGuardrail
from litellm.types.guardrails import GuardrailEventHooks

from ra_guard.decision import Decision
from ra_guard.exceptions import AllCandidatesRejected, ConfigurationError
from ra_guard.guard import Guard
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.policy import Policy
from ra_guard.verdict import Verdict

from ._sampler import (
    CompletionSampler,
    attach_decision,
    choice_text,
    chosen_response,
    to_chat_messages,
)
from .router import RouterJudge

__all__ = ["RaGuardGuardrail"]

OnFail = Literal["resample", "block"]

#: Request parameters carried over to re-sampled calls (the proxy adds its own bookkeeping keys to ``data``).
_RESAMPLE_KEYS = (
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
)


def _proxy_router() -> Any:
    """The running proxy's router, or ``None`` outside the proxy."""
    try:
        from litellm.proxy import proxy_server
    except ImportError:  # pragma: no cover - the proxy extra is not installed
        return None
    return getattr(proxy_server, "llm_router", None)


class _ProxyRouterJudge(Judge):
    """A :class:`RouterJudge` on the proxy's router, found when the first call comes (after config load)."""

    model: str

    def __init__(self, model: str) -> None:
        self.model = model
        self.name = f"litellm-proxy:{model}"

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        router = _proxy_router()
        if router is None:
            raise ConfigurationError(
                f"judge_model={self.model!r} needs the litellm proxy's router; outside the proxy pass judge=... instead"
            )
        return await RouterJudge(router, self.model).ajudge(request)


def _policies(value: Sequence[str | Path | Policy] | str) -> list[str | Path | Policy]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return list(value)


class RaGuardGuardrail(CustomGuardrail):
    """Post-call guardrail for the litellm proxy, judged by a RewardAnything model.

    Args:
        policies: Policy names, YAML paths or :class:`~ra_guard.Policy` objects
            (a comma-separated string works in YAML too).
        judge: A judge or a judge spec (``openai-compat:http://gpu:8000/v1``).
        judge_model: Instead of ``judge``: a model group of this proxy serving
            RewardAnything (load balancing and failover by the proxy's router).
        on_fail: ``resample`` (best-of-N through the proxy's router) or ``block``.
        candidates: Alternatives sampled when the response fails.
        block_if_still_failing: With ``resample``, block when the best still fails.
        judge_tool_calls: Judge responses that only call tools (default: pass them).
        guard_streams: Buffer and judge streamed responses (see the module docs).
        **kwargs: litellm's guardrail settings (``guardrail_name``, ``event_hook``,
            ``default_on``...), passed on by the proxy.

    Example:
        >>> from ra_guard.testing import FunctionJudge
        >>> g = RaGuardGuardrail(policies="concise, professional-tone", judge=FunctionJudge(lambda r: {}))
        >>> [p.name for p in g.guard.policies]
        ['concise', 'professional-tone']
    """

    def __init__(
        self,
        *,
        policies: Sequence[str | Path | Policy] | str = ("concise",),
        judge: Judge | str | None = None,
        judge_model: str | None = None,
        on_fail: OnFail = "resample",
        candidates: int = 4,
        block_if_still_failing: bool = False,
        judge_tool_calls: bool = False,
        guard_streams: bool = False,
        **kwargs: Any,
    ) -> None:
        if on_fail not in ("resample", "block"):
            raise ConfigurationError(f"on_fail must be 'resample' or 'block', got {on_fail!r}")
        if (judge is None) == (judge_model is None):
            raise ConfigurationError(
                "give the guardrail exactly one of judge: <spec> (e.g. openai-compat:http://gpu:8000/v1) "
                "or judge_model: <a model group of this proxy>"
            )
        kwargs.setdefault("supported_event_hooks", [GuardrailEventHooks.post_call])
        super().__init__(**kwargs)
        resolved: Judge | str = judge if judge is not None else _ProxyRouterJudge(str(judge_model))
        self.guard = Guard(policies=_policies(policies), judge=resolved, on_all_rejected="return_best")
        self.on_fail: OnFail = on_fail
        self.candidates = int(candidates)
        self.block_if_still_failing = bool(block_if_still_failing)
        self.judge_tool_calls = bool(judge_tool_calls)
        self.guard_streams = bool(guard_streams)

    def _blocked(self, decision: Decision) -> HTTPException:
        failed = sorted(name for name, score in decision.chosen.scores.items() if not score.passed or score.vetoed)
        message = (
            f"ra-guard blocked this response: it fails the policies {', '.join(failed) or '(unknown)'} "
            f"({decision.why}). decision_id={decision.decision_id}"
        )
        return HTTPException(
            status_code=400,
            detail={"error": message, "ra_guard": json.loads(decision.model_dump_json())},
        )

    async def _decide(self, data: dict[str, Any], text: str, *, resample: bool) -> tuple[Decision, Any]:
        sampler = None
        router = _proxy_router() if resample else None
        if router is not None:
            kwargs = {key: data[key] for key in _RESAMPLE_KEYS if key in data}
            sampler = CompletionSampler(router.acompletion, {"model": data.get("model"), **kwargs})
        messages = to_chat_messages(data.get("messages") or [])
        try:
            decision = await self.guard.acheck(messages, text, sampler=sampler, n=self.candidates)
        except AllCandidatesRejected as exc:  # only with on_all_rejected="raise"; kept for safety
            decision = exc.decision
        return decision, sampler

    async def async_post_call_success_hook(self, data: dict[str, Any], user_api_key_dict: Any, response: Any) -> Any:
        """Judge a chat completion; return it, a better one, or raise to block it."""
        if not isinstance(response, litellm.ModelResponse) or not response.choices or not data.get("messages"):
            return None
        choice = response.choices[0]
        if getattr(choice.message, "tool_calls", None) and not self.judge_tool_calls:
            return None
        decision, sampler = await self._decide(data, choice_text(choice), resample=self.on_fail == "resample")
        if not decision.passed and (self.on_fail == "block" or self.block_if_still_failing):
            raise self._blocked(decision)
        if decision.chosen.source == "original" or sampler is None:
            return attach_decision(response, decision)
        return chosen_response(sampler, decision)

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """Pass streams through, or (``guard_streams``) buffer, judge and replay or block."""
        if not self.guard_streams or not request_data.get("messages"):
            async for chunk in response:
                yield chunk
            return
        chunks = [chunk async for chunk in response]
        built = litellm.stream_chunk_builder(chunks=chunks, messages=request_data.get("messages"))
        if built is not None and built.choices:
            decision, _ = await self._decide(request_data, choice_text(built.choices[0]), resample=False)
            if not decision.passed:
                raise self._blocked(decision)
        for chunk in chunks:
            yield chunk
