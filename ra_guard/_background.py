"""Helpers for the background writer threads (the audit log, the Phoenix annotator).

Example:
    >>> import queue, threading
    >>> work: queue.Queue[int] = queue.Queue()
    >>> wait_until_drained(work, threading.current_thread(), timeout=0.1)
    True
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

__all__ = ["wait_until_drained"]


def wait_until_drained(
    work: queue.Queue[Any], worker: threading.Thread, *, timeout: float | None, poll_s: float = 0.002
) -> bool:
    """Wait until every item put on ``work`` was marked done by ``worker``.

    Returns ``False`` if the worker died or ``timeout`` seconds passed first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while work.unfinished_tasks:
        if not worker.is_alive() or (deadline is not None and time.monotonic() >= deadline):
            return False
        time.sleep(poll_s)
    return True
