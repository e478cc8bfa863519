"""Loading transformers models for local inference, with errors that say what to fix.

Shared by the local judge and the transformers sampler. torch and transformers
are imported lazily: a missing one raises
``MissingDependencyError(..., extra="local")`` only when a local backend is built.

Example:
    >>> options = LoadOptions(dtype="float32", device="cpu")
    >>> options.device
    'cpu'
"""

from __future__ import annotations

import importlib
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
