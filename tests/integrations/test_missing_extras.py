"""Without their framework installed, the integration packages say which extra to install."""

from __future__ import annotations

import importlib
import sys

import pytest

from ra_guard import MissingDependencyError


@pytest.mark.parametrize(
    ("package", "framework", "extra"),
    [
        ("ra_guard.integrations.langchain", "langchain_core", "langchain"),
        ("ra_guard.integrations.litellm", "litellm", "litellm"),
    ],
)
def test_missing_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, package: str, framework: str, extra: str
) -> None:
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, framework, None)

    with pytest.raises(MissingDependencyError, match=rf"pip install 'ra-guard\[{extra}\]'"):
        importlib.import_module(package)


@pytest.mark.parametrize(
    ("package", "framework", "extra"),
    [
        ("ra_guard.integrations.openai_agents", "agents", "openai-agents"),
        ("ra_guard.integrations.pydantic_ai", "pydantic_ai", "pydantic-ai"),
    ],
)
def test_missing_agent_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, package: str, framework: str, extra: str
) -> None:
    test_missing_framework_names_the_extra(monkeypatch, package, framework, extra)
