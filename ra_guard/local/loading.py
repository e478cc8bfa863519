"""Loading a transformers chat model for local inference: one set of options, checked once.

The one place where ra-guard calls ``from_pretrained``: the local judge
(:class:`~ra_guard.local.LocalJudge`), the transformers sampler
(:class:`~ra_guard.local.TransformersSampler`) and the model builders of
:mod:`ra_guard.testing` all load through here, so they accept the same load
options (:class:`LoadSettings`, keyword arguments of both backends) with the
same defaults and the same errors. torch and transformers are imported lazily:
a missing one raises ``MissingDependencyError(..., extra="local")`` only when a
local backend is built.

Example:
    >>> options = LoadOptions.from_settings({"dtype": "float32", "revision": "v1.0"}, owner="LocalJudge")
    >>> options.dtype, options.revision
    ('float32', 'v1.0')
    >>> LoadOptions.from_settings({"revison": "v1.0"}, owner="LocalJudge")
    Traceback (most recent call last):
    ...
    ra_guard.exceptions.ConfigurationError: LocalJudge got an unknown setting 'revison' (did you mean 'revision'?); ...
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from typing_extensions import TypedDict

from ra_guard.exceptions import (  # the Local* errors are re-exported: the local backends raise them
    ConfigurationError,
    LocalModelError,
    LocalOutOfMemoryError,
    MissingDependencyError,
    SamplerOutOfMemoryError,
)

__all__ = [
    "LOAD_SETTINGS",
    "Dtype",
    "LoadOptions",
    "LoadSettings",
    "LocalModelError",
    "LocalOutOfMemoryError",
    "SamplerOutOfMemoryError",
    "check_known_settings",
    "is_out_of_memory",
    "load_model_and_tokenizer",
    "require",
]

logger = logging.getLogger("ra_guard")

Dtype = Literal["auto", "float32", "float16", "bfloat16"]

#: Floating-point dtype names that ``from_pretrained`` loads weights in (torch's names and aliases).
_DTYPES = ("auto", "float32", "float16", "bfloat16", "float64", "float", "half", "double")


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


class LoadSettings(TypedDict, total=False):
    """The load options every local backend takes as keyword arguments (see :class:`LoadOptions`).

    Example:
        >>> settings: LoadSettings = {"dtype": "bfloat16", "revision": "main"}
        >>> LoadOptions.from_settings(settings, owner="TransformersSampler").dtype
        'bfloat16'
    """

    dtype: Dtype | str
    device: str | None
    device_map: str | dict[str, Any] | None
    attn_implementation: str | None
    trust_remote_code: bool
    revision: str | None


#: The names of the load options, in the order the docs list them.
LOAD_SETTINGS: tuple[str, ...] = tuple(LoadSettings.__annotations__)


def check_known_settings(given: Iterable[str], known: Collection[str], *, owner: str) -> None:
    """Refuse a keyword argument that ``owner`` does not know, with a "did you mean".

    Example:
        >>> check_known_settings(["max_tokens"], ["max_new_tokens", "seed"], owner="TransformersSampler")
        Traceback (most recent call last):
        ...
        ra_guard.exceptions.ConfigurationError: TransformersSampler got an unknown setting 'max_tokens' ...
    """
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(f"{owner} got an unknown setting {key!r}{hint}; known: {', '.join(known)}")


@dataclass(frozen=True)
class LoadOptions:
    """How to load a local model with ``from_pretrained``, checked when built.

    Attributes:
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU), or a floating
            dtype name (``"float32"``, ``"bfloat16"``, ``"float16"``...).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; ``None`` picks
            CUDA when available. Give ``device`` or ``device_map``, not both.
        device_map: Passed to ``from_pretrained`` (``"auto"`` spreads a large
            model over the visible GPUs; needs ``accelerate``).
        attn_implementation: ``"sdpa"``, ``"eager"``, ``"flash_attention_2"``;
            ``None`` lets transformers choose.
        trust_remote_code: Allow model code from the checkpoint (off by default).
        revision: A hub revision (branch, tag or commit) of a hub id; ignored,
            with a warning, for a local directory.

    Raises:
        ConfigurationError: An option has the wrong type or value.

    Example:
        >>> LoadOptions(device_map="auto").device_map
        'auto'
        >>> LoadOptions(trust_remote_code="no")
        Traceback (most recent call last):
        ...
        ra_guard.exceptions.ConfigurationError: trust_remote_code='no': use True or False
    """

    dtype: Dtype | str = "auto"
    device: str | None = None
    device_map: str | dict[str, Any] | None = None
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ConfigurationError(
                f"dtype={self.dtype!r} is not a floating torch dtype name; use 'auto', 'float32', 'bfloat16' "
                "or 'float16'"
            )
        if not isinstance(self.trust_remote_code, bool):  # a truthy string must not allow remote code
            raise ConfigurationError(f"trust_remote_code={self.trust_remote_code!r}: use True or False")
        for field in ("device", "attn_implementation", "revision"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigurationError(f"{field}={value!r}: give a non-empty string or None")
        if self.device_map is not None and not isinstance(self.device_map, (str, dict)):
            raise ConfigurationError(f"device_map={self.device_map!r}: give 'auto', a dict or None")
        if self.device is not None and self.device_map is not None:
            raise ConfigurationError(
                f"device={self.device!r} and device_map={self.device_map!r} both given: "
                "device_map places the model itself; give one of them"
            )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], *, owner: str) -> LoadOptions:
        """The options from a backend's keyword arguments, refusing unknown ones (with a "did you mean").

        Args:
            settings: Keyword arguments, all of them :data:`LOAD_SETTINGS`.
            owner: The backend's class name, for the error message.

        Raises:
            ConfigurationError: An unknown setting, or a wrong value.

        Example:
            >>> LoadOptions.from_settings({"device": "cpu"}, owner="LocalJudge").device
            'cpu'
        """
        check_known_settings(settings, LOAD_SETTINGS, owner=owner)
        return cls(**settings)


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
        options: Revision, dtype, device, attention implementation, remote code.

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
        if options.revision is not None:
            # transformers reads a directory as it is: a pinned revision would silently mean nothing.
            logger.warning(
                "revision=%r ignored: %s is a local directory, loaded as it is (a revision selects a hub commit)",
                options.revision,
                text,
            )
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


def load_gguf_model_and_tokenizer(gguf_file: str | Path, *, dtype: str = "bfloat16") -> tuple[Any, Any]:
    """Load (dequantise) a GGUF file with ``from_pretrained(..., gguf_file=...)``, for a model builder.

    The result is a transformers model and tokenizer in memory; a GGUF-loaded
    model refuses ``save_pretrained`` as it is (see
    :func:`ra_guard.testing.smollm2.prepare_smollm2`, which copies its weights).

    Args:
        gguf_file: The ``.gguf`` file.
        dtype: The dtype the weights are dequantised to.

    Raises:
        LocalModelError: The file is missing or transformers cannot read it.
        MissingDependencyError: torch, transformers or gguf is not installed.

    Example:
        >>> load_gguf_model_and_tokenizer("/nonexistent/model.gguf")
        Traceback (most recent call last):
        ...
        ra_guard.exceptions.LocalModelError: /nonexistent/model.gguf: no such GGUF file
    """
    path = Path(gguf_file).expanduser()
    if not path.is_file():
        raise LocalModelError(str(gguf_file), "no such GGUF file")
    options = LoadOptions(dtype=dtype, device="cpu")
    torch = require("torch")
    transformers = require("transformers")
    source_dir, name = str(path.parent), path.name
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source_dir, gguf_file=name)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source_dir, gguf_file=name, dtype=_resolve_dtype(torch, str(options.dtype), "cpu")
        )
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise LocalModelError(str(path), f"cannot load the GGUF file: {first}") from None
    return model, tokenizer
