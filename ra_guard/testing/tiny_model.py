"""Build a tiny random-weight Qwen3 chat model, for tests, demos and benchmarks.

The model is a real ``Qwen3ForCausalLM`` with a byte-level BPE tokenizer
trained on the spot, saved with ``save_pretrained`` so that it loads back
through the same ``from_pretrained`` path as a real RewardAnything checkpoint.
Its weights are random: it generates garbage and its scores mean nothing.
What it exercises is the code path (chat template, batching, KV caches,
digit-probability scoring), cheaply, on a CPU and without network access.

The tokenizer follows Qwen's conventions where they matter to ra-guard:
Qwen's pre-tokenizer split regex (so every digit is its own token),
``<|im_start|>``/``<|im_end|>``/``<|endoftext|>`` as special tokens,
``<think>``/``</think>`` as added (non-special) tokens, and a Qwen-style chat
template that honours ``enable_thinking=False`` by inserting an empty
``<think>\\n\\n</think>\\n\\n`` block.

Builds are cached by a content key (sizes, seed, builder version) under
``~/.cache/ra-guard`` (or ``$RA_GUARD_CACHE``), so each variant is built once.

Example:
    >>> path = build_tiny_model()  # doctest: +SKIP
    >>> LocalJudge(path, mode="fast")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ra_guard.local.loading import require

__all__ = ["CHAT_TEMPLATE", "TinyModelSpec", "build_tiny_model", "default_cache_dir"]

#: Bump when the build changes in a way that changes the saved files.
_BUILDER_VERSION = 1

#: Qwen2/Qwen3's pre-tokenizer split regex: digits (\p{N}) are single pre-tokens.
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: A Qwen-style chat template (thinking on unless ``enable_thinking=False``).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_ADDED_TOKENS = ["<think>", "</think>"]


@dataclass(frozen=True)
class TinyModelSpec:
    """Sizes of a tiny Qwen3 model.

    Attributes:
        hidden_size: Width of the residual stream.
        num_hidden_layers: Decoder layers.
        num_attention_heads: Query heads.
        num_key_value_heads: Key/value heads (grouped-query attention).
        intermediate_size: Width of the MLP.
        vocab_size: Target BPE vocabulary size (the trained one may be smaller).
        max_position_embeddings: The model's context length.
        initializer_range: Standard deviation of the random weights (larger than
            Qwen's 0.02, so that the garbage a random model writes depends on its input).
        seed: Seed of the random weights.

    Example:
        >>> TinyModelSpec.named("tiny").num_hidden_layers
        2
    """

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int = 1024
    max_position_embeddings: int = 4096
    initializer_range: float = 0.1
    seed: int = 0

    @classmethod
    def named(cls, size: Literal["tiny", "small"]) -> TinyModelSpec:
        """``"tiny"`` (~0.1M parameters, tests) or ``"small"`` (~20M parameters, benchmarks)."""
        if size == "tiny":
            return cls()
        if size == "small":
            return cls(
                hidden_size=512,
                num_hidden_layers=6,
                num_attention_heads=8,
                num_key_value_heads=4,
                intermediate_size=1536,
                vocab_size=4096,
                initializer_range=0.05,
            )
        raise ValueError(f"unknown tiny model size {size!r}: use 'tiny' or 'small'")

    def key(self) -> str:
        """A short content key for the build cache."""
        payload = json.dumps({"builder": _BUILDER_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    """Where built models are cached: ``$RA_GUARD_CACHE`` or ``~/.cache/ra-guard``.

    Example:
        >>> isinstance(default_cache_dir(), Path)
        True
    """
    env = os.environ.get("RA_GUARD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ra-guard"


def _training_corpus() -> list[str]:
    """Text the BPE is trained on: the judge's own vocabulary, JSON and some prose."""
    from ra_guard.judges.format import system_prompt

    names = ", ".join(f'"model-{i}": {i % 5 + 1}' for i in range(1, 33))
    lines = [
        system_prompt(),
        '{"principle": "Be concise.", "prompt": "What is the capital of France?", "responses": {' + names + "}}",
        '{"scores": {"model-1": 2, "model-2": 4}, "best-to-worst": ["model-2", "model-1"]}',
        "<think>\nThe first response follows the principle; the second one does not.\n</think>\n\n",
        "The capital of France is Paris. Paris is a large city on the Seine, known for art and food.",
        "Answer briefly and politely. Do not give harmful instructions. Explain your reasoning step by step.",
        "0123456789 " * 4,
    ]
    return lines * 8


def _build_tokenizer(spec: TinyModelSpec) -> Any:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    transformers: Any = require("transformers")

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_corpus(), trainer=trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in _ADDED_TOKENS])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=spec.max_position_embeddings,
    )


def _build_model(spec: TinyModelSpec, tokenizer: Any) -> Any:
    torch: Any = require("torch")
    transformers: Any = require("transformers")
    config = transformers.Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.hidden_size // spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        initializer_range=spec.initializer_range,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # A private RNG state: building a model must not reseed the caller's torch RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = transformers.Qwen3ForCausalLM(config)
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def build_tiny_model(
    directory: str | Path | None = None,
    *,
    size: Literal["tiny", "small"] = "tiny",
    spec: TinyModelSpec | None = None,
) -> Path:
    """Build (once) and save a random-weight Qwen3 chat model; return its directory.

    Args:
        directory: The cache root; the model goes into ``<directory>/tiny-judge/<key>``.
            Defaults to :func:`default_cache_dir`.
        size: ``"tiny"`` for tests and demos, ``"small"`` (~20M parameters) for benchmarks.
        spec: Exact sizes, overriding ``size``.

    Returns:
        A directory that ``AutoModelForCausalLM.from_pretrained`` and
        ``AutoTokenizer.from_pretrained`` load, e.g. ``LocalJudge(path)``.

    Raises:
        MissingDependencyError: torch, transformers or tokenizers is not installed
            (``pip install 'ra-guard[local]'``).

    Example:
        >>> path = build_tiny_model("/tmp/ra-guard-cache")  # doctest: +SKIP
        >>> (path / "config.json").is_file()  # doctest: +SKIP
        True
    """
    for package in ("torch", "transformers", "tokenizers"):
        require(package)
    spec = spec or TinyModelSpec.named(size)
    root = Path(directory) if directory is not None else default_cache_dir()
    target = root / "tiny-judge" / spec.key()
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so that a concurrent or interrupted
    # build never leaves a half-written model where a reader would load it.
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.key()}-", dir=target.parent))
    try:
        tokenizer = _build_tokenizer(spec)
        model = _build_model(spec, tokenizer)
        tokenizer.save_pretrained(staging)
        model.save_pretrained(staging)
        (staging / "ra_guard_tiny_model.json").write_text(json.dumps(asdict(spec), indent=2))
        staging.chmod(0o755)  # mkdtemp makes it private; a model cache is ordinary data
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
