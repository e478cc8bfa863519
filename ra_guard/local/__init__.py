"""Local inference: a RewardAnything judge and a candidate sampler running in this process.

Everything that runs a transformers model inside ra-guard lives here:

- :class:`LocalJudge` (spec ``"local:<path>"``) judges with a RewardAnything
  checkpoint: dynamic batching, a prefix cache, ``reasoning``/``fast``/``hybrid``
  scoring (:mod:`ra_guard.local.judge`, with its private engine, batcher, input
  preparation and truncation modules beside it).
- :class:`TransformersSampler` (spec ``"transformers:<path>"``) samples N
  candidates in one batched ``generate`` (:mod:`ra_guard.local.sampler`).
- :mod:`ra_guard.local.loading` is the one place models are loaded with
  ``from_pretrained``: both backends take the same load options
  (:class:`LoadOptions`: ``dtype``, ``device``, ``device_map``,
  ``attn_implementation``, ``trust_remote_code``, ``revision``).

Importing this package imports neither torch nor transformers; building a
backend does, and a missing one names the extra (``pip install 'ra-guard[local]'``).

Example:
    >>> from ra_guard.local import LocalJudge, TransformersSampler
    >>> judge = LocalJudge("/models/RewardAnything-8B-v1", mode="fast", revision=None)  # doctest: +SKIP
    >>> sampler = TransformersSampler("/models/Qwen3-1.7B", dtype="bfloat16")  # doctest: +SKIP
    >>> LoadOptions(dtype="bfloat16").dtype
    'bfloat16'
"""

from __future__ import annotations

from ra_guard.local.judge import JudgeSettings, LocalJudge, LocalJudgeSettings, LowDigitMass, Mode, OnTooLong
from ra_guard.local.loading import (
    LoadOptions,
    LoadSettings,
    LocalModelError,
    LocalOutOfMemoryError,
    SamplerOutOfMemoryError,
)
from ra_guard.local.sampler import TransformersSampler

__all__ = [
    "JudgeSettings",
    "LoadOptions",
    "LoadSettings",
    "LocalJudge",
    "LocalJudgeSettings",
    "LocalModelError",
    "LocalOutOfMemoryError",
    "LowDigitMass",
    "Mode",
    "OnTooLong",
    "SamplerOutOfMemoryError",
    "TransformersSampler",
]
