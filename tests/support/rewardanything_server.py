"""The reference ``rewardanything serve`` (package ``rewardanything==1.0.1``) on 127.0.0.1.

The reference server renders and masks the request, sends it to an
OpenAI-compatible backend with the ``openai`` SDK, parses the answer and returns
``{"thoughts", "results"}``. It is pointed at its backend by a JSON config file
(``rewardanything serve -c config.json``) whose keys it reads as:

- ``api_base`` / ``api_key`` / ``api_model``: the backend (e.g. a vLLM ``/v1`` URL);
- ``generation_config``: keyword arguments for every ``chat.completions.create``
  call (``temperature``, ``max_tokens``, ``response_format``...);
- ``api_timeout``, ``api_max_retries``, ``num_workers``, ``request_limit``...

Each request writes temporary files under ``--base-output-path``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.servers import ServerProcess, free_port, http_ok, start_server

__all__ = ["start_rewardanything_serve"]

_ENTRY = "import sys; from rewardanything.cli import main; sys.argv[0] = 'rewardanything'; sys.exit(main())"


def start_rewardanything_serve(
    backend_url: str,
    model: str,
    *,
    generation_config: Mapping[str, Any] | None = None,
    workdir: Path | None = None,
    timeout_s: float = 120.0,
) -> ServerProcess:
    """Start the reference server in front of the OpenAI-compatible ``backend_url`` serving ``model``."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="ra-guard-rewardanything-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "api_model": model,
        "api_key": "EMPTY",
        "api_base": backend_url,
        "api_timeout": 120.0,
        "api_max_retries": 0,
        "generation_config": dict(generation_config or {"temperature": 0.0, "max_tokens": 256}),
    }
    config_path = workdir / f"rewardanything-{port}.json"
    config_path.write_text(json.dumps(config, indent=2))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env.update(NO_PROXY="127.0.0.1,localhost", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    argv = [
        sys.executable,
        "-c",
        _ENTRY,
        "serve",
        "-c",
        str(config_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--base-output-path",
        str(workdir / f"outputs-{port}"),
    ]
    return start_server(
        "rewardanything serve",
        argv,
        port=port,
        ready=http_ok("/health"),
        log_path=workdir / f"rewardanything-{port}.log",
        env=env,
        cwd=workdir,
        timeout_s=timeout_s,
    )
