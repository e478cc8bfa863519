"""Shadow mode: judge and record live traffic under a guard, without ever changing what the user gets.

A :class:`ShadowGuard` wraps a :class:`~ra_guard.guard.Guard`. Its
:meth:`~ShadowGuard.check` returns the caller's output unchanged, at once; the
guard's ``check`` decision (judging, and any sampling of alternatives its
strategy would do) runs later, off the request path, and is recorded like any
other decision, marked as shadow: ``Decision.shadow``, the audit record's
``shadow`` field, the root span's ``ra_guard.shadow`` attribute. Teams watch a
new policy this way before enforcing it, then :mod:`ra_guard.replay` or switch.

What the request path pays, and what it never does:

- **No waiting.** ``check`` copies the message list (so a caller appending to it
  afterwards does not change what is judged), captures the context (so the
  shadow decision's trace sits under the caller's span) and puts one item on a
  bounded queue: a few microseconds (``benchmarks/bench_shadow.py``).
- **No exception.** Malformed input, a judge or sampler that fails, every
  candidate vetoed: none reaches the caller. Each is logged (WARNING, the
  ``ra_guard`` logger) and counted in :attr:`ShadowGuard.failed`.
- **Bounded memory.** At most ``max_queue`` checks wait and ``max_concurrency``
  are judged at once; a check that finds the queue full is dropped, counted in
  :attr:`ShadowGuard.dropped` and logged (once per burst).

The judging runs on ra-guard's shared background event loop, fed by one
:class:`~ra_guard._background.BackgroundWorker` thread, and is closed like the
audit log: :meth:`~ShadowGuard.close` (or interpreter exit) finishes what is
queued, waiting at most ``close_timeout_s`` for it.

Example:
    >>> from ra_guard import Guard
    >>> from ra_guard.testing import FunctionJudge
    >>> seen = []
    >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {n: 2 for n in r.responses}))
    >>> with ShadowGuard(guard, on_decision=seen.append) as shadow:
    ...     shadow.check("Say hi", "Hello there, how are you doing today?")
    'Hello there, how are you doing today?'
    >>> seen[0].shadow, seen[0].passed
    (True, False)
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ra_guard._background import BackgroundWorker
from ra_guard._inputs import checked_n
from ra_guard._redact import redact_capped
from ra_guard._sync import background_loop
from ra_guard.exceptions import AllCandidatesRejected, ConfigurationError
from ra_guard.samplers import resolve_sampler
from ra_guard.strategies import Check, CheckMode

if TYPE_CHECKING:
    from ra_guard.decision import Decision
    from ra_guard.guard import Guard
    from ra_guard.samplers.base import Sampler
    from ra_guard.types import Messages

__all__ = ["ShadowGuard"]

_logger = logging.getLogger("ra_guard")
_MAX_MESSAGE = 512  # characters of an error kept in the warning of a failed shadow check
OutputT = TypeVar("OutputT")


@dataclass(frozen=True, slots=True)
class _Job:
    messages: object
    output: object
    sampler: Sampler | str | None
    n: int | None
    mode: CheckMode
    context: contextvars.Context


class ShadowGuard:
    """Runs a guard's ``check`` in shadow: the caller's output is returned unchanged, the decision is recorded.

    Args:
        guard: The guard whose policies, judge, strategy, sampler, tracer and
            audit log the shadow decisions use (its ``audit_log`` and ``tracer``
            record them, marked ``shadow``).
        mode: ``"on_failure"`` (default): alternatives are sampled only for an
            output that fails, as ``check`` would; ``"always"``: every time.
            Without a sampler (the guard's or the call's) the output is only judged.
        max_queue: Checks waiting to be judged at most; more are dropped and counted.
        max_concurrency: Shadow decisions judged at once at most.
        on_decision: Called with each finished shadow decision (rejected ones
            too), on the background loop; exceptions it raises are logged.
        close_timeout_s: :meth:`close` and interpreter exit wait at most this long
            for queued and running checks (``None``: until done); what is left is
            cancelled, counted in :attr:`dropped` and logged.

    Attributes:
        submitted: Checks accepted onto the queue.
        completed: Shadow decisions made (rejected ones included).
        failed: Checks that could not be decided (bad input, a sampler or judge
            failure that the guard's failure modes do not absorb).

    Example:
        >>> from ra_guard import Guard
        >>> from ra_guard.testing import FunctionJudge
        >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {n: 4 for n in r.responses}))
        >>> shadow = ShadowGuard(guard, max_queue=100, max_concurrency=2)
        >>> shadow.check([{"role": "user", "content": "Hi"}], "Hello!")
        'Hello!'
        >>> shadow.flush(timeout=10), shadow.completed
        (True, 1)
        >>> shadow.close()
    """

    def __init__(
        self,
        guard: Guard,
        *,
        mode: CheckMode = "on_failure",
        max_queue: int = 1000,
        max_concurrency: int = 4,
        on_decision: Callable[[Decision], None] | None = None,
        close_timeout_s: float | None = 30.0,
    ) -> None:
        if mode not in ("on_failure", "always"):
            raise ConfigurationError(f"mode must be 'on_failure' or 'always', got {mode!r}")
        if max_queue < 1:
            raise ConfigurationError(f"max_queue must be at least 1, got {max_queue}")
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.guard = guard
        self.mode: CheckMode = mode
        self.max_concurrency = max_concurrency
        self.on_decision = on_decision
        self.close_timeout_s = close_timeout_s
        self.submitted = 0
        self.completed = 0
        self.failed = 0
        self._dropped_closed = 0
        self._warned_closed = False
        self._close_deadline: float | None = None  # set by close(): when waiting for checks ends
        self._lock = threading.Lock()
        # The worker thread takes a slot before handing a check to the loop: when every slot is busy it
        # waits, so the queue (bounded) fills and overflows instead of the loop's task list growing.
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._running: set[Future[None]] = set()
        self._idle = threading.Condition(self._lock)
        self._worker: BackgroundWorker[_Job] = BackgroundWorker(
            f"ra-guard-shadow:{guard.name}",
            self._start,
            what=f"shadow guard {guard.name!r}",
            items="shadow checks",
            max_queue=max_queue,
            on_overflow="drop",
            overflow_hint="raise max_queue or max_concurrency, or speed up the judge",
            on_close=self._finish_running,
            exit_timeout_s=close_timeout_s,
        )

    def __repr__(self) -> str:
        return f"ShadowGuard({self.guard!r}, mode={self.mode!r}, max_concurrency={self.max_concurrency})"

    @property
    def dropped(self) -> int:
        """Checks not judged: the queue was full, the shadow guard was closed, or exit came first."""
        return self._worker.dropped + self._dropped_closed

    @property
    def in_flight(self) -> int:
        """Shadow decisions being judged now."""
        with self._lock:
            return len(self._running)

    # -- request path -----------------------------------------------------

    def check(
        self,
        messages: Messages | str,
        output: OutputT,
        *,
        sampler: Sampler | str | None = None,
        n: int | None = None,
    ) -> OutputT:
        """Return ``output`` unchanged, at once; judge it (as ``guard.check`` would) in the background.

        Never raises and never waits: malformed arguments, failures and a full
        queue are logged and counted instead (:attr:`failed`, :attr:`dropped`).

        Args:
            messages: The conversation that produced ``output`` (the list is copied).
            output: The agent's answer, returned as given.
            sampler: Produces alternatives for the shadow decision (default: the guard's).
            n: Candidates per round for the shadow decision.

        Example:
            >>> from ra_guard import Guard
            >>> from ra_guard.testing import FunctionJudge
            >>> judge = FunctionJudge(lambda r: {k: 3 for k in r.responses})
            >>> shadow = ShadowGuard(Guard(policies=["concise"], judge=judge))
            >>> shadow.check("Capital of France?", "Paris.")
            'Paris.'
            >>> shadow.close()
        """
        if self._worker.closed:
            self._drop_closed()
            return output
        # A shallow copy: callers often append the answer to their message list right after.
        copied = list(messages) if isinstance(messages, list) else messages
        job = _Job(copied, output, sampler, n, self.mode, contextvars.copy_context())
        if self._worker.put(job):
            with self._lock:
                self.submitted += 1
        return output

    async def acheck(
        self,
        messages: Messages | str,
        output: OutputT,
        *,
        sampler: Sampler | str | None = None,
        n: int | None = None,
    ) -> OutputT:
        """Async :meth:`check`: returns ``output`` at once, without yielding to the loop."""
        return self.check(messages, output, sampler=sampler, n=n)

    def _drop_closed(self) -> None:
        with self._lock:
            self._dropped_closed += 1
            warn = not self._warned_closed
            self._warned_closed = True
        if warn:
            _logger.warning(
                "%r is closed: shadow checks are dropped (counted in .dropped); create a new ShadowGuard", self
            )

    # -- worker thread and background loop -------------------------------

    def _start(self, job: _Job) -> None:
        """On the worker thread: wait for a slot, then start the shadow decision on the background loop."""
        while not self._slots.acquire(timeout=0.05):
            deadline = self._close_deadline
            if deadline is not None and time.monotonic() >= deadline:
                # Closing, and the running decisions hold every slot past close_timeout_s: give this one up.
                with self._lock:
                    self._dropped_closed += 1
                return
        decide = self._decide(job)
        try:
            loop = background_loop()
            # The task is created inside the caller's captured context (its current span is the parent).
            future = job.context.run(asyncio.run_coroutine_threadsafe, decide, loop)
        except BaseException:
            decide.close()  # never started: not left for the collector to warn about
            self._slots.release()
            raise
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._idle:
            self._running.discard(future)
            self._idle.notify_all()
        self._slots.release()

    async def _decide(self, job: _Job) -> None:
        guard = self.guard
        owned: Sampler | None = None  # built here from a spec string: closed here
        try:
            sampler: Sampler | None
            if isinstance(job.sampler, str):
                sampler = owned = resolve_sampler(job.sampler)
            else:
                sampler = job.sampler if job.sampler is not None else guard.sampler
            strategy = Check(job.output, then=guard.strategy, mode=job.mode)  # type: ignore[arg-type]  # checked
            try:
                decision = await guard._decide(job.messages, strategy, sampler=sampler, n=checked_n(job.n), shadow=True)
            finally:
                if owned is not None:
                    await owned.aclose()
        except AllCandidatesRejected as exc:
            decision = exc.decision  # recorded as rejected by the guard: a shadow outcome like any other
        except Exception as exc:
            with self._lock:
                self.failed += 1
            _logger.warning(
                "shadow guard %r: a shadow check failed and was not recorded (%s: %s); counted in .failed",
                guard.name,
                type(exc).__name__,
                redact_capped(str(exc), _MAX_MESSAGE),
            )
            return
        with self._lock:
            self.completed += 1
        if self.on_decision is not None:
            try:
                self.on_decision(decision)
            except Exception:
                _logger.exception("shadow guard %r: on_decision raised; the decision stays recorded", guard.name)

    # -- lifetime ---------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every accepted check has been decided; ``False`` if ``timeout`` passed first.

        Example:
            >>> # shadow.flush(timeout=30) before reading the audit log in a test
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._worker.flush(timeout):
            return False
        return self._wait_running(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _wait_running(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _finish_running(self) -> None:
        """After the worker stopped: wait for running decisions, cancel what outlives ``close_timeout_s``."""
        deadline = self._close_deadline
        if self._wait_running(None if deadline is None else max(0.0, deadline - time.monotonic())):
            return
        with self._lock:
            left = list(self._running)
        for future in left:
            future.cancel()
        with self._lock:
            self._dropped_closed += len(left)
        _logger.warning(
            "shadow guard %r: %d shadow check(s) still running after %ss were cancelled; counted in .dropped "
            "with those still queued",
            self.guard.name,
            len(left),
            self.close_timeout_s,
        )

    def close(self) -> None:
        """Decide what is queued (waiting at most ``close_timeout_s``), then stop. Idempotent.

        Checks after ``close`` are dropped (counted, logged once). The guard itself stays open.
        """
        if self._close_deadline is None and self.close_timeout_s is not None:
            self._close_deadline = time.monotonic() + self.close_timeout_s
        self._worker.close()

    async def aclose(self) -> None:
        """Async :meth:`close`: waits in a thread, so the loop that serves the judging keeps running."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> ShadowGuard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> ShadowGuard:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
