"""Lead a server's process group, and take the whole group down when the test run dies.

Run as ``python _group_leader.py PARENT_PID GRACE_S COMMAND...`` in a new session.
The kernel sends this process SIGTERM when its parent (pytest) dies, even by
SIGKILL (``PR_SET_PDEATHSIG``); it then sends SIGTERM to the group, waits
``GRACE_S`` seconds, and SIGKILLs what is left. A server cannot be trusted to do
this itself: vLLM's API server ignores SIGTERM while its engine starts, and its
engine workers outlive it when it is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from types import FrameType

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    parent, grace_s, command = int(argv[0]), float(argv[1]), argv[2:]
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was armed
        return 1
    child = subprocess.Popen(command)
    stop_at: list[float] = []

    def take_down(signum: int, frame: FrameType | None) -> None:
        # Only note it here: the loop below does the waiting (a handler cannot wait on the child safely).
        if not stop_at:
            stop_at.append(time.monotonic() + grace_s)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(0, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, take_down)
    while child.poll() is None and not (stop_at and time.monotonic() > stop_at[0]):
        time.sleep(0.2)
    if stop_at:
        os.killpg(0, signal.SIGKILL)  # what is left of the group, and this process
    # The server exited by itself: do not leave its workers behind.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGTERM)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
