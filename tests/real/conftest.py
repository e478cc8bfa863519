"""Real servers serving a real model (SmolLM2-135M-Instruct), started once per test session.

Each server starts lazily, the first time a test asks for it, and is stopped by
PID (its whole process group) at the end of the session. Every test under
``tests/real/`` is marked ``slow`` and ``real_server`` and gets a long timeout:
the first one pays for the server's start-up (60–130 s for vLLM) and, on a fresh
machine, for installing vLLM into its cached venv (about 6.5 min).

A server that cannot run here is skipped with the error that stopped it, unless
``RA_GUARD_REQUIRE_REAL_SERVERS=1`` (set by ``make test``), where it fails.
Figures measured along the way (start-up, call latencies, digit masses) are
printed at the end of the run and written to ``real-server-figures.json`` in the
test cache.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import ServerProcess
from tests.support.vllm_server import CACHE, start_vllm

#: The name vLLM serves SmolLM2 under.
SERVED_NAME = "smollm2"
#: The context length vLLM is started with (``--max-model-len``), reported by its ``/v1/models``.
VLLM_MAX_MODEL_LEN = 8192
#: Seconds a real-server test may take, fixture set-up (install, start-up) included.
REAL_SERVER_TIMEOUT_S = 1500

_HERE = Path(__file__).parent
_REQUIRED = os.environ.get("RA_GUARD_REQUIRE_REAL_SERVERS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.real_server)
            item.add_marker(pytest.mark.timeout(REAL_SERVER_TIMEOUT_S))


@dataclass
class Backend:
    """An OpenAI-compatible server under test, and what it is known to support."""

    kind: str
    server: ServerProcess
    model: str
    #: Honours ``n`` in one call.
    supports_n: bool
    #: Returns ``top_logprobs`` and continues a final assistant message.
    digit_logprobs: bool
    #: Honours ``response_format`` with a JSON schema.
    structured_output: bool
    #: The context length its ``/v1/models`` reports (vLLM's ``max_model_len``), if any.
    context_tokens: int | None = None

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"


@dataclass
class Figures:
    """Real figures seen during the run, printed at the end and kept in the test cache."""

    values: dict[str, Any] = field(default_factory=dict)

    def record(self, key: str, value: Any) -> None:
        self.values[key] = value

    def append(self, key: str, value: Any) -> None:
        self.values.setdefault(key, []).append(value)


_FIGURES = Figures()
_SERVERS: dict[str, ServerProcess] = {}


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES.values:
        return
    terminalreporter.section("real-server figures")
    for key, value in _FIGURES.values.items():
        terminalreporter.write_line(f"{key}: {json.dumps(value, default=str)}")
    path = CACHE / "real-server-figures.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_FIGURES.values, indent=2, default=str))
    terminalreporter.write_line(f"(written to {path})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, server in _SERVERS.items():
            report.sections.append((f"{name} log (tail, {server.log_path})", server.log_tail(3000)))


class _Unavailable:
    """Remembers why a server could not start, so the next test does not wait for it again."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}

    def start(self, name: str, starter: Callable[[], ServerProcess]) -> ServerProcess:
        if name in self.reasons:
            self._give_up(self.reasons[name])
        try:
            server = starter()
        except (RuntimeError, OSError, TimeoutError) as exc:
            self.reasons[name] = f"{name} cannot run here: {exc}"
            self._give_up(self.reasons[name])
        _SERVERS[name] = server
        _FIGURES.record(f"{name}.startup_s", round(server.ready_s, 1))
        return server

    @staticmethod
    def _give_up(reason: str) -> None:
        if _REQUIRED:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


_UNAVAILABLE = _Unavailable()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct checkpoint (bf16, head_dim 64; cached after the first run)."""
    from ra_guard.testing.smollm2 import prepare_smollm2

    return Path(prepare_smollm2())


@pytest.fixture(scope="session")
def server_logs() -> Path:
    return Path(tempfile.mkdtemp(prefix="ra-guard-real-servers-"))


@pytest.fixture(scope="session")
def vllm_server(smollm2_dir: Path, server_logs: Path) -> Iterator[ServerProcess]:
    """vLLM (CPU) serving SmolLM2 as ``smollm2``, once per session."""
    server = _UNAVAILABLE.start(
        "vllm",
        lambda: start_vllm(smollm2_dir, served_name=SERVED_NAME, log_dir=server_logs, max_model_len=VLLM_MAX_MODEL_LEN),
    )
    yield server
    server.stop()
    _SERVERS.pop("vllm", None)


@pytest.fixture(scope="session")
def vllm(vllm_server: ServerProcess) -> Backend:
    return Backend(
        kind="vllm",
        server=vllm_server,
        model=SERVED_NAME,
        supports_n=True,
        digit_logprobs=True,
        structured_output=True,
        context_tokens=VLLM_MAX_MODEL_LEN,
    )


@pytest.fixture(scope="session")
def transformers_server(smollm2_dir: Path, server_logs: Path) -> Iterator[ServerProcess]:
    """``transformers serve`` pinned to SmolLM2 (served under its directory path), once per session."""
    from tests.support.transformers_server import start_transformers_serve

    server = _UNAVAILABLE.start(
        "transformers-serve", lambda: start_transformers_serve(smollm2_dir, log_dir=server_logs)
    )
    yield server
    server.stop()
    _SERVERS.pop("transformers-serve", None)


@pytest.fixture(scope="session")
def transformers_serve(transformers_server: ServerProcess, smollm2_dir: Path) -> Backend:
    return Backend(
        kind="transformers",
        server=transformers_server,
        # A server pinned to a model answers only to the name it loaded it by.
        model=str(smollm2_dir),
        supports_n=False,
        digit_logprobs=False,
        structured_output=False,
    )


@pytest.fixture(params=["vllm", "transformers"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each real OpenAI-compatible server in turn (the conformance cases run against all of them)."""
    found: Backend = request.getfixturevalue(request.param if request.param == "vllm" else "transformers_serve")
    return found
