"""Moved to :mod:`ra_guard.testing.smollm2` (test and demo helpers live under ``ra_guard.testing``)."""

from ra_guard.testing.smollm2 import SMOLLM2_DISTRIBUTION, SMOLLM2_GGUF, find_smollm2_gguf, prepare_smollm2

__all__ = ["SMOLLM2_DISTRIBUTION", "SMOLLM2_GGUF", "find_smollm2_gguf", "prepare_smollm2"]
