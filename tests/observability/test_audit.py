"""The append-only decision log: records, overflow, crash safety, rotation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ra_guard import AllCandidatesRejected, ConfigurationError
from ra_guard.audit import AuditLog, read_audit_log
from ra_guard.decision import Candidate, Decision, PolicyScore

from .conftest import POLICIES, Pipeline, make_guard, texts_sampler

MESSAGES = [{"role": "user", "content": "Capital of France?"}]
REPO = Path(__file__).resolve().parents[2]


def decision(i: int = 0, text: str = "hi") -> Decision:
    return Decision(
        chosen_index=0,
        candidates=[Candidate(index=0, text=text, scores={"concise": PolicyScore(score=4.0, rank=0)})],
        policies=["concise"],
        latency_s=0.01 * i,
    )


def test_guard_records_every_decision_including_rejected(otel: Pipeline, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "decisions.jsonl"
    with AuditLog(path) as audit:
        guard = make_guard(otel.tracer(), audit_log=audit, name="faq")
        ok = guard.run(MESSAGES, sampler=texts_sampler("Paris.", "LEAK"), n=2)
        with pytest.raises(AllCandidatesRejected) as err:
            guard.run(MESSAGES, sampler=texts_sampler("LEAK"), n=2)
    records = list(read_audit_log(path))
    assert [r["decision_id"] for r in records] == [ok.decision_id, err.value.decision.decision_id]
    first, rejected = records
    assert first["schema"] == 1
    assert first["trace_id"] == ok.trace_id and len(first["trace_id"]) == 32
    assert first["guard"] == "faq" and first["strategy"] == "best_of_n"
    assert first["policies"] == [{"name": p.name, "content_hash": p.content_hash} for p in POLICIES]
    assert first["chosen_index"] == 0 and first["outcome"] == "passed"
    assert first["vetoes"] == {"safe": [1]}
    assert first["candidates"][1]["scores"]["safe"] == {
        "score": 1.0,
        "rank": 1,
        "passed": False,
        "vetoed": True,
        "error": None,
    }
    assert "text" not in first["candidates"][0]  # content stays out unless include_text=True
    assert len(first["candidates"][0]["text_sha256"]) == 64
    assert first["timings"]["latency_s"] == pytest.approx(ok.latency_s)
    assert first["timings"]["started_at"] < first["timings"]["finished_at"]
    assert rejected["outcome"] == "rejected" and rejected["vetoes"] == {"safe": [0, 1]}


def test_fallback_reasons_are_recorded(tmp_path: Path) -> None:
    from ra_guard.decision import Fallback

    d = decision().model_copy(
        update={"fallbacks": [Fallback(kind="judge_error", policy="concise", reason="timeout", action="ignored")]}
    )
    with AuditLog(tmp_path / "a.jsonl") as audit:
        audit.record(d, guard="g", policies=POLICIES)
    [record] = read_audit_log(tmp_path / "a.jsonl")
    assert record["fallbacks"] == [
        {"kind": "judge_error", "policy": "concise", "reason": "timeout", "action": "ignored"}
    ]


def stalled(audit: AuditLog) -> threading.Event:
    """Hold the writer thread inside its next write until the returned event is set."""
    release = threading.Event()
    original = audit._write

    def slow_write(line: bytes) -> None:
        release.wait(10)
        original(line)

    audit._write = slow_write  # type: ignore[method-assign]
    return release


def test_overflow_drop_counts_lost_records(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog(tmp_path / "a.jsonl", max_queue=2, on_overflow="drop", fsync="never")
    release = stalled(audit)
    results = [audit.record(decision(i), guard="g") for i in range(10)]
    # One is held by the writer, two wait in the queue, the rest are dropped.
    assert results.count(True) in (2, 3) and audit.dropped == 10 - results.count(True)
    assert "dropping records" in caplog.text
    release.set()
    audit.close()
    assert len(list(read_audit_log(tmp_path / "a.jsonl"))) == results.count(True) == audit.written


def test_overflow_block_waits_and_loses_nothing(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "a.jsonl", max_queue=1, on_overflow="block", fsync="never")
    release = stalled(audit)
    done = threading.Event()

    def producer() -> None:
        for i in range(5):
            audit.record(decision(i), guard="g")
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not done.wait(0.3)  # blocked: the queue is full and the writer is stalled
    release.set()
    assert done.wait(5)
    thread.join()
    audit.close()
    assert audit.dropped == 0 and len(list(read_audit_log(tmp_path / "a.jsonl"))) == 5


_WRITER = textwrap.dedent(
    """
    import sys
    from ra_guard.audit import AuditLog
    from ra_guard.decision import Candidate, Decision, PolicyScore
    path, tag, count, fsync = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    audit = AuditLog(path, fsync=fsync, include_text=True, max_queue=64)
    for i in range(count):
        text = f"{tag}-{i}-" + "x" * 20000  # big records: many pages per write
        d = Decision(chosen_index=0, candidates=[Candidate(index=0, text=text,
                     scores={"p": PolicyScore(score=3.0)})], policies=["p"], strategy=tag)
        audit.record(d, guard=tag)
    audit.close()
    """
)


def spawn_writer(path: Path, tag: str, count: int, fsync: str = "never") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(path), tag, str(count), fsync], env=env)


def test_sigkill_mid_stream_loses_at_most_the_torn_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "a.jsonl"
    writer = spawn_writer(path, "killed", 1_000_000)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 2_000_000):
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(10)
    assert writer.returncode == -signal.SIGKILL
    torn = not path.read_bytes().endswith(b"\n")
    records = read_audit_log(path)
    indexes = [int(r["candidates"][0]["text"].split("-")[1]) for r in records]
    assert len(indexes) > 50
    assert indexes == list(range(len(indexes)))  # in order, none missing
    assert records.skipped == int(torn)


# Writes one big real record again and again: nearly all its time is spent inside os.write,
# so a SIGKILL almost always lands mid-write and tears the last line.
_TEARING_WRITER = textwrap.dedent(
    """
    import sys
    from ra_guard.audit import AuditLog, _Pending
    from ra_guard.decision import Candidate, Decision
    audit = AuditLog(sys.argv[1], fsync="never", include_text=True)
    text = "y" * 8_000_000
    line = audit._line(_Pending(Decision(chosen_index=0, candidates=[Candidate(index=0, text=text)]), "big", (), 0.0))
    print("ready", flush=True)
    while True:
        audit._write(line)
    """
)


def test_a_torn_line_is_skipped_and_the_next_writer_starts_a_fresh_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _attempt in range(10):
        path.unlink(missing_ok=True)
        writer = subprocess.Popen([sys.executable, "-c", _TEARING_WRITER, str(path)], env=env, stdout=subprocess.PIPE)
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        while not path.exists() or path.stat().st_size < 20_000_000:
            time.sleep(0.005)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(10)
        writer.stdout.close()
        if not path.read_bytes().endswith(b"\n"):
            break
    else:
        pytest.skip("10 SIGKILLs never landed inside a write")
    whole = path.read_bytes().count(b"\n")
    with AuditLog(path, fsync="never") as audit:  # the next process
        audit.record(decision(7, text="after the crash"), guard="next")
    records = read_audit_log(path)
    read = list(records)
    assert len(read) == whole + 1  # every whole record, and the new one: nothing glued to the torn line
    assert read[-1]["guard"] == "next"
    assert records.skipped == 1 and records.skipped_lines == [f"{path}:{whole + 1}"]
    assert any("torn" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_concurrent_writer_processes_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    writers = [spawn_writer(path, tag, 150) for tag in ("alpha", "beta", "gamma")]
    for w in writers:
        assert w.wait(120) == 0
    records = list(read_audit_log(path))
    assert len(records) == 450
    for tag in ("alpha", "beta", "gamma"):
        mine = [int(r["candidates"][0]["text"].split("-")[1]) for r in records if r["guard"] == tag]
        assert mine == list(range(150))


def test_rotation_by_size_keeps_every_record(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path, max_bytes=4000, fsync="always") as audit:
        for i in range(60):
            audit.record(decision(i), guard="g")
    rotated = sorted(tmp_path.glob("a.jsonl.*"), key=lambda p: int(p.suffix[1:]))
    assert len(rotated) >= 5
    assert all(p.stat().st_size <= 4000 for p in [*rotated, path])
    latencies = [r["timings"]["latency_s"] for r in read_audit_log(path)]
    assert latencies == pytest.approx([0.01 * i for i in range(60)])
    # Re-opening continues numbering after the highest rotated file.
    with AuditLog(path, max_bytes=4000) as audit:
        for i in range(20):
            audit.record(decision(i), guard="g")
    assert len(list(read_audit_log(path))) == 80


def test_flush_and_close(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "a.jsonl", fsync="batch")
    audit.record(decision(), guard="g")
    assert audit.flush(timeout=5)
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 1
    audit.close()
    audit.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        audit.record(decision(), guard="g")


@pytest.mark.parametrize(("option", "value"), [("on_overflow", "wait"), ("fsync", "sometimes"), ("max_queue", 0)])
def test_bad_options_say_what_to_change(tmp_path: Path, option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        AuditLog(tmp_path / "a.jsonl", **{option: value})  # type: ignore[arg-type]


def test_a_corrupt_middle_line_is_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"n": 1}\n{"half": \n[1, 2]\n\xff\xfe\n{"n": 2}\n')
    records = read_audit_log(path)
    assert [r["n"] for r in records] == [1, 2]
    assert records.skipped == 3
    assert records.skipped_lines == [f"{path}:{n}" for n in (2, 3, 4)]
    assert sum("corrupt line" in r.getMessage() for r in caplog.records) == 3
