"""``transformers serve`` on 127.0.0.1: the OpenAI-compatible server that ships with transformers.

It needs FastAPI and Uvicorn (``transformers[serving]``), which ra-guard's dev
extras already install. Given a model directory it is *pinned* to that model and
answers only to the name it was loaded by: the directory's path.

Known differences from vLLM (transformers 5.x), which the conformance suite checks:
it ignores ``n`` (one choice per call), returns no ``logprobs``, and rejects
vLLM's ``continue_final_message``/``add_generation_prompt`` with HTTP 422
"Unexpected fields".
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from tests.support.servers import ServerProcess, free_port, http_ok, start_server

__all__ = ["start_transformers_serve"]

# The console script's own entry point, run with this interpreter (no reliance on PATH).
_ENTRY = "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; sys.exit(main())"


def start_transformers_serve(
    model_dir: Path, *, log_dir: Path | None = None, timeout_s: float = 300.0
) -> ServerProcess:
    """Serve ``model_dir`` on CPU in bfloat16 on a free loopback port; ready when ``/v1/models`` answers."""
    port = free_port()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="ra-guard-transformers-serve-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DO_NOT_TRACK="1", NO_PROXY="127.0.0.1,localhost")
    argv = [
        sys.executable,
        "-c",
        _ENTRY,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--dtype",
        "bfloat16",
        str(model_dir),
    ]
    return start_server(
        "transformers serve",
        argv,
        port=port,
        ready=http_ok("/v1/models"),
        log_path=log_dir / f"transformers-serve-{port}.log",
        env=env,
        timeout_s=timeout_s,
    )
