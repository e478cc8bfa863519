"""Shadow mode: the caller's output comes back unchanged at once; the decision is judged later and recorded."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ra_guard import AuditLog, Decision, Guard, JudgeRequest, Policy, PolicyKind
from ra_guard.audit import read_audit_log
from ra_guard.shadow import ShadowGuard
from ra_guard.testing import FunctionJudge, FunctionSampler
from ra_guard.tracing import DecisionTracer

BRIEF = Policy(name="brief", principle="Be brief.", min_score=3)
USER = [{"role": "user", "content": "Capital of France?"}]


def by_length(request: JudgeRequest) -> dict[str, float]:
    """Shorter is better: 5 for up to 10 characters, 1 from 40 on."""
    return {name: max(1.0, 5 - max(0, len(text) - 10) / 7.5) for name, text in request.responses.items()}


class Gate:
    """A judge function that blocks until opened, and counts the calls that entered it and ran at once."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Semaphore(0)
        self.calls = 0
        self.now = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, request: JudgeRequest) -> dict[str, float]:
        with self._lock:
            self.calls += 1
            self.now += 1
            self.most = max(self.most, self.now)
        self.entered.release()
        try:
            assert self.opened.wait(30), "the gate was never opened"
            return by_length(request)
        finally:
            with self._lock:
                self.now -= 1

    def wait_entered(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=60), "the shadow judge was never called"


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.opened.set()  # never leave a worker thread blocked behind a failed test


def test_check_returns_the_output_before_the_judge_answers(gate: Gate) -> None:
    seen: list[Decision] = []
    guard = Guard(policies=[BRIEF], judge=FunctionJudge(gate))
    with ShadowGuard(guard, on_decision=seen.append) as shadow:
        output = "The capital of France is Paris, a city on the Seine with many museums."
        assert shadow.check(USER, output) is output
        gate.wait_entered()  # the judge is running now, and blocked: the caller already has its answer
        assert seen == [] and shadow.in_flight == 1
        gate.opened.set()
        assert shadow.flush(timeout=60)
    (decision,) = seen
    assert decision.shadow and decision.strategy == "check"
    assert decision.chosen.text == output and not decision.passed  # judged as failing; served anyway


def test_shadow_decisions_are_marked_in_the_audit_log_with_their_texts(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    with AuditLog(path, include_text=True) as audit:
        guard = Guard(policies=[BRIEF], judge=FunctionJudge(by_length), audit_log=audit)
        with ShadowGuard(guard) as shadow:
            shadow.check(USER, "Paris.")
        guard.check(USER, "Paris.")  # an enforced decision beside it
    shadow_record, enforced = list(read_audit_log(path))
    assert shadow_record["shadow"] is True and enforced["shadow"] is False
    assert shadow_record["prompt"] == "Capital of France?"
    assert shadow_record["candidates"][0]["text"] == "Paris."
    assert shadow_record["candidates"][0]["source"] == "original"


def test_without_include_text_the_record_keeps_no_prompt(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    with AuditLog(path) as audit:
        Guard(policies=[BRIEF], judge=FunctionJudge(by_length), audit_log=audit).check(USER, "Paris.")
    (record,) = list(read_audit_log(path))
    assert "prompt" not in record and "text" not in record["candidates"][0]


def test_the_root_span_says_shadow_and_sits_under_the_callers_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    guard = Guard(policies=[BRIEF], judge=FunctionJudge(by_length), tracer=DecisionTracer(provider))
    with ShadowGuard(guard) as shadow:
        with provider.get_tracer("app").start_as_current_span("handle request") as request_span:
            shadow.check(USER, "Paris.")
        assert shadow.flush(timeout=60)
    guard.check(USER, "Paris.")
    roots = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_workflow")]
    shadow_root, enforced_root = roots
    assert shadow_root.attributes is not None and shadow_root.attributes["ra_guard.shadow"] is True
    assert enforced_root.attributes is not None and "ra_guard.shadow" not in enforced_root.attributes
    assert shadow_root.parent is not None
    assert shadow_root.parent.span_id == request_span.get_span_context().span_id
    provider.shutdown()


def test_a_failing_output_gets_the_alternatives_the_strategy_would_sample() -> None:
    seen: list[Decision] = []
    sampler = FunctionSampler(lambda messages, i: "Paris.")
    guard = Guard(policies=[BRIEF], judge=FunctionJudge(by_length), sampler=sampler)
    long_answer = "Well, that is a great question; the capital of France is, of course, Paris."
    with ShadowGuard(guard, on_decision=seen.append) as shadow:
        assert shadow.check(USER, long_answer, n=2) == long_answer
    (decision,) = seen
    assert [c.source for c in decision.candidates] == ["original", "sampled", "sampled"]
    assert decision.text == "Paris." and decision.passed  # what enforcing would have served


def test_a_full_queue_drops_counts_and_warns_once(gate: Gate, caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(policies=[BRIEF], judge=FunctionJudge(gate))
    with ShadowGuard(guard, max_queue=1, max_concurrency=1) as shadow:
        shadow.check(USER, "first")
        gate.wait_entered()
        with caplog.at_level(logging.WARNING, logger="ra_guard"):
            outputs = [shadow.check(USER, f"answer {i}") for i in range(6)]
        assert outputs == [f"answer {i}" for i in range(6)]
        # One running, at most one held by the worker waiting for a slot, one queued: the rest dropped.
        assert shadow.submitted <= 3 and shadow.dropped >= 4
        assert shadow.submitted + shadow.dropped == 7
        warnings = [r for r in caplog.records if "is full" in r.getMessage()]
        assert len(warnings) == 1 and "shadow checks" in warnings[0].getMessage()
        gate.opened.set()
        assert shadow.flush(timeout=60)
    assert shadow.completed == shadow.submitted


def test_no_more_than_max_concurrency_decisions_are_judged_at_once(gate: Gate) -> None:
    guard = Guard(policies=[BRIEF], judge=FunctionJudge(gate))
    with ShadowGuard(guard, max_concurrency=2) as shadow:
        for i in range(6):
            shadow.check(USER, f"answer {i}")
        gate.wait_entered(2)
        time.sleep(0.1)  # room for a third to start, were it allowed to
        assert gate.calls == 2 and shadow.in_flight == 2
        gate.opened.set()
        assert shadow.flush(timeout=60)
    assert gate.most == 2 and shadow.completed == 6


def test_nothing_reaches_the_caller_failures_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken_sampler(messages: object, index: int) -> str:
        raise RuntimeError("model server down")

    guard = Guard(policies=[BRIEF], judge=FunctionJudge(by_length))
    with caplog.at_level(logging.WARNING, logger="ra_guard"), ShadowGuard(guard, mode="always") as shadow:
        assert shadow.check(42, "out") == "out"  # type: ignore[arg-type]  # not a conversation
        assert shadow.check(USER, 42) == 42  # not a string output
        assert shadow.check(USER, "out", sampler=FunctionSampler(broken_sampler)) == "out"
        assert shadow.check(USER, "out", n=0) == "out"
        assert shadow.flush(timeout=60)
    assert shadow.failed == 4 and shadow.completed == 0
    failures = [r.getMessage() for r in caplog.records if "shadow check failed" in r.getMessage()]
    assert len(failures) == 4
    assert any("InputError" in m and "messages" in m for m in failures)
    assert any("SamplerError" in m for m in failures)


def test_a_vetoed_output_and_a_failing_judge_are_still_recorded(tmp_path: Path) -> None:
    safe = Policy(name="safe", principle="Refuse nothing.", kind=PolicyKind.HARD, min_score=3)
    path = tmp_path / "decisions.jsonl"

    def judge(request: JudgeRequest) -> dict[str, float]:
        if "boom" in request.prompt:
            raise RuntimeError("judge crashed")
        return {name: 1.0 for name in request.responses}

    with AuditLog(path) as audit:
        guard = Guard(policies=[safe], judge=FunctionJudge(judge), audit_log=audit)
        with ShadowGuard(guard) as shadow:
            shadow.check(USER, "No.")
            shadow.check("boom", "No.")
    assert shadow.completed == 2 and shadow.failed == 0
    by_prompt = {r["outcome"]: r for r in read_audit_log(path)}
    assert set(by_prompt) == {"rejected", "passed"}  # vetoed; the judge error ignored (fail_open)
    assert [f["kind"] for f in by_prompt["passed"]["fallbacks"]] == ["judge_error"]
    assert all(r["shadow"] for r in by_prompt.values())


def test_messages_changed_after_check_do_not_change_what_is_judged(gate: Gate) -> None:
    prompts: list[str] = []

    def judge(request: JudgeRequest) -> dict[str, float]:
        prompts.append(request.prompt)
        return gate(request)

    guard = Guard(policies=[BRIEF], judge=FunctionJudge(judge))
    messages: list[dict[str, str]] = [{"role": "user", "content": "Capital of France?"}]
    with ShadowGuard(guard) as shadow:
        shadow.check(messages, "Paris.")
        messages.append({"role": "assistant", "content": "Paris."})  # what a chat app does next
        gate.opened.set()
    assert prompts == ["Capital of France?"]


def test_close_decides_what_is_queued_and_later_checks_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(policies=[BRIEF], judge=FunctionJudge(by_length, delay=0.01))
    shadow = ShadowGuard(guard, max_concurrency=1)
    for i in range(5):
        shadow.check(USER, f"answer {i}")
    shadow.close()
    assert shadow.completed == 5 and shadow.in_flight == 0
    with caplog.at_level(logging.WARNING, logger="ra_guard"):
        assert shadow.check(USER, "late") == "late"
        shadow.check(USER, "later")
    assert shadow.dropped == 2
    assert len([r for r in caplog.records if "is closed" in r.getMessage()]) == 1
    shadow.close()  # idempotent


def test_close_gives_up_on_a_judge_that_outlives_close_timeout(gate: Gate, caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(policies=[BRIEF], judge=FunctionJudge(gate))
    shadow = ShadowGuard(guard, close_timeout_s=0.2)
    shadow.check(USER, "stuck")
    gate.wait_entered()
    with caplog.at_level(logging.WARNING, logger="ra_guard"):
        shadow.close()
    assert shadow.dropped == 1 and shadow.completed == 0
    assert any("were cancelled" in r.getMessage() for r in caplog.records)


def test_close_does_not_hang_on_checks_queued_behind_a_stuck_judge(gate: Gate) -> None:
    guard = Guard(policies=[BRIEF], judge=FunctionJudge(gate))
    shadow = ShadowGuard(guard, max_concurrency=1, close_timeout_s=0.3)
    for i in range(3):
        shadow.check(USER, f"answer {i}")
    gate.wait_entered()
    shadow.close()  # one running, one held by the worker for a slot, one queued: all given up
    assert shadow.submitted == 3 and shadow.dropped == 3 and shadow.completed == 0
    assert gate.calls == 1


def test_acheck_returns_at_once_inside_an_event_loop(gate: Gate) -> None:
    guard = Guard(policies=[BRIEF], judge=FunctionJudge(gate))

    async def handler(shadow: ShadowGuard) -> str:
        return await shadow.acheck(USER, "Paris.")

    async def main() -> None:
        async with ShadowGuard(guard) as shadow:
            assert await handler(shadow) == "Paris."
            await asyncio.to_thread(gate.wait_entered)
            gate.opened.set()
        assert shadow.completed == 1

    asyncio.run(main())


def test_bad_settings_are_refused() -> None:
    from ra_guard import ConfigurationError

    guard = Guard(policies=[BRIEF], judge=FunctionJudge(by_length))
    for options in ({"max_queue": 0}, {"max_concurrency": 0}, {"mode": "sometimes"}):
        with pytest.raises(ConfigurationError):
            ShadowGuard(guard, **options)  # type: ignore[arg-type]
