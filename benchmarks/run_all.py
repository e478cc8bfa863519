"""Run every benchmark, one after another, and print their tables (``make bench``).

The figures published in ``docs/benchmarks.md`` come from the full commands listed
there; ``--quick`` (the default for ``make bench``) runs smaller versions of the
same measurements so the whole set finishes in a few minutes on a 2-core machine.
``bench_vllm.py`` runs only with ``--full``: it starts a vLLM server (one to two
minutes, and a one-off install of its venv) before measuring anything.

Usage:
    python benchmarks/run_all.py            # quick versions
    python benchmarks/run_all.py --full     # the published configurations (about 35 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK = {
    "bench_guard.py": ["--repeats", "3", "--cpu-iterations", "1000", "--http-iterations", "100"],
    "bench_local.py": ["--threads", "1", "--requests", "4", "--batch-sizes", "4", "--repeats", "1", "--decisions", "0"],
    "bench_position.py": ["--threads", "1", "--requests", "1", "--ks", "1", "4"],
    "bench_shadow.py": ["--calls", "300"],
}

#: The configurations published in docs/benchmarks.md (SmolLM2 runs: about 10 minutes each on 2 loaded cores).
FULL = {
    "bench_guard.py": [],
    "bench_local.py": ["--threads", "1", "--requests", "8", "--batch-sizes", "8", "--repeats", "1", "--decisions", "0"],
    "bench_position.py": ["--threads", "1", "--requests", "3", "--ks", "1", "2", "4"],
    # Starts vLLM's CPU server (tests/support/vllm_server.py) on 127.0.0.1 and stops it at the end.
    "bench_vllm.py": ["--threads", "1", "--requests", "16", "--repeats", "3"],
    "bench_shadow.py": [],
}


def main() -> int:
    """Run the benchmarks; return non-zero if any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the published configurations")
    args = parser.parse_args()
    failed = []
    for script, script_args in (FULL if args.full else QUICK).items():
        command = [sys.executable, str(HERE / script), *script_args]
        print(f"\n$ {' '.join(command[1:])}", flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
