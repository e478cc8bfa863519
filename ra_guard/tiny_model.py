"""Moved to :mod:`ra_guard.testing.tiny_model` (test and demo helpers live under ``ra_guard.testing``)."""

from ra_guard.testing.tiny_model import CHAT_TEMPLATE, TinyModelSpec, build_tiny_model, default_cache_dir

__all__ = ["CHAT_TEMPLATE", "TinyModelSpec", "build_tiny_model", "default_cache_dir"]
