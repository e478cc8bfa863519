"""Suite-wide fixtures: a real OpenAI-compatible server on 127.0.0.1, and a network-free environment.

Nothing in the suite may leave the machine: litellm reads its model cost map
from the package instead of fetching it, loopback bypasses any configured
proxy, and the HTTP backends are pointed at :class:`OpenAIStubServer`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Set before anything imports litellm: it fetches its cost map over the network otherwise.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("LITELLM_TELEMETRY", "False")
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_variable, None)

from tests.support.openai_server import OpenAIStubServer  # noqa: E402 - after the environment is set


@pytest.fixture
def openai_server() -> Iterator[OpenAIStubServer]:
    """A fresh OpenAI-compatible stub server (model ``ra-stub``), closed after the test."""
    with OpenAIStubServer(models=["ra-stub"]) as server:
        yield server
