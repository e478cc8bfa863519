"""Loading transformers models for local inference, with errors that say what to fix.

Shared by the local judge and the transformers sampler. torch and transformers
are imported lazily: a missing one raises
``MissingDependencyError(..., extra="local")`` only when a local backend is built.
:class:`TokenEncoder` tokenizes a chat so that message text never becomes a
control token (candidates, prompts and principles are untrusted input).

Example:
    >>> options = LoadOptions(dtype="float32", device="cpu")
    >>> options.device
    'cpu'
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ra_guard.exceptions import (  # the Local* errors are re-exported: the local backends raise them
    ConfigurationError,
    LocalModelError,
    LocalOutOfMemoryError,
    MissingDependencyError,
    SamplerOutOfMemoryError,
)

__all__ = [
    "LoadOptions",
    "LocalModelError",
    "LocalOutOfMemoryError",
    "SamplerOutOfMemoryError",
    "TokenEncoder",
    "is_out_of_memory",
    "load_model_and_tokenizer",
    "require",
]

Dtype = Literal["auto", "float32", "float16", "bfloat16"]


def require(module: str) -> Any:
    """Import an optional dependency of the ``local`` extra, or say how to install it.

    Example:
        >>> require("json").dumps(1)
        '1'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module.split(".")[0], extra="local") from None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's out-of-memory error (CUDA) or a failed CPU allocation.

    Example:
        >>> is_out_of_memory(MemoryError())
        True
        >>> is_out_of_memory(ValueError("x"))
        False
    """
    if isinstance(exc, MemoryError):
        return True
    torch = importlib.import_module("torch") if _has_torch() else None
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def _has_torch() -> bool:
    try:
        importlib.import_module("torch")
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class LoadOptions:
    """How to load a local model with ``from_pretrained``.

    Attributes:
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU), or a dtype name.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; ``None`` picks
            CUDA when available. Ignored when ``device_map`` is given.
        device_map: Passed to ``from_pretrained`` (``"auto"`` spreads a large
            model over the visible GPUs; needs ``accelerate``).
        attn_implementation: ``"sdpa"``, ``"eager"``, ``"flash_attention_2"``;
            ``None`` lets transformers choose.
        trust_remote_code: Allow model code from the checkpoint (off by default).
        revision: A hub revision (branch, tag or commit) for hub ids.

    Example:
        >>> LoadOptions(device_map="auto").device_map
        'auto'
    """

    dtype: Dtype | str = "auto"
    device: str | None = None
    device_map: str | dict[str, Any] | None = None
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    revision: str | None = None


def _resolve_dtype(torch: Any, dtype: str, device: str) -> Any:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ConfigurationError(
            f"dtype={dtype!r} is not a torch dtype; use 'auto', 'float32', 'bfloat16' or 'float16'"
        )
    return value


def _looks_like_path(target: str) -> bool:
    return target.startswith((".", "/", "~")) or Path(target).expanduser().exists() or target.count("/") > 1


def _check_config(target: str, transformers: Any, options: LoadOptions) -> Any:
    """Load the config alone (cheap) and refuse what cannot be a chat judge."""
    try:
        config = transformers.AutoConfig.from_pretrained(
            target, trust_remote_code=options.trust_remote_code, revision=options.revision
        )
    except (OSError, ValueError) as exc:
        raise LocalModelError(
            target,
            f"cannot load a model config ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); "
            "give a directory saved with save_pretrained (config.json, weights, tokenizer files) "
            "or a hub id that is already in the local cache",
        ) from None
    auto = importlib.import_module("transformers.models.auto.modeling_auto")
    causal: dict[str, str] = dict(auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    masked: dict[str, str] = dict(auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    model_type = getattr(config, "model_type", "")
    remote = options.trust_remote_code and getattr(config, "auto_map", None)
    architectures = list(getattr(config, "architectures", None) or [])
    is_causal = model_type in causal and model_type not in masked and not getattr(config, "is_encoder_decoder", False)
    if architectures and is_causal:
        is_causal = any(a == causal[model_type] or a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    if not is_causal and not remote:
        shown = ", ".join(architectures) or model_type or "unknown"
        raise LocalModelError(
            target,
            f"architecture {shown} is not a decoder-only causal language model; "
            "a local judge or sampler needs a chat LM such as a Qwen3 checkpoint "
            "(RewardAnything-8B is Qwen3ForCausalLM)",
        )
    return config


def load_model_and_tokenizer(target: str | Path, options: LoadOptions) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer with ``from_pretrained``; check they can chat.

    Args:
        target: A local directory or a hub id (hub ids must already be cached
            when ``HF_HUB_OFFLINE=1``).
        options: dtype, device, attention implementation.

    Returns:
        ``(model, tokenizer)``, the model in eval mode, the tokenizer left-padding.

    Raises:
        LocalModelError: Missing files, a wrong architecture, or no chat template.
        MissingDependencyError: torch or transformers is not installed.

    Example:
        >>> load_model_and_tokenizer("/nonexistent/model", LoadOptions())
        Traceback (most recent call last):
        ...
        ra_guard.exceptions.LocalModelError: /nonexistent/model: no such directory
    """
    text = str(target)
    if _looks_like_path(text) and not Path(text).expanduser().is_dir():
        raise LocalModelError(text, "no such directory")
    if Path(text).expanduser().is_dir():
        text = str(Path(text).expanduser())
        if not (Path(text) / "config.json").is_file():
            raise LocalModelError(text, "no config.json in this directory; save the model with save_pretrained")
    torch = require("torch")
    transformers = require("transformers")
    config = _check_config(text, transformers, options)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            text, trust_remote_code=options.trust_remote_code, revision=options.revision
        )
    except (OSError, ValueError, TypeError) as exc:
        raise LocalModelError(
            text, f"cannot load the tokenizer ({exc.__class__.__name__}); save it beside the model"
        ) from None
    if not getattr(tokenizer, "chat_template", None):
        raise LocalModelError(
            text, "the tokenizer has no chat template; a judge needs a chat model (e.g. a Qwen3 checkpoint)"
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs: dict[str, Any] = {
        "dtype": _resolve_dtype(torch, str(options.dtype), device),
        "trust_remote_code": options.trust_remote_code,
        "revision": options.revision,
        "config": config,
    }
    if options.attn_implementation is not None:
        kwargs["attn_implementation"] = options.attn_implementation
    if options.device_map is not None:
        kwargs["device_map"] = options.device_map
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(text, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise LocalModelError(text, f"cannot load the model weights: {first}") from None
    if options.device_map is None:
        try:
            model = model.to(device)
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise LocalModelError(
                text, f"cannot move the model to device {device!r} ({exc}); pick another device= or use device_map"
            ) from None
    model.eval()
    return model, tokenizer


class TokenEncoder:
    """Tokenizes chat-template scaffolding and untrusted text apart, so text never becomes a control token.

    A tokenizer maps the text ``<|im_start|>`` to the control token of that name
    wherever it occurs. Tokenizing a rendered chat template as one string would
    therefore let a candidate (or prompt, or principle) that contains
    ``<|im_end|>\\n<|im_start|>system ...`` open a turn of its own in the model's
    input. Here only the template's own text is tokenized with control tokens
    (:meth:`trusted`); message contents go through :meth:`untrusted` or
    :meth:`parts`, which spell every control-token string out as ordinary text
    and then check that no control id came from them.

    Control tokens are the tokenizer's added tokens (special or not, e.g. Qwen3's
    ``<think>``), except those that are only whitespace.

    Args:
        tokenizer: A transformers tokenizer.
        model_name: For error messages.

    Example:
        >>> encoder = TokenEncoder(tokenizer)  # doctest: +SKIP
        >>> encoder.untrusted("<|im_start|>") == encoder.trusted("<|im_start|>")  # doctest: +SKIP
        False
    """

    def __init__(self, tokenizer: Any, *, model_name: str = "") -> None:
        self.tokenizer = tokenizer
        self.model_name = model_name
        decoder: dict[int, Any] = dict(getattr(tokenizer, "added_tokens_decoder", {}) or {})
        controls = {int(i): str(getattr(t, "content", t)) for i, t in decoder.items()}
        controls = {i: text for i, text in controls.items() if text.strip()}
        self.control_ids: frozenset[int] = frozenset(controls)
        # Longest first: where one control string contains another, the longer one is spelled out.
        texts = sorted(set(controls.values()), key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(t) for t in texts)) if texts else None

    def trusted(self, text: str) -> list[int]:
        """Token ids of our own text (template scaffolding): control-token strings become control tokens."""
        if not text:
            return []
        # verbose=False: measuring an over-long input is expected here, not worth a log warning.
        ids: list[int] = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return ids

    def untrusted(self, text: str) -> list[int]:
        """Token ids of untrusted text, with no control token whatever the text says.

        Raises:
            LocalModelError: The tokenizer still produced a control id.
        """
        return self.parts([(text, False)])

    def parts(self, parts: Sequence[tuple[str, bool]]) -> list[int]:
        """Token ids of ``(text, trusted)`` parts, read as one text where nothing is at stake.

        The parts are tokenized as one string (so benign input gets exactly the
        ids of the whole rendered template), cut only where an untrusted part
        holds a control-token string: that string is split after its first
        character, which the tokenizer cannot read as the control token. The
        text is unchanged when decoded. Afterwards the control ids are counted:
        exactly as many as the trusted parts spell.

        Raises:
            LocalModelError: A control id came from untrusted text (a tokenizer
                this method does not know how to handle).
        """
        ids: list[int] = []
        pending = ""
        expected = 0
        for text, trusted in parts:
            if trusted or self._pattern is None:
                pending += text
                expected += len(self._pattern.findall(text)) if trusted and self._pattern is not None else 0
                continue
            start = 0
            for match in self._pattern.finditer(text):
                ids += self.trusted(pending + text[start : match.start()] + match.group()[0])
                pending, start = match.group()[1:], match.end()
            pending += text[start:]
        ids += self.trusted(pending)
        found = sum(1 for token in ids if token in self.control_ids)
        if found != expected:
            raise LocalModelError(
                self.model_name,
                f"cannot tokenize untrusted text without control tokens ({found} found, {expected} expected); "
                "this tokenizer is not supported for untrusted input",
            )
        return ids

    def chat(self, messages: Sequence[Mapping[str, Any]], **template_kwargs: Any) -> list[int]:
        """Token ids of ``messages`` through the chat template, contents tokenized as untrusted text.

        Each string content is replaced by a placeholder while the template is
        rendered; the scaffolding around the placeholders is tokenized with
        control tokens, each content without. A content that is not a string
        (``None``, a list of parts) is left for the template to render.

        Raises:
            LocalModelError: The template does not render each content exactly
                once (it would be unsafe to guess where the content went).
        """
        placeholders: dict[str, str] = {}
        rendered: list[dict[str, Any]] = []
        for i, message in enumerate(messages):
            copy = dict(message)
            content = copy.get("content")
            if isinstance(content, str):
                placeholder = f"\x00ra-guard-content-{i}\x00"
                placeholders[placeholder] = content
                copy["content"] = placeholder
            rendered.append(copy)
        text: str = self.tokenizer.apply_chat_template(rendered, tokenize=False, **template_kwargs)
        parts: list[tuple[str, bool]] = []
        start = 0
        for placeholder, content in placeholders.items():
            at = text.find(placeholder, start)
            if at < 0 or text.count(placeholder) != 1:
                raise LocalModelError(
                    self.model_name,
                    "the chat template does not render each message content exactly once; "
                    "ra-guard cannot keep message text apart from control tokens with it",
                )
            parts += [(text[start:at], True), (content, False)]
            start = at + len(placeholder)
        return self.parts([*parts, (text[start:], True)])
