"""A loopback stand-in for a scores API (LangSmith's ``/feedback``, Langfuse's ingestion): records JSON bodies."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScoreStub:
    """Answers ``GET`` with ``{}`` and records every ``POST`` body; ``status`` forces an HTTP error."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply(200, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                stub.headers.append(dict(self.headers))
                if stub.status >= 300:
                    self._reply(stub.status, {"detail": "stub says no"})
                    return
                stub.posts.append((self.path, json.loads(raw) if raw else None))
                self._reply(200, {"id": "ok"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="score-stub", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ScoreStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
