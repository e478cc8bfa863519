"""The state a traced decision keeps while it runs, and what backends and listeners see of it.

:mod:`ra_guard.tracing` writes the spans; this module holds what they share
through context variables: the running decision (:class:`DecisionState`) and
the running sampling or judge call (:class:`CallState`), which a backend's
:func:`record_retry` counts into. :class:`DecisionSpans` and
:class:`DecisionListener` are what listeners such as
:class:`ra_guard.phoenix.PhoenixAnnotator` receive.

Example:
    >>> record_retry(TimeoutError("read timed out"), attempt=2)  # outside a traced call: nothing happens
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span

from ra_guard._redact import redact_capped, redact_name
from ra_guard.types import Usage

if TYPE_CHECKING:
    from ra_guard.decision import Decision

__all__ = [
    "MAX_MESSAGE",
    "CallState",
    "CallTarget",
    "DecisionListener",
    "DecisionSpans",
    "DecisionState",
    "UNKNOWN_PROVIDER",
    "known_target",
    "metric_target",
    "reported_target",
    "request_model",
    "target_attributes",
    "record_call_target",
    "record_retry",
    "record_target",
    "litellm_target",
    "provider_named",
    "server_of",
]

#: Characters kept of an exception message on a span (capped, then redacted).
MAX_MESSAGE = 4096


@dataclass(frozen=True)
class DecisionSpans:
    """Where a decision's spans are, for listeners that annotate them (hex ids).

    Attributes:
        trace_id: The trace, 32 hex digits.
        root_span_id: The ``invoke_workflow`` span, 16 hex digits.
        candidate_span_ids: Per candidate index, the span its evaluations sit on
            (its sampling span, or the root for original and given candidates).
    """

    trace_id: str
    root_span_id: str
    candidate_span_ids: dict[int, str]


class DecisionListener(Protocol):
    """Called with every finished, traced decision (e.g. :class:`ra_guard.phoenix.PhoenixAnnotator`).

    It runs on the request path: hand work off to a thread and return.
    """

    def on_decision(self, decision: Decision, spans: DecisionSpans) -> None:
        """Take note of a finished decision."""


@dataclass(frozen=True)
class CallTarget:
    """What a backend calls, in the GenAI conventions' terms (see :func:`record_target`).

    Attributes:
        provider: ``gen_ai.provider.name``: a well-known value of the conventions
            (``openai``, ``anthropic``, ``aws.bedrock``...) or the backend's own.
        model: ``gen_ai.request.model``: the model name the request is sent with
            (no routing prefix), where known.
        server_address: ``server.address``: the host called, for remote backends.
        server_port: ``server.port``: its port.
    """

    provider: str
    model: str | None = None
    server_address: str | None = None
    server_port: int | None = None


@dataclass
class CallState:
    """One sampling or judge call while it runs (per task, through a context variable)."""

    error_type: str | None = None
    usage: Usage | None = None
    retries: int = 0
    # What the backend said it called (record_target), for the span's and metrics' attributes.
    target: CallTarget | None = None


@dataclass
class DecisionState:
    """One decision while it runs: its root and the sampling spans kept open for evaluation events."""

    root: Span
    recording: bool
    guard: str
    strategy: str
    started: float
    # No tracer provider and no meter provider set: every span is the API's invalid
    # span and every value is dropped, so the calls within skip their spans and figures.
    silent: bool = False
    finished: bool = False
    # attempt -> (sampling span, the time its call ended); the span is ended with
    # that time once the evaluation events of its candidates have been added.
    sampling: dict[int, tuple[Span, int]] = field(default_factory=dict)
    # Captured text -> its cleaned form: a candidate is recorded on its sampling span, in each
    # judge call and as the output, but redacted once per decision.
    cleaned: dict[str, str] = field(default_factory=dict)


# What a call inside a silent decision gets: the invalid span, nothing to set up or end
# (a nullcontext holds no state, so one serves every call).
SILENT_CALL: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)

decision_state: ContextVar[DecisionState | None] = ContextVar("ra_guard_decision", default=None)
call_state: ContextVar[CallState | None] = ContextVar("ra_guard_call", default=None)


# Backend name -> the target it last reported: spans of later calls get the provider, model and
# server at creation (the conventions ask for them then). Bounded: names are few, but not fixed.
_TARGETS: dict[str, CallTarget] = {}
_MAX_TARGETS = 512


def record_target(
    backend: str,
    *,
    provider: str,
    model: str | None = None,
    server_address: str | None = None,
    server_port: int | None = None,
) -> None:
    """Say, from a judge or sampler backend, which provider, model and server it calls.

    Inside a traced call, the call's span and metrics carry it
    (``gen_ai.provider.name``, ``gen_ai.request.model``, ``server.address``,
    ``server.port``); spans of later calls by the backend named ``backend`` get
    it at creation. A backend calls it when it is built and when it learns its
    model (a judge that asks the server's ``/v1/models``). A backend that never
    calls it is traced with ``gen_ai.provider.name="unknown"`` and its name for a model.

    Args:
        backend: The backend's ``name``, as the guard passes it to the tracer.
        provider: ``gen_ai.provider.name`` (a well-known value of the conventions where one applies).
        model: The model the request names, without a routing prefix (``gpt-4o-mini``, not ``openai/gpt-4o-mini``).
        server_address: The host called, for remote backends.
        server_port: Its port.

    Example:
        >>> record_target("my-backend", provider="openai", model="gpt-4o-mini", server_address="api.openai.com",
        ...               server_port=443)
        >>> known_target("my-backend").model
        'gpt-4o-mini'
    """
    record_call_target(
        backend, CallTarget(provider=provider, model=model, server_address=server_address, server_port=server_port)
    )


def record_call_target(backend: str, target: CallTarget) -> None:
    """:func:`record_target` for a backend that already holds its :class:`CallTarget` (litellm's, say).

    Example:
        >>> record_call_target("my-backend", CallTarget(provider="openai", model="gpt-4o"))
        >>> known_target("my-backend").model
        'gpt-4o'
    """
    if _TARGETS.get(backend) != target:
        _TARGETS.pop(backend, None)
        if len(_TARGETS) >= _MAX_TARGETS:
            del _TARGETS[next(iter(_TARGETS))]  # the oldest name
        _TARGETS[backend] = target
    call = call_state.get()
    if call is not None:
        call.target = target


def server_of(url: str | None) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of a URL (the scheme's port where it names none).

    Example:
        >>> server_of("http://gpu-1:8000/v1"), server_of("https://api.openai.com/v1"), server_of(None)
        (('gpu-1', 8000), ('api.openai.com', 443), (None, None))
    """
    if not url:
        return None, None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a malformed port: no server attributes rather than a failed call
        return None, None
    if not parts.hostname:
        return None, None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.hostname, port


# litellm's provider names -> the GenAI conventions' well-known gen_ai.provider.name values.
# Servers of the OpenAI chat API (vLLM...) are the "openai" flavour; others keep litellm's name.
_LITELLM_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "hosted_vllm": "openai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
    "watsonx_text": "ibm.watsonx.ai",
    "moonshot": "moonshot_ai",
}


# LangChain's ``ls_provider`` names that differ from litellm's.
_LANGCHAIN_PROVIDERS = {
    "google_vertexai": "gcp.vertex_ai",
    "google_genai": "gcp.gemini",
    "mistralai": "mistral_ai",
    "amazon_bedrock": "aws.bedrock",
    "azure_openai": "azure.ai.openai",
}


def provider_named(name: str | None) -> str:
    """The conventions' ``gen_ai.provider.name`` for a client library's provider name (litellm's, LangChain's).

    Example:
        >>> provider_named("bedrock"), provider_named("google_genai"), provider_named("ollama"), provider_named(None)
        ('aws.bedrock', 'gcp.gemini', 'ollama', 'unknown')
    """
    if not name:
        return "unknown"
    return _LITELLM_PROVIDERS.get(name) or _LANGCHAIN_PROVIDERS.get(name) or name


def litellm_target(litellm: Any, model: str, options: dict[str, Any]) -> CallTarget:
    """The provider, model (routing prefix removed) and server of a litellm model string.

    Args:
        litellm: The imported ``litellm`` module (ra-guard imports it lazily).
        model: The model string (``openai/<served-name>``, ``gpt-4o-mini``, ``anthropic/claude-...``).
        options: The call's keyword arguments (``api_base`` or ``base_url`` give the server).

    Example:
        >>> import litellm
        >>> litellm_target(litellm, "openai/ra-8b", {"api_base": "http://gpu-1:8000/v1"})
        CallTarget(provider='openai', model='ra-8b', server_address='gpu-1', server_port=8000)
    """
    prefix, _, rest = model.partition("/")
    provider: str | None
    if rest and prefix in set(getattr(litellm, "provider_list", ())):
        provider, name = prefix, rest
    else:
        # No routing prefix: litellm finds the provider from its model list (gpt-4o-mini -> openai).
        known = getattr(litellm, "model_cost", {}).get(model)
        provider = known.get("litellm_provider") if isinstance(known, dict) else None
        name = model
    api_base = options.get("api_base") or options.get("base_url")
    address, port = server_of(api_base if isinstance(api_base, str) else None)
    return CallTarget(
        provider=provider_named(provider),
        model=name,
        server_address=address,
        server_port=port,
    )


def known_target(backend: str) -> CallTarget | None:
    """The target the backend named ``backend`` last reported with :func:`record_target`, if any.

    Example:
        >>> known_target("a backend that never reported") is None
        True
    """
    return _TARGETS.get(backend)


def record_retry(error: BaseException | None = None, *, attempt: int | None = None) -> None:
    """Note, from inside a judge or sampler backend, that a call is being retried.

    Adds a ``ra_guard.retry`` event (with the redacted error) to the current span
    and counts the retry into the judge span's ``ra_guard.judge.retries`` and the
    ``ra_guard.judge.retries`` metric. Outside a traced call it does nothing.

    Args:
        error: What failed, if anything.
        attempt: The attempt about to be made (2 for the first retry).

    Example:
        >>> record_retry(TimeoutError("read timed out"), attempt=2)
    """
    state = call_state.get()
    if state is None:
        return
    state.retries += 1
    span = trace.get_current_span()
    if span.is_recording():
        attributes: dict[str, Any] = {}
        if attempt is not None:
            attributes["ra_guard.attempt"] = attempt
        if error is not None:
            attributes["error.type"] = type(error).__name__
            attributes["exception.message"] = redact_capped(str(error), MAX_MESSAGE)
        span.add_event("ra_guard.retry", attributes)


# -- what spans and metrics say of a call's target -----------------------------

# gen_ai.provider.name of a backend that never said (record_target): the attribute is required.
UNKNOWN_PROVIDER = "unknown"


def request_model(model: object, backend: str, target: CallTarget | None = None) -> str:
    """The model a span is named for: what the backend reported, its ``model`` string, else its name."""
    if target is not None and target.model:
        return redact_name(target.model)
    if isinstance(model, str) and model:
        return redact_name(model)
    return backend


def target_attributes(target: CallTarget | None) -> dict[str, Any]:
    """``gen_ai.provider.name`` and, for a remote backend, ``server.address``/``server.port``."""
    attributes: dict[str, Any] = {"gen_ai.provider.name": target.provider if target else UNKNOWN_PROVIDER}
    if target is not None and target.server_address:
        attributes["server.address"] = target.server_address
        if target.server_port is not None:
            attributes["server.port"] = target.server_port
    return attributes


def metric_target(target: CallTarget | None) -> dict[str, Any]:
    """The keyword arguments :class:`~ra_guard.metrics.DecisionMetrics` takes for a call's target."""
    if target is None:
        return {"provider": UNKNOWN_PROVIDER}
    return {"provider": target.provider, "server_address": target.server_address, "server_port": target.server_port}


def reported_target(
    span: Span, call: CallState, target: CallTarget | None, given: object, name: str, model: str
) -> tuple[str, CallTarget | None]:
    """The model and target of a finished call, updated on its span where the backend reported new ones.

    A judge that learns its model from the server (``/v1/models``) reports it
    during its first call: the span, its name and the call's metrics then carry
    the model, not the judge's name.
    """
    reported = call.target
    if reported is None:
        # A batching judge answers outside each request's call: what it reported is keyed by its name.
        reported = known_target(name) if target is None else None
        if reported is None:
            return model, target
    if reported == target:
        return model, target
    new_model = request_model(given, redact_name(name), reported)
    if span.is_recording():
        span.set_attributes(target_attributes(reported))
        if new_model != model:
            span.set_attribute("gen_ai.request.model", new_model)
            span.update_name(f"chat {new_model}")
    return new_model, reported
