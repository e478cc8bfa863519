"""``start_server``: a server that loses its port between ``free_port()`` and its bind starts again elsewhere."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import ServerExitedError, free_port, http_ok, start_server

# A tiny HTTP server that binds the port given as ``--port`` and notes each start in ``starts.log``.
SERVE = """
import http.server, sys
with open("starts.log", "a") as starts:
    starts.write(sys.argv[sys.argv.index("--port") + 1] + "\\n")
port = int(sys.argv[sys.argv.index("--port") + 1])
http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another socket is bound to, as when the race for it is lost (not listening: no answers)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


def test_a_server_whose_port_was_taken_starts_again_on_a_new_one(tmp_path: Path, taken_port: int) -> None:
    argv = [sys.executable, "-c", SERVE, "--port", str(taken_port)]

    server = start_server(
        "http", argv, port=taken_port, ready=http_ok("/"), log_path=tmp_path / f"http-{taken_port}.log", cwd=tmp_path
    )
    try:
        assert server.port != taken_port
        assert httpx.get(server.url + "/starts.log", timeout=5).status_code == 200
        assert (tmp_path / "starts.log").read_text().split() == [str(taken_port), str(server.port)]
        assert "address already in use" in (tmp_path / f"http-{taken_port}.log").read_text().lower()
        assert server.log_path == tmp_path / f"http-{server.port}.log"
    finally:
        server.stop()
    assert not server.alive()


def test_a_server_that_exits_for_another_reason_is_not_started_again(tmp_path: Path) -> None:
    port = free_port()
    argv = [
        sys.executable,
        "-c",
        SERVE.replace("port = int", "sys.exit('bad config'); port = int"),
        "--port",
        str(port),
    ]

    with pytest.raises(ServerExitedError, match="bad config"):
        start_server("http", argv, port=port, ready=http_ok("/"), log_path=tmp_path / "http.log", cwd=tmp_path)

    assert (tmp_path / "starts.log").read_text().split() == [str(port)]
