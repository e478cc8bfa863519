"""Start real servers for tests on 127.0.0.1, and make sure they die with the test run.

Every server runs in its own process group (``start_new_session``), led by a small
supervisor (``_group_leader.py``), so that stopping it by PID also stops the
workers it forked (vLLM's engine core and workers). Three things stop it, whichever
comes first: the fixture's ``stop()``; an ``atexit`` hook (pytest exits, or is
stopped with SIGTERM or SIGHUP); and, for a pytest killed with SIGKILL, the
kernel's parent-death signal to the supervisor, which then takes the group down.

Output goes to a log file whose tail is put in every error message, so that a
server that fails to start says why.

A port from :func:`free_port` is only free when it is chosen; the server binds it
seconds later (the litellm proxy after 10-30 s of imports, vLLM after loading its
model), and another process may take it meanwhile. A server that exits saying
"address already in use" is started once more on a new port (see :func:`start_server`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

__all__ = ["ServerExitedError", "ServerProcess", "free_port", "http_ok", "start_server"]

#: Output of a server kept in error messages.
LOG_TAIL_CHARS = 6000

#: What a server's output says (in any case) when another process took its port first.
PORT_TAKEN = "address already in use"

logger = logging.getLogger(__name__)
_GROUP_LEADER = Path(__file__).with_name("_group_leader.py")
_running: dict[int, ServerProcess] = {}
_previous_handlers: dict[int, object] = {}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (a server may still lose a race for it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerExitedError(RuntimeError):
    """The server process exited before it answered its readiness check.

    Attributes:
        log_tail: The end of the server's output (also in the message).
    """

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


@dataclass
class ServerProcess:
    """A server started by :func:`start_server`; stop it with :meth:`stop` (or :meth:`kill`)."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started_s: float = 0.0
    ready_s: float = field(default=0.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log at {self.log_path}: {exc})"
        return text[-chars:]

    def _signal_group(self, signum: int) -> None:
        # The server leads its own process group: signal the group, not just the leader.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """Kill the server's whole process group at once, as a crash or an OOM kill would."""
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        _running.pop(self.process.pid, None)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the process group, then SIGKILL it after ``grace_s`` seconds."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        # Workers may outlive the leader: always finish the group off.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        _running.pop(self.process.pid, None)


def _stop_all() -> None:
    for server in list(_running.values()):
        server.stop(grace_s=10)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    previous = _previous_handlers.get(signum)
    if callable(previous):
        previous(signum, frame)
    else:
        raise SystemExit(128 + signum)


def _install_cleanup() -> None:
    if _previous_handlers:
        return
    atexit.register(_stop_all)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        _previous_handlers[signum] = signal.getsignal(signum)
        with contextlib.suppress(ValueError):  # not the main thread: atexit and PDEATHSIG still apply
            signal.signal(signum, _on_signal)


def start_server(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    ready: Callable[[str], bool],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 300.0,
) -> ServerProcess:
    """Start ``argv`` and wait until ``ready(url)`` is true.

    Where ``argv`` passes ``port`` as ``--port PORT`` and the server exits saying
    "address already in use" (another process took the port between
    :func:`free_port` and the bind), it is started once more with a new port,
    logged to a new file beside ``log_path``; the returned server's ``port`` is
    the one it listens on. Only a server that already exited is started again.

    Raises:
        ServerExitedError: The process exited first (the log tail is in the message).
        TimeoutError: It did not become ready within ``timeout_s``; it is stopped.
    """
    start = functools.partial(_start_once, name, ready=ready, env=env, cwd=cwd, timeout_s=timeout_s)
    try:
        return start(argv, port=port, log_path=log_path)
    except ServerExitedError as exc:
        index = _port_index(argv, port)
        if PORT_TAKEN not in exc.log_tail.lower() or index is None:
            raise
        new_port = free_port()
        retry_log = log_path.with_name(
            log_path.name.replace(str(port), str(new_port)) if str(port) in log_path.name else f"retry-{log_path.name}"
        )
        logger.warning(
            "%s lost port %d to another process before binding it (log %s); starting it again on port %d",
            name,
            port,
            log_path,
            new_port,
        )
        return start([*argv[:index], str(new_port), *argv[index + 1 :]], port=new_port, log_path=retry_log)


def _port_index(argv: Sequence[str], port: int) -> int | None:
    """Where ``argv`` holds ``port`` as the value of ``--port``, if it does."""
    for index, arg in enumerate(argv[:-1]):
        if arg == "--port" and argv[index + 1] == str(port):
            return index + 1
    return None


def _start_once(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    ready: Callable[[str], bool],
    log_path: Path,
    env: Mapping[str, str] | None,
    cwd: Path | None,
    timeout_s: float,
) -> ServerProcess:
    _install_cleanup()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(_GROUP_LEADER), str(os.getpid()), "15", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    server = ServerProcess(name=name, process=process, port=port, log_path=log_path)
    _running[process.pid] = server
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            tail = server.log_tail()
            raise ServerExitedError(
                f"{name} exited with {process.returncode} before answering; log {log_path}:\n{tail}", log_tail=tail
            )
        if ready(server.url):
            server.ready_s = time.monotonic() - started
            return server
        time.sleep(1.0)
    server.stop()
    raise TimeoutError(f"{name} did not answer within {timeout_s:.0f}s; log {log_path}:\n{server.log_tail()}")


def http_ok(path: str) -> Callable[[str], bool]:
    """A readiness check: ``GET url+path`` answers 200."""

    def check(url: str) -> bool:
        try:
            return httpx.get(url + path, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    return check
