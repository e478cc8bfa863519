"""The results of a run: a JSONL file appended to as each judgement finishes, read back to resume.

Each record is one judgement (an item, a judge, a presentation order) keyed by
``task``; a run that restarts reads the file, skips every task that has a
result and judges the rest. A crash can leave the last line half written: it
is dropped (and the file cut back to the last whole line, logged) so the next
record starts on a line of its own. Any other unreadable line is an error that
names it: the file was edited or mixed with another.

Example:
    >>> import tempfile
    >>> store = ResultStore(tempfile.mkdtemp())
    >>> store.append({"task": "a|judge|0", "ok": True})
    >>> list(ResultStore(store.run_dir).load())
    ['a|judge|0']
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ra_guard.evaluation.dataset import DatasetError

__all__ = ["RESULTS_FILE", "RUN_FILE", "ResultStore", "task_key"]

logger = logging.getLogger("ra_guard")

#: Name of the results file in a run directory.
RESULTS_FILE = "results.jsonl"
#: Name of the settings file in a run directory.
RUN_FILE = "run.json"


def task_key(item_key: str, judge: str, order: int) -> str:
    """The key of one judgement: item, judge label and presentation order.

    Example:
        >>> task_key("q1", "fast", 0)
        'q1|fast|0'
    """
    return f"{item_key}|{judge}|{order}"


class ResultStore:
    """Append-only JSONL results of one run directory.

    Args:
        run_dir: The run directory (created if missing).

    Example:
        >>> import tempfile
        >>> ResultStore(tempfile.mkdtemp()).path.name
        'results.jsonl'
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / RESULTS_FILE
        self.dropped_torn_line = False

    def load(self) -> dict[str, dict[str, Any]]:
        """Every task's latest record, by task key; repairs a torn last line first.

        A successful record is never replaced by a later failure of the same task.

        Raises:
            DatasetError: A line other than the last is not a JSON object with a ``task``.
        """
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        # A record is written with its newline in one call, so a crash mid-write leaves an
        # unterminated tail; every line before the last newline was written whole.
        whole, newline, tail = data.rpartition(b"\n")
        records: dict[str, dict[str, Any]] = {}
        lines = whole.split(b"\n") if newline else []
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            record = _parse(raw)
            if record is None:
                raise DatasetError(
                    self.path,
                    number,
                    "not a result record (was the file edited?); remove the line or start a new --out directory",
                )
            _keep(records, record)
        if tail.strip():
            record = _parse(tail)
            if record is None:
                self._truncate(len(whole) + len(newline), len(lines) + 1)
            else:  # whole, only its newline lost: end the line so the next record starts its own
                with self.path.open("ab") as handle:
                    handle.write(b"\n")
                _keep(records, record)
        return records

    def _truncate(self, size: int, line: int) -> None:
        logger.warning(
            "results file %s: line %d was cut short by a crash; dropped, its task runs again", self.path, line
        )
        with self.path.open("r+b") as handle:
            handle.truncate(size)
        self.dropped_torn_line = True

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a line, flushed to the OS before returning (a crash keeps it)."""
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def _keep(records: dict[str, dict[str, Any]], record: dict[str, Any]) -> None:
    previous = records.get(record["task"])
    if previous is None or not previous.get("ok") or record.get("ok"):
        records[record["task"]] = record


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("task"), str):
        return None
    return record
