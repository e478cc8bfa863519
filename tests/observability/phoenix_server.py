"""Run a real Phoenix on 127.0.0.1 for tests and the screenshot script.

Phoenix lives in its own virtual environment, created once and cached under
``$RA_GUARD_TEST_CACHE`` (default ``~/.cache/ra-guard-tests``), keyed by version,
so its dependencies never meet ra-guard's. A marker file written after a
successful install makes a half-finished install be redone; a lock file keeps
two test processes from installing at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

PHOENIX_VERSION = os.environ.get("RA_GUARD_PHOENIX_VERSION", "20.26.1")
CACHE = Path(os.environ.get("RA_GUARD_TEST_CACHE", Path.home() / ".cache" / "ra-guard-tests"))
_MARKER = ".ra-guard-complete"


def phoenix_venv(version: str = PHOENIX_VERSION) -> tuple[Path, float]:
    """The cached Phoenix venv (installing it if needed) and the seconds the install took (0: cached)."""
    venv = CACHE / f"phoenix-venv-{version}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"phoenix-venv-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / _MARKER).exists():
            return venv, 0.0
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        log = CACHE / f"phoenix-venv-{version}.install.log"
        with log.open("wb") as out:
            pip = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"arize-phoenix=={version}"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if pip.returncode:
            raise RuntimeError(f"installing arize-phoenix=={version} failed:\n{log.read_text()[-4000:]}")
        seconds = time.monotonic() - started
        (venv / _MARKER).write_text(f"installed arize-phoenix=={version} in {seconds:.0f}s\n")
        return venv, seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PhoenixProcess:
    """A Phoenix server started by :func:`start_phoenix`; stop it with :meth:`stop`."""

    process: subprocess.Popen[bytes]
    port: int
    grpc_port: int
    workdir: Path
    log_text: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def otlp_endpoint(self) -> str:
        return f"{self.url}/v1/traces"

    def stop(self) -> None:
        """Stop Phoenix by its PID (it leads its own session): SIGTERM, then SIGKILL."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        log = self.workdir / "phoenix.log"
        if log.exists():
            self.log_text = log.read_text(errors="replace")


def start_phoenix(workdir: Path, *, venv: Path | None = None, timeout_s: float = 180) -> PhoenixProcess:
    """Start ``phoenix serve`` on free loopback ports, telemetry off, data in ``workdir``.

    A port taken between choosing it and Phoenix binding it makes Phoenix exit;
    that is retried once with new ports.
    """
    venv = venv or phoenix_venv()[0]
    try:
        return _start(workdir, venv, timeout_s)
    except _ExitedEarly:
        return _start(workdir, venv, timeout_s)


class _ExitedEarly(RuntimeError):
    pass


def _start(workdir: Path, venv: Path, timeout_s: float) -> PhoenixProcess:
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
    env.update(
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_WORKING_DIR=str(workdir),
        PHOENIX_TELEMETRY_ENABLED="false",
        PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
        PHOENIX_DISABLE_AGENT_ASSISTANT="true",
    )
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "phoenix.log", "wb")  # noqa: SIM115 - the child keeps writing to it
    process = subprocess.Popen(
        [str(venv / "bin" / "phoenix"), "serve"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    phoenix = PhoenixProcess(process=process, port=port, grpc_port=grpc_port, workdir=workdir)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise _ExitedEarly(f"phoenix exited with {process.returncode}:\n{(workdir / 'phoenix.log').read_text()}")
        try:
            if httpx.get(f"{phoenix.url}/healthz", timeout=2).status_code == 200:
                return phoenix
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    phoenix.stop()
    raise RuntimeError(f"phoenix did not answer within {timeout_s}s:\n{(workdir / 'phoenix.log').read_text()}")
