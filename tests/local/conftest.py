"""Fixtures for the local inference tests: one tiny random Qwen3, built once per session, offline.

The model is built with :func:`ra_guard.testing.tiny_model.build_tiny_model` into the
session's temporary directory and loaded back through ``from_pretrained``,
exactly as users load a real checkpoint. The hub is never called:
``HF_HUB_OFFLINE=1`` and ``HF_HOME`` points into the temporary directory.

The tiny model's weights are random, so its digits 1-5 hold about 0.5% of the
probability where a score is read (measured: 0.0043-0.0087), far below the
judge's default ``min_digit_mass=0.1``: tests that read its digits in
``fast``/``hybrid`` mode pass ``min_digit_mass=0.0``, and
``test_low_digit_mass.py`` tests what the default does with it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _go_offline(mp: pytest.MonkeyPatch, home: Path) -> None:
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    mp.setenv("HF_HOME", str(home))
    mp.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: its constants were read at import time
        mp.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Directory of the tiny random Qwen3 judge (built once per session)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    with pytest.MonkeyPatch.context() as mp:
        _go_offline(mp, tmp_path_factory.mktemp("hf-home"))
        from ra_guard.testing.tiny_model import build_tiny_model

        yield build_tiny_model(tmp_path_factory.getbasetemp() / "ra-guard-cache")


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_path: Path) -> tuple[object, object]:
    """The tiny model and tokenizer, loaded once (for engine-level tests and wrappers)."""
    from ra_guard.local.loading import LoadOptions, load_model_and_tokenizer

    return load_model_and_tokenizer(tiny_model_path, LoadOptions(device="cpu"))
