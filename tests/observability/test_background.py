"""The background worker shared by the audit log and the Phoenix annotator: the same rules for both.

Each rule held for the audit log before and was missing from the annotator
(the copies had drifted): queued annotations are sent when the process exits
without ``close()``, a decision that cannot be annotated does not stop the
thread, and a full queue is logged, not only counted.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ra_guard.phoenix
from ra_guard._background import BackgroundWorker
from ra_guard.phoenix import PhoenixAnnotator

from .conftest import Pipeline, make_guard, texts_sampler
from .test_phoenix_annotator import FakePhoenix

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_phoenix() -> Iterator[FakePhoenix]:
    fake = FakePhoenix([])
    yield fake
    fake.stop()


_EXIT_WITHOUT_CLOSE = textwrap.dedent(
    """
    import sys
    from opentelemetry.sdk.trace import TracerProvider
    from ra_guard import Guard, Policy
    from ra_guard.phoenix import PhoenixAnnotator
    from ra_guard.testing import FunctionJudge, FunctionSampler
    from ra_guard.tracing import DecisionTracer

    annotator = PhoenixAnnotator(sys.argv[1])
    guard = Guard(
        policies=[Policy(name="short", principle="Be short.")],
        judge=FunctionJudge(lambda r: {k: 5 for k in r.responses}),
        tracer=DecisionTracer(TracerProvider(), listeners=[annotator]),
    )
    guard.run("q", sampler=FunctionSampler(lambda m, i: "answer"), n=1)
    print("exiting without close()", flush=True)
    """
)


def test_phoenix_annotations_queued_at_exit_are_sent(fake_phoenix: FakePhoenix) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_WITHOUT_CLOSE, fake_phoenix.url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "exiting without close()" in done.stdout
    posted = [a for _, _, body in fake_phoenix.posts for a in body["data"]]
    assert {a["name"] for a in posted} >= {"short", "ra_guard.choice", "ra_guard.outcome"}


def test_a_decision_that_cannot_be_annotated_does_not_stop_the_annotator(
    otel: Pipeline, fake_phoenix: FakePhoenix, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = ra_guard.phoenix.annotations_for
    calls = iter([ValueError("a span the annotator cannot read")])

    def first_fails(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        failure = next(calls, None)
        if failure is not None:
            raise failure
        return real(*args, **kwargs)

    monkeypatch.setattr(ra_guard.phoenix, "annotations_for", first_fails)
    annotator = PhoenixAnnotator(fake_phoenix.url)
    guard = make_guard(otel.tracer(listeners=[annotator]), n=1)
    guard.run("q", sampler=texts_sampler("first"))
    guard.run("q", sampler=texts_sampler("second"))
    assert annotator.flush(10), "the annotator's thread died on the first decision"
    annotator.close()
    assert annotator.dropped == 1 and annotator.sent > 0
    assert "a span the annotator cannot read" in caplog.text


def test_a_full_annotator_queue_is_logged_and_counted(
    otel: Pipeline, fake_phoenix: FakePhoenix, caplog: pytest.LogCaptureFixture
) -> None:
    annotator = PhoenixAnnotator(fake_phoenix.url, max_queue=1)
    release = stall(annotator._worker)
    guard = make_guard(otel.tracer(listeners=[annotator]), n=1)
    for _ in range(5):
        guard.run("q", sampler=texts_sampler("answer"))
    assert annotator.dropped >= 3
    assert "Phoenix annotator" in caplog.text and "dropping decisions" in caplog.text
    release()
    annotator.close()


def stall(worker: BackgroundWorker[Any]) -> Any:
    """Hold the worker's thread on its next item until the returned function is called."""
    import threading

    gate = threading.Event()
    handle = worker._handle

    def held(item: Any) -> None:
        gate.wait(10)
        handle(item)

    worker._handle = held
    return gate.set


_STUCK_AT_EXIT = textwrap.dedent(
    """
    import logging, time
    from ra_guard._background import BackgroundWorker

    logging.basicConfig(level=logging.WARNING)

    worker = BackgroundWorker("stuck", lambda item: time.sleep(60), what="a stuck sender", exit_timeout_s=0.5)
    worker.put(1)
    worker.put(2)
    """
)


def test_exit_waits_at_most_the_exit_timeout_and_says_what_it_left() -> None:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _STUCK_AT_EXIT], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert time.monotonic() - started < 30
    assert done.returncode == 0, done.stderr
    assert "a stuck sender: exiting with 1 items not handled" in done.stderr
