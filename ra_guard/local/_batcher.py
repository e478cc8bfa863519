"""Dynamic batching: gather concurrent calls into one batch, run it on a worker thread.

Callers on any event loop (or plain threads) :meth:`MicroBatcher.submit` an
item and get a ``concurrent.futures.Future``; one worker thread takes the first
waiting item, waits up to ``max_wait_s`` for more (at most ``max_batch_size``),
hands the batch to ``process`` and resolves each caller's future with its own
result. Running the model on one dedicated thread keeps it off the event loop
and never runs two batches on the model at once. Items arriving while a batch
runs form the next batch, so a busy judge batches without waiting at all.

Example:
    >>> import asyncio
    >>> batcher = MicroBatcher(lambda items: [x * 2 for x in items], max_batch_size=8, max_wait_s=0.01)
    >>> async def main():
    ...     return await asyncio.gather(*(batcher.asubmit(i) for i in range(3)))
    >>> asyncio.run(main())
    [0, 2, 4]
    >>> batcher.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class MicroBatcher(Generic[T, R]):
    """Gathers concurrent submissions into batches for a ``process`` function.

    Args:
        process: Called on the worker thread with a batch of items; returns one
            result per item, in order, where a result may be an exception
            instance (raised to that caller only). If it raises, every caller
            in the batch gets the exception.
        max_batch_size: Items per batch at most.
        max_wait_s: How long the first item of a batch waits for company.
        name: The worker thread's name.

    Attributes:
        batch_sizes: Sizes of the batches run so far (for tests and benchmarks).
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        max_batch_size: int = 8,
        max_wait_s: float = 0.005,
        name: str = "ra-guard-batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self._process = process
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._name = name
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batch_sizes: list[int] = []

    def submit(self, item: T) -> concurrent.futures.Future[R]:
        """Queue ``item``; the future resolves with its result (or its exception)."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        self._ensure_worker()
        self._queue.put((item, future))
        return future

    async def asubmit(self, item: T) -> R:
        """Queue ``item`` and await its result; cancelling drops it if its batch has not started."""
        return await asyncio.wrap_future(self.submit(item))

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()

    def _collect(self, first: object) -> tuple[list[tuple[T, concurrent.futures.Future[R]]], bool]:
        """The batch that ``first`` opens; also whether a stop request was seen."""
        pending: list[tuple[T, concurrent.futures.Future[R]]] = [first]  # type: ignore[list-item]
        deadline = time.monotonic() + self.max_wait_s
        stop = False
        while len(pending) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                stop = True
                break
            pending.append(entry)  # type: ignore[arg-type]
        live: list[tuple[T, concurrent.futures.Future[R]]] = []
        for item, future in pending:
            # A caller that was cancelled before its batch started is left out.
            if future.set_running_or_notify_cancel():
                live.append((item, future))
        return live, stop

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._collect(first)
            if batch:
                self._run(batch)
            if stop:
                return

    def _run(self, batch: list[tuple[T, concurrent.futures.Future[R]]]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            results = list(self._process([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"batch process returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # every caller must hear about the failure
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker after the work already queued; a later submit starts a new one."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)
