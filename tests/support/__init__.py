"""Test support shared by the suite, the benchmarks and the examples.

:class:`~tests.support.openai_server.OpenAIStubServer` is a real HTTP server on
127.0.0.1 that speaks the OpenAI chat-completions API and the reference
``rewardanything serve`` API, with scripted answers, latencies and faults.
Names are imported lazily, so that ``python -m tests.support.openai_server``
runs the module once.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Completion", "Fault", "OpenAIStubServer", "RecordedRequest", "is_judge_request", "judge_text"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("tests.support.openai_server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
