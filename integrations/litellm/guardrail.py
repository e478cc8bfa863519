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
best re-sampled answer fails. An answer a hard policy vetoes is always
blocked.

What leaves the proxy: a guarded chat completion carries a summary of the
decision as the ``ra_guard`` field of its JSON body (id, outcome, the
winner's scores, never a candidate's text or the judge's reasoning); a
block carries the same summary. Alternatives' texts go out only where the
operator sets ``expose_candidates: true``, and a vetoed text never does.
The decision also goes where litellm's guardrails log theirs: the standard
logging payload (``standard_logging_object["guardrail_information"]``, read
by Langfuse, Datadog, OTel and the spend logs) and the
``x-litellm-applied-guardrails`` response header.

Routes: ``/v1/messages`` (Anthropic) and ``/v1/responses`` answers are judged
too; re-sampling needs the chat format, so there a failing answer is blocked.

Several ra-guard guardrails: a ``default_on`` one steps aside when the
request names another ra-guard guardrail (``"guardrails": ["ra-guard-strict"]``),
so that one answer gets one decision, the one asked for.

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

import contextvars
import logging
import sys
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, Literal

from fastapi import HTTPException
from litellm.integrations.custom_guardrail import CustomGuardrail, guardrail_entry_names
from litellm.litellm_core_utils.core_helpers import get_or_create_metadata_bucket
from litellm.types.guardrails import GuardrailEventHooks
from litellm.types.utils import GuardrailStatus

from ra_guard.decision import Decision
from ra_guard.exceptions import AllCandidatesRejected, ConfigurationError
from ra_guard.guard import Guard
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.policy import Policy
from ra_guard.types import ChatMessage
from ra_guard.verdict import Verdict

from ._cost import SPEND_KEYS
from ._exposure import client_view, failed_policies, safe_why, vetoed
from ._routes import Answer, answer_of, conversation_of, route_of, stream_answer_of
from ._sampler import DECISION_ATTRIBUTE, CompletionSampler, attach_decision, chosen_response
from .router import RouterJudge

__all__ = ["RaGuardGuardrail"]

logger = logging.getLogger("ra_guard")

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

#: litellm's guardrail status for what the guardrail did with the answer.
_STATUS: dict[str, GuardrailStatus] = {
    "blocked": "guardrail_intervened",
    "replaced": "guardrail_intervened",
    "passed": "success",
    "flagged": "guardrail_flagged",
}

#: Names of the ra-guard guardrails configured in this process (a default_on one yields to another one named).
_RA_GUARD_NAMES: set[str] = set()

#: The group id of the decision being made: judge calls through the proxy's router carry it too.
_GROUP_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("ra_guard_litellm_group", default=None)


def _proxy_router() -> Any:
    """The running proxy's router, or ``None`` outside the proxy.

    Looked up, not imported: a running proxy has loaded its server module, and
    importing it elsewhere would pull in (and warn about) the proxy's web stack.
    """
    proxy_server = sys.modules.get("litellm.proxy.proxy_server")
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
        group = _GROUP_ID.get()
        extra: dict[str, Any] = {}
        if group is not None:
            tags = {"ra_guard_group_id": group, "ra_guard_candidate": "judge"}
            extra["metadata"] = {**tags, "spend_logs_metadata": tags}
        return await RouterJudge(router, self.model, **extra).ajudge(request)


def _add_applied_guardrail(data: dict[str, Any], name: str | None) -> None:
    """Name the guardrail where the proxy builds ``x-litellm-applied-guardrails`` from (the request's metadata).

    The proxy's own helper does this too, but importing it outside the proxy pulls in its web stack.
    """
    if not name:
        return
    _, metadata = get_or_create_metadata_bucket(data)
    applied = metadata.setdefault("applied_guardrails", [])
    if name not in applied:
        applied.append(name)


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
        expose_candidates: Put every candidate's text (vetoed ones withheld) in
            the response's ``ra_guard`` summary. Off by default: the client gets
            the chosen answer and scores, nothing it was not meant to read.
        **kwargs: litellm's guardrail settings (``guardrail_name``, ``event_hook``,
            ``default_on``...), passed on by the proxy.

    Example:
        >>> from ra_guard.testing import FunctionJudge
        >>> g = RaGuardGuardrail(policies="concise, professional-tone", judge=FunctionJudge(lambda r: {}))
        >>> [p.name for p in g.guard.policies], g.expose_candidates
        (['concise', 'professional-tone'], False)
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
        expose_candidates: bool = False,
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
        self.expose_candidates = bool(expose_candidates)
        if self.guardrail_name:
            _RA_GUARD_NAMES.add(self.guardrail_name)

    # -- which guardrails run ----------------------------------------------

    def should_run_guardrail(self, data: Any, event_type: GuardrailEventHooks) -> bool:
        """litellm's rule, except that a ``default_on`` ra-guard guardrail yields to another ra-guard one named.

        Two ra-guard decisions on one answer would cost twice and the later
        would overwrite the earlier, so a request naming ``ra-guard-strict``
        gets that decision only.
        """
        if super().should_run_guardrail(data, event_type) is not True:
            return False
        if not self.default_on or not isinstance(data, dict):
            return True
        named = {name for entry in self.get_guardrail_from_metadata(data) for name in guardrail_entry_names(entry)}
        if self.guardrail_name in named or not (named & (_RA_GUARD_NAMES - {self.guardrail_name or ""})):
            return True
        logger.debug("ra-guard guardrail %s steps aside for %s", self.guardrail_name, sorted(named & _RA_GUARD_NAMES))
        return False

    # -- deciding ----------------------------------------------------------

    async def _decide(
        self, data: dict[str, Any], messages: list[ChatMessage], text: str, *, resample: bool
    ) -> tuple[Decision, CompletionSampler | None]:
        sampler = None
        router = _proxy_router() if resample else None
        if router is not None:
            kwargs = {key: data[key] for key in _RESAMPLE_KEYS if key in data}
            sampler = CompletionSampler(router.acompletion, {"model": data.get("model"), **kwargs})
        token = _GROUP_ID.set(sampler.group_id if sampler is not None else None)
        try:
            decision = await self.guard.acheck(messages, text, sampler=sampler, n=self.candidates)
        except AllCandidatesRejected as exc:  # only with on_all_rejected="raise"; kept for safety
            decision = exc.decision
        finally:
            _GROUP_ID.reset(token)
        return decision, sampler

    def _must_block(self, decision: Decision, *, replaceable: bool) -> bool:
        if vetoed(decision.chosen):  # a vetoed text never reaches the client, whatever on_fail says
            return True
        if decision.passed:
            return False
        # Only chat completions are re-sampled; a failing stream or other route's answer cannot be replaced.
        return self.on_fail == "block" or self.block_if_still_failing or not replaceable

    def _blocked(self, decision: Decision, view: dict[str, Any]) -> HTTPException:
        failed = failed_policies(decision.chosen)
        message = (
            f"ra-guard blocked this response: it fails the policies {', '.join(failed) or '(unknown)'} "
            f"({safe_why(decision)}). decision_id={decision.decision_id}"
        )
        return HTTPException(status_code=400, detail={"error": message, "ra_guard": view})

    def _record(
        self, data: dict[str, Any], summary: object, status: GuardrailStatus, started: float, *, intervened: bool
    ) -> None:
        """Log the decision the way litellm's guardrails do: standard logging payload and applied-guardrails header."""
        ended = time.time()
        self.add_standard_logging_guardrail_information_to_request_data(
            guardrail_json_response=summary,
            request_data=data,
            guardrail_status=status,
            start_time=started,
            end_time=ended,
            duration=ended - started,
            guardrail_provider="ra-guard",
            event_type=GuardrailEventHooks.post_call,
        )
        _add_applied_guardrail(data, self.guardrail_name)
        if intervened:
            logger.info("ra-guard guardrail %s intervened: %s", self.guardrail_name, summary)

    async def _judge(
        self, data: dict[str, Any], answer: Answer, *, replaceable: bool
    ) -> tuple[Decision, CompletionSampler | None, dict[str, Any]]:
        """Decide on ``answer``, log the decision, raise to block; return it and the client's view of it."""
        started = time.time()
        messages = conversation_of(answer.route, data)
        try:
            resample = replaceable and self.on_fail == "resample"
            decision, sampler = await self._decide(data, messages, answer.text, resample=resample)
        except Exception as exc:
            # Fail closed, and say why only in the proxy's logs: an error's text can quote a judge's
            # raw output, which can quote the answer being judged.
            self._record(data, type(exc).__name__, "guardrail_failed_to_respond", started, intervened=False)
            logger.warning("ra-guard guardrail %s could not judge a response: %r", self.guardrail_name, exc)
            raise HTTPException(
                status_code=500,
                detail={"error": f"ra-guard could not judge this response ({type(exc).__name__}); see the proxy's log"},
            ) from exc
        group = sampler.group_id if sampler is not None else None
        blocked = self._must_block(decision, replaceable=replaceable)
        replaced = decision.chosen.source != "original"
        action = "blocked" if blocked else "replaced" if replaced else "passed" if decision.passed else "flagged"
        if blocked and not decision.passed and self.on_fail == "resample" and not replaceable:
            logger.warning(
                "ra-guard guardrail %s blocked a failing %s answer: re-sampling is done for chat completions only",
                self.guardrail_name,
                answer.route,
            )
        # A blocked answer's text must not ride out in the error: never expose candidates there.
        view = client_view(decision, expose_candidates=self.expose_candidates and not blocked, group_id=group)
        logged = client_view(decision, expose_candidates=False, group_id=group)
        view["action"] = logged["action"] = action
        status: GuardrailStatus = _STATUS[action]
        self._record(data, logged, status, started, intervened=blocked or replaced)
        if blocked:
            raise self._blocked(decision, view)
        return decision, sampler, view

    # -- hooks -------------------------------------------------------------

    async def async_post_call_success_hook(self, data: dict[str, Any], user_api_key_dict: Any, response: Any) -> Any:
        """Judge the answer (chat completions, Anthropic messages, Responses); return it, a better one, or block."""
        answer = answer_of(response)
        if answer is None or (answer.calls_tools and not self.judge_tool_calls):
            return None
        if not conversation_of(answer.route, data):
            return None
        decision, sampler, view = await self._judge(data, answer, replaceable=answer.route == "chat")
        if answer.route != "chat":
            return None  # passed: the answer goes out as it came
        judge = self.guard.judge
        if decision.chosen.source == "original" or sampler is None:
            out = attach_decision(response, decision, sampler=sampler, judge=judge)
        else:
            out = chosen_response(sampler, decision, judge=judge, checked=response)  # the original was paid for too
        full = getattr(out, DECISION_ATTRIBUTE)
        # Usage and cost, but none of the decision's texts. litellm bills each call on its own (the
        # original, each re-sampled candidate, each judge call through the router): these totals are
        # for the client to read, not reported as a guardrail cost, which the proxy would add again.
        setattr(out, DECISION_ATTRIBUTE, {**view, **{key: full[key] for key in SPEND_KEYS}})
        out._hidden_params.pop("ra_guard_decision", None)  # the full decision stays in the proxy's logs
        return out

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """Pass streams through, or (``guard_streams``) buffer, judge and replay or block."""
        route = route_of(request_data)
        if not self.guard_streams or route is None or not conversation_of(route, request_data):
            async for chunk in response:
                yield chunk
            return
        chunks = [chunk async for chunk in response]
        answer = stream_answer_of(route, chunks, request_data.get("messages"))
        if answer is not None and not (answer.calls_tools and not self.judge_tool_calls):
            await self._judge(request_data, answer, replaceable=False)
        for chunk in chunks:
            yield chunk
