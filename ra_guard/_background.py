"""One background worker for the writers off the request path: the audit log and the Phoenix annotator.

A :class:`BackgroundWorker` owns a bounded queue and a daemon thread that hands
each item, in order, to a ``handle`` function. Both writers share its rules:

- **Nothing lost in silence.** A full queue either blocks the producer
  (``on_overflow="block"``) or drops the item, counts it in :attr:`dropped` and
  logs a WARNING once per burst (until the queue next empties).
- **A bad item does not stop the worker**: ``handle`` raising is logged with its
  traceback and the next item is handled; producers never wait on a dead thread.
- **Closed at exit.** :meth:`close` hands over what is queued, stops the thread
  and runs ``on_close`` (closing a file, an HTTP client); it also runs when the
  interpreter exits without ``close()``, so queued items are not lost. Where
  ``exit_timeout_s`` is set, exit waits that long at most and logs what is left.

Example:
    >>> seen = []
    >>> worker = BackgroundWorker("demo", seen.append, what="a demo")
    >>> worker.put(1), worker.put(2)
    (True, True)
    >>> worker.flush(timeout=5)
    True
    >>> worker.close()
    >>> seen
    [1, 2]
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

if TYPE_CHECKING:
    from ra_guard.decision import Decision
    from ra_guard.tracing import DecisionSpans

__all__ = ["BackgroundWorker", "DecisionSender", "OnOverflow", "wait_until_drained"]

T = TypeVar("T")
OnOverflow = Literal["block", "drop"]

_logger = logging.getLogger("ra_guard")
_STOP = object()


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


class BackgroundWorker(Generic[T]):
    """A daemon thread handling queued items in order, closed by :meth:`close` or at interpreter exit.

    Args:
        name: The thread's name (shown in thread dumps).
        handle: Called on the thread with each item, in order.
        what: Who works, for log messages (``audit log /var/log/a.jsonl``).
        items: What the items are, for log messages (``records``).
        max_queue: Items waiting at most.
        on_overflow: ``block`` waits for room; ``drop`` drops, counts and warns.
        on_idle: Called on the thread whenever the queue empties (and once at
            close), e.g. to ``fsync`` a batch of writes.
        on_close: Called once, after the thread stopped (close a file or client).
        poll_s: How often :meth:`flush` looks at the queue.
        overflow_hint: What the overflow warning suggests (default: waiting with
            ``on_overflow='block'``; a worker that only drops says what else helps).
        exit_timeout_s: At interpreter exit without :meth:`close`, wait at most
            this long for the queue (``None``: until all is handled); what is
            left is logged and counted in :attr:`dropped`.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[T], None],
        *,
        what: str,
        items: str = "items",
        max_queue: int = 1000,
        on_overflow: OnOverflow = "drop",
        on_idle: Callable[[], None] | None = None,
        on_close: Callable[[], None] | None = None,
        poll_s: float = 0.002,
        overflow_hint: str = "on_overflow='block' waits instead",
        exit_timeout_s: float | None = None,
    ) -> None:
        self.what = what
        self.items = items
        self.on_overflow: OnOverflow = on_overflow
        self.dropped = 0
        self._handle = handle
        self._on_idle = on_idle
        self._on_close = on_close
        self._poll_s = poll_s
        self._exit_timeout_s = exit_timeout_s
        self._overflow_hint = overflow_hint
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._warned_drop = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def max_queue(self) -> int:
        """Items waiting at most."""
        return self._queue.maxsize

    def put(self, item: T) -> bool:
        """Queue ``item``; returns ``False`` where it was dropped (``on_overflow="drop"`` and the queue full)."""
        if self.on_overflow == "block":
            self._queue.put(item)
            return True
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                warn = not self._warned_drop
                self._warned_drop = True
            if warn:
                _logger.warning(
                    "%s is full (%d queued): dropping %s until it drains; each is counted in .dropped (%s)",
                    self.what,
                    self._queue.maxsize,
                    self.items,
                    self._overflow_hint,
                )
            return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued item was handled; ``False`` if ``timeout`` passed first."""
        return wait_until_drained(self._queue, self._thread, timeout=timeout, poll_s=self._poll_s)

    def close(self) -> None:
        """Handle what is queued, stop the thread, then run ``on_close``. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        if self._on_close is not None:
            self._on_close()

    def _close_at_exit(self) -> None:
        if self._closed:
            return
        if self._exit_timeout_s is not None and not self.flush(self._exit_timeout_s):
            left = self._queue.qsize()
            self.dropped += left
            _logger.warning(
                "%s: exiting with %d %s not handled after %.1fs", self.what, left, self.items, self._exit_timeout_s
            )
            return  # the daemon thread dies with the interpreter
        self.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            stop = item is _STOP
            try:
                if not stop:
                    self._handle(item)
                if self._on_idle is not None and (stop or self._queue.empty()):
                    self._on_idle()
            except Exception:
                # Producers must never wait on a dead thread: log and go on with the next item.
                _logger.exception("%s: could not handle one of its %s; going on with the next", self.what, self.items)
            finally:
                self._queue.task_done()
            if stop:
                return
            if self._queue.empty():
                self._warned_drop = False


def _close_at_exit(ref: weakref.ReferenceType[BackgroundWorker[Any]]) -> None:
    worker = ref()
    if worker is not None:
        worker._close_at_exit()


class DecisionSender:
    """A tracer listener that sends each traced decision somewhere (Phoenix, LangSmith, Langfuse) from a worker.

    The request path only queues (:meth:`on_decision`); a subclass implements
    :meth:`_handle`, run on the worker, counting what arrived in ``sent`` and
    what it gave up on in ``_unsent``. The queue drops when full (counted in
    :attr:`dropped`), and exit waits 5 s at most for what is queued.
    """

    sent: int
    _unsent: int
    _worker: BackgroundWorker[tuple[Decision, DecisionSpans]]

    def _start(self, name: str, *, what: str, max_queue: int, on_close: Callable[[], None] | None = None) -> None:
        self.sent = 0
        self._unsent = 0
        self._worker = BackgroundWorker(
            name,
            self._handle,
            what=what,
            items="decisions",
            max_queue=max_queue,
            on_overflow="drop",
            on_close=on_close,
            poll_s=0.005,
            # An unreachable service must not hold the process up for long at exit.
            exit_timeout_s=5.0,
        )

    def _handle(self, item: tuple[Decision, DecisionSpans]) -> None:
        raise NotImplementedError

    @property
    def dropped(self) -> int:
        """Decisions not (wholly) sent: the queue was full, or the service could not take them."""
        return self._worker.dropped + self._unsent

    def on_decision(self, decision: Decision, spans: DecisionSpans) -> None:
        """Queue a traced decision (called by the tracer; returns at once)."""
        if not self._worker.closed:
            self._worker.put((decision, spans))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued decision was sent (or given up on)."""
        return self._worker.flush(timeout)

    def close(self) -> None:
        """Send what is queued, then stop the worker (and close what it sends with)."""
        self._worker.close()
