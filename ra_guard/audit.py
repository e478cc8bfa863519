"""An append-only decision log: one JSON line per decision, written off the request path.

:class:`AuditLog` takes a finished :class:`~ra_guard.decision.Decision` (rejected
ones too), queues it, and a background thread turns it into a record and appends
it to a JSON Lines file.

What is guaranteed, and what is not:

- Each record is written with a single ``os.write`` of the whole line on an
  ``O_APPEND`` descriptor, so records of concurrent writers are not interleaved
  byte by byte.
- A record can be *torn*: a process killed (``SIGKILL``, power loss) during
  ``write`` may leave the first part of a line without its newline; so can a
  full disk. Nothing is rewritten in place, so every record before it is intact.
- A writer that opens a file whose last line is torn first writes a newline, so
  its own records start on a fresh line and only the torn line is lost.
- :func:`read_audit_log` skips a line that is not a JSON object (a torn last
  line, or a corrupt line in the middle), logs a WARNING naming the file and
  line, and counts it in :attr:`AuditRecords.skipped`: one bad line never hides
  the rest of the log.
- A record is on disk after ``fsync`` (see *Durability*); before that the
  operating system holds it.

A record holds ids, the trace id, each policy's name and content hash, each
candidate's scores (not its text: a sha256 of it), the chosen index, fallbacks,
vetoes, usage, timings and ``shadow`` (a :class:`~ra_guard.shadow.ShadowGuard`'s
decision: judged, never served). Free-form strings pass
:func:`~ra_guard._redact.redact_secrets`. Candidate texts and the judge's
prompt are included only with ``include_text=True``; replay
(:mod:`ra_guard.replay`) and preference pairs (:mod:`ra_guard.pairs`) need them
and read them with :func:`decisions_with_text`, which refuses a log without them
(:class:`AuditTextMissingError`).

Overflow: the queue holds ``max_queue`` decisions. ``on_overflow="block"``
(default) makes :meth:`AuditLog.record` wait for room, so no record is ever
lost (it blocks the calling thread: the event loop, in async code, which only
happens when the disk falls behind by ``max_queue`` records); ``"drop"`` returns at once and counts the lost record in
:attr:`AuditLog.dropped` (and logs a warning, once per burst).

Durability: ``fsync="batch"`` (default) calls ``fsync`` whenever the queue is
drained, ``"always"`` after each record, ``"never"`` leaves it to the OS.

Rotation: with ``max_bytes``, a file about to exceed it is renamed to
``<name>.1``, ``<name>.2``... (the highest number is the newest) and a new file
is started; no rotated file is ever deleted, so every record is kept. Rotation
assumes one writing process per file; :func:`read_audit_log` reads them all in
order.

Example:
    >>> import tempfile, pathlib
    >>> from ra_guard import Guard
    >>> from ra_guard.testing import FunctionJudge
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "decisions.jsonl"
    >>> with AuditLog(path) as audit:
    ...     guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {n: 4 for n in r.responses}),
    ...                   audit_log=audit)
    ...     _ = guard.rerank("Say hi", ["hi", "hello"])
    >>> [r["chosen_index"] for r in read_audit_log(path)]
    [0]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ra_guard._background import BackgroundWorker, OnOverflow
from ra_guard._redact import redact_capped, redact_secrets
from ra_guard.exceptions import ConfigurationError
from ra_guard.metrics import decision_outcome

if TYPE_CHECKING:
    from ra_guard.decision import Decision
    from ra_guard.policy import Policy

__all__ = [
    "AUDIT_SCHEMA_VERSION",
    "AuditLog",
    "AuditRecords",
    "AuditTextMissingError",
    "decisions_with_text",
    "read_audit_log",
]

#: The ``schema`` field of every record; bumped when fields change meaning.
AUDIT_SCHEMA_VERSION = 1

FsyncPolicy = Literal["never", "batch", "always"]

_logger = logging.getLogger(__name__)
_MAX_MESSAGE = 4096  # characters kept of an error or a fallback reason (capped, then redacted)


@dataclass(frozen=True)
class _Pending:
    decision: Decision
    guard: str
    policies: tuple[tuple[str, str], ...]
    recorded_at: float
    prompt: str | None = None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditLog:
    """Appends one JSON line per decision to ``path``, from a background thread.

    Args:
        path: The JSON Lines file (created with its folder if missing).
        max_queue: Decisions waiting to be written at most.
        on_overflow: ``"block"`` (wait for room, lose nothing) or ``"drop"``
            (return at once, count the loss in :attr:`dropped`).
        fsync: ``"batch"`` (after each drained batch), ``"always"`` or ``"never"``.
        max_bytes: Rotate the file before it grows past this size (``None``: never).
        include_text: Also write each candidate's text (redacted of secrets).

    Example:
        >>> import tempfile, pathlib
        >>> log = AuditLog(pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl", on_overflow="drop", fsync="never")
        >>> log.dropped
        0
        >>> log.close()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_queue: int = 10_000,
        on_overflow: OnOverflow = "block",
        fsync: FsyncPolicy = "batch",
        max_bytes: int | None = None,
        include_text: bool = False,
    ) -> None:
        if on_overflow not in ("block", "drop"):
            raise ConfigurationError(f"on_overflow must be 'block' or 'drop', got {on_overflow!r}")
        if fsync not in ("never", "batch", "always"):
            raise ConfigurationError(f"fsync must be 'never', 'batch' or 'always', got {fsync!r}")
        if max_queue < 1:
            raise ConfigurationError(f"max_queue must be at least 1, got {max_queue}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.on_overflow: OnOverflow = on_overflow
        self.fsync: FsyncPolicy = fsync
        self.max_bytes = max_bytes
        self.include_text = include_text
        self.written = 0
        self._fd = self._open()
        # The worker writes in order, fsyncs a batch when its queue empties, closes the file last, at exit too.
        self._worker: BackgroundWorker[_Pending] = BackgroundWorker(
            f"ra-guard-audit:{self.path.name}",
            self._handle,
            what=f"audit log {self.path}",
            items="records",
            max_queue=max_queue,
            on_overflow=on_overflow,
            on_idle=self._sync_batch,
            on_close=lambda: os.close(self._fd),
        )

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full (``on_overflow="drop"``)."""
        return self._worker.dropped

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, on_overflow={self.on_overflow!r}, fsync={self.fsync!r})"

    # -- request path -----------------------------------------------------

    def record(
        self, decision: Decision, *, guard: str, policies: Sequence[Policy] = (), prompt: str | None = None
    ) -> bool:
        """Queue one decision for writing; returns ``False`` if it was dropped.

        Only a reference is queued: the record is built and serialized on the
        writer thread.

        Args:
            decision: The finished decision (``err.decision`` for rejected ones).
            guard: The guard's name.
            policies: The guard's policies, for their content hashes.
            prompt: The judge's prompt (the conversation as the judge read it); written
                only with ``include_text=True``, for replay and preference pairs.

        Raises:
            RuntimeError: The log is closed.
        """
        if self._worker.closed:
            raise RuntimeError(f"{self!r} is closed; create a new AuditLog to record more decisions")
        pending = _Pending(
            decision=decision,
            guard=guard,
            policies=tuple((p.name, p.content_hash) for p in policies),
            recorded_at=time.time(),
            prompt=prompt,
        )
        return self._worker.put(pending)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued record is written (and synced, unless ``fsync="never"``).

        Returns:
            Whether the queue drained within ``timeout`` seconds.
        """
        return self._worker.flush(timeout)

    def close(self) -> None:
        """Write what is queued, stop the writer and close the file. Idempotent."""
        self._worker.close()

    # -- writer thread ----------------------------------------------------

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if not _ends_with_newline(self.path):
            # A writer killed mid-record left a torn line: start ours on a fresh one.
            _logger.warning("audit log %s ends with a torn line; appending after it on a new line", self.path)
            os.write(fd, b"\n")
        return fd

    def _handle(self, pending: _Pending) -> None:
        self._write(self._line(pending))

    def _sync_batch(self) -> None:
        if self.fsync == "batch":
            os.fsync(self._fd)

    def _write(self, line: bytes) -> None:
        if self.max_bytes is not None:
            size = os.fstat(self._fd).st_size
            if size and size + len(line) > self.max_bytes:
                self._rotate()
        written = os.write(self._fd, line)
        while written < len(line):  # regular files only do this on a full disk or a signal
            written += os.write(self._fd, line[written:])
        self.written += 1
        if self.fsync == "always":
            os.fsync(self._fd)

    def _rotate(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        numbers = [int(m.group(1)) for p in _rotated(self.path) if (m := re.search(r"\.(\d+)$", p.name))]
        os.replace(self.path, self.path.with_name(f"{self.path.name}.{max(numbers, default=0) + 1}"))
        self._fd = self._open()

    def _line(self, pending: _Pending) -> bytes:
        record = self._record(pending)
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    def _record(self, pending: _Pending) -> dict[str, Any]:
        decision = pending.decision
        candidates = []
        for c in decision.candidates:
            entry: dict[str, Any] = {
                "index": c.index,
                "source": c.source,
                "attempt": c.attempt,
                "response_id": redact_secrets(c.response_id) if c.response_id else None,
                "finish_reason": c.finish_reason,
                "text_sha256": _sha256(c.text),
                "combined": c.combined,
                "vetoed": c.vetoed,
                "scores": {
                    name: {
                        "score": s.score,
                        "rank": s.rank,
                        "passed": s.passed,
                        "vetoed": s.vetoed,
                        "error": redact_capped(s.error, _MAX_MESSAGE) if s.error else None,
                    }
                    for name, s in c.scores.items()
                },
            }
            if self.include_text:
                entry["text"] = redact_secrets(c.text)
            candidates.append(entry)
        hashes = dict(pending.policies)
        finished = datetime.fromtimestamp(pending.recorded_at, tz=timezone.utc)
        record: dict[str, Any] = {
            "schema": AUDIT_SCHEMA_VERSION,
            "decision_id": decision.decision_id,
            "trace_id": decision.trace_id,
            "guard": redact_capped(pending.guard, _MAX_MESSAGE),
            "strategy": decision.strategy,
            "shadow": decision.shadow,
            "outcome": decision_outcome(decision),
            "passed": decision.passed,
            "chosen_index": decision.chosen_index,
            "attempts": decision.attempts,
            "policies": [{"name": name, "content_hash": hashes.get(name)} for name in decision.policies],
            "candidates": candidates,
            "vetoes": decision.vetoes,
            "fallbacks": [
                {
                    "kind": f.kind,
                    "policy": f.policy,
                    "reason": redact_capped(f.reason, _MAX_MESSAGE),
                    "action": f.action,
                }
                for f in decision.fallbacks
            ],
            "judge_calls": decision.judge_calls,
            "usage": {
                "sampling": decision.sampling_usage.model_dump(),
                "judge": decision.judge_usage.model_dump(),
            },
            "timings": {
                "latency_s": decision.latency_s,
                "started_at": datetime.fromtimestamp(
                    pending.recorded_at - decision.latency_s, tz=timezone.utc
                ).isoformat(timespec="microseconds"),
                "finished_at": finished.isoformat(timespec="microseconds"),
            },
        }
        if self.include_text:
            record["prompt"] = redact_secrets(pending.prompt) if pending.prompt is not None else None
        return record


def _rotated(path: Path) -> list[Path]:
    return [p for p in path.parent.glob(f"{path.name}.*") if re.fullmatch(re.escape(path.name) + r"\.\d+", p.name)]


def _ends_with_newline(path: Path) -> bool:
    """Whether ``path`` is empty or its last byte is a newline."""
    try:
        with path.open("rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return True
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except OSError:
        return True


class AuditRecords:
    """The records of an audit log, read as they are iterated; torn lines are skipped and counted.

    Attributes:
        path: The log's path.
        skipped: Lines skipped so far because they are not a JSON object (torn or corrupt).
        skipped_lines: ``"file:line"`` of each skipped line.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"
        >>> _ = path.write_text('{"n": 1}\\n{"n": 2, "torn')
        >>> records = read_audit_log(path)
        >>> [r["n"] for r in records], records.skipped
        ([1], 1)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.skipped = 0
        self.skipped_lines: list[str] = []

    def __iter__(self) -> Iterator[dict[str, Any]]:
        base = self.path
        files = sorted(_rotated(base), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        if base.exists():
            files.append(base)
        for file in files:
            with file.open("rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    if not raw.strip():
                        continue
                    try:
                        record = json.loads(raw)
                    except ValueError:  # JSONDecodeError, and UnicodeDecodeError of a line cut mid-character
                        record = None
                    if isinstance(record, dict):
                        yield record
                        continue
                    torn = "torn last line" if not raw.endswith(b"\n") else "corrupt line"
                    self.skipped += 1
                    self.skipped_lines.append(f"{file}:{number}")
                    _logger.warning(
                        "audit log %s:%d: skipped a %s (%d bytes, not a JSON record)", file, number, torn, len(raw)
                    )


def read_audit_log(path: str | os.PathLike[str]) -> AuditRecords:
    """Every record of an audit log, rotated files first (oldest to newest).

    A line that is not a JSON object (torn by a killed writer, or corrupt) is
    skipped with a WARNING; after iterating, ``.skipped`` says how many were.

    Args:
        path: The log's path, as given to :class:`AuditLog`.

    Returns:
        An iterable of records (dicts) with a ``skipped`` count.

    Example:
        >>> import tempfile, pathlib
        >>> list(read_audit_log(pathlib.Path(tempfile.mkdtemp()) / "none.jsonl"))
        []
    """
    return AuditRecords(path)


class AuditTextMissingError(ConfigurationError):
    """An audit log was asked for texts it does not hold: it was written without ``include_text=True``.

    Attributes:
        file: The log's path.
        decision_id: The first record found without its texts.

    Example:
        >>> str(AuditTextMissingError("a.jsonl", "d1"))  # doctest: +ELLIPSIS
        'a.jsonl: decision d1 has no candidate texts or prompt; ... AuditLog(path, include_text=True) ...'
    """

    def __init__(self, file: str, decision_id: str) -> None:
        self.file = file
        self.decision_id = decision_id
        super().__init__(
            f"{file}: decision {decision_id} has no candidate texts or prompt; replay and preference pairs "
            "need them: record decisions with AuditLog(path, include_text=True) (texts are redacted of secrets)"
        )


def decisions_with_text(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of an audit log that carry their texts, in order; refuses a log written without them.

    Every record must hold its ``prompt`` and each candidate's ``text``
    (``AuditLog(include_text=True)``); the first one that does not raises.
    Torn lines are skipped as by :func:`read_audit_log`.

    Args:
        path: The log's path.

    Raises:
        AuditTextMissingError: A record has no texts; names the file and the option to set.
        ConfigurationError: There is no log at ``path`` (nor rotated files of it).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"
        >>> _ = path.write_text('{"decision_id": "d1", "candidates": [{"index": 0}]}\\n')
        >>> next(decisions_with_text(path))
        Traceback (most recent call last):
        ...
        ra_guard.audit.AuditTextMissingError: ...a.jsonl: decision d1 has no candidate texts or prompt; ...
    """
    base = Path(path)
    if not base.exists() and not _rotated(base):
        raise ConfigurationError(f"{base}: no such audit log (give the path passed to AuditLog)")
    for record in read_audit_log(path):
        candidates = record.get("candidates")
        has_text = (
            isinstance(record.get("prompt"), str)
            and isinstance(candidates, list)
            and all(isinstance(c, dict) and isinstance(c.get("text"), str) for c in candidates)
        )
        if not has_text:
            raise AuditTextMissingError(str(path), str(record.get("decision_id", "?")))
        yield record
