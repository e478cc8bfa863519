"""Moved to :mod:`ra_guard.local` (the sampler lives in ``ra_guard/local/sampler.py``); re-exported here."""

from ra_guard.local.sampler import SamplerOutOfMemoryError, TransformersSampler

__all__ = ["SamplerOutOfMemoryError", "TransformersSampler"]
