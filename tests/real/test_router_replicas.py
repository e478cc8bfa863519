"""Two vLLM replicas behind the litellm ``Router`` judge; one is killed mid-run and no decision is lost.

Replica A is the session's vLLM server; replica B is started here and killed
(SIGKILL of its process group, as an OOM kill or a crash would) while decisions
are in flight. Every decision must come back: the calls that hit B are retried
on A by the router, or, where a call still fails, the failure is on the decision
(``fallbacks``), never a lost decision or an exception.

Before the kill, while both replicas live, the evaluation run goes through the
same router as a Ray Data job on a local Ray instance: every worker builds its
router judge over both replicas from their URLs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ra_guard import Guard, Policy
from ra_guard.decision import Decision
from ra_guard.evaluation import EvalItem
from ra_guard.integrations.litellm import RouterJudge, router_judge
from tests.real.conftest import SERVED_NAME, Figures
from tests.real.test_conformance import verdict_schema
from tests.support.servers import ServerProcess
from tests.support.vllm_server import start_vllm

CANDIDATES = ["Paris.", "The capital of France is London.", "Paris, on the Seine."]
PROMPT = "What is the capital of France?"
DECISIONS = 10
POLICY = Policy(name="correct", principle="Answer the question correctly and concisely.", min_score=1)


@pytest.fixture(scope="module")
def replica_b(smollm2_dir: Path, server_logs: Path) -> Iterator[ServerProcess]:
    # --enable-log-requests: B's front end logs each request as the engine takes it ("Added request"),
    # so the test sees a request in flight even while B's engine is too busy to update its metrics.
    server = start_vllm(smollm2_dir, served_name=SERVED_NAME, log_dir=server_logs, extra_args=["--enable-log-requests"])
    yield server
    server.stop()


def served_requests(server: ServerProcess) -> int:
    return server.log_tail(10**9).count("POST /v1/chat/completions")


def in_flight(server: ServerProcess) -> int:
    """Requests B's engine has taken and not yet answered (from its request log; B only)."""
    log = server.log_tail(10**9)
    return log.count("Added request") - log.count("POST /v1/chat/completions")


def judge_over(replicas: list[ServerProcess]) -> RouterJudge:
    """A router judge over the replicas; a JSON schema keeps SmolLM2 (not a trained judge) in the verdict format."""
    return judge_over_urls([r.url for r in replicas])


def judge_over_urls(urls: list[str]) -> RouterJudge:
    """:func:`judge_over` from the replicas' URLs alone: what a Ray worker, holding no server handle, builds."""
    masked = [f"model-{i}" for i in range(1, len(CANDIDATES) + 1)]
    schema = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": verdict_schema(masked)}}
    # A retry waits a second (retry_after): by then the router has cooled the dead replica down, so
    # the retry goes to the live one rather than, by the luck of the shuffle, to the dead one again.
    # 300 s per attempt: a loaded two-core machine generates a few tokens a second.
    built = router_judge([f"{url}/v1" for url in urls], model=SERVED_NAME, num_retries=6, retry_after=1, timeout=300)
    return RouterJudge(built.router, built.model, max_tokens=200, response_format=schema)


def outcomes(tasks: list[asyncio.Task[Decision]]) -> list[str]:
    """What each decision task came to, for a failure message: still running, its fallbacks, or its exception."""
    told = []
    for task in tasks:
        if not task.done():
            told.append("running")
        elif task.exception() is not None:
            told.append(repr(task.exception()))
        else:
            told.append(repr([f.reason for f in task.result().fallbacks]))
    return told


async def until_in_flight(
    server: ServerProcess, tasks: list[asyncio.Task[Decision]], start: Callable[[], None], *, within_s: float
) -> int:
    """Wait until ``server`` holds a request it has not answered, so that the kill lands mid-run.

    The router picks a replica at random for each call: while none went to
    ``server``, ``start`` begins one more decision every few seconds.
    """
    deadline = time.monotonic() + within_s
    next_start = time.monotonic() + 5
    before = in_flight(server)  # taken before the batch's tasks first run: a refused request would offset it
    while time.monotonic() < deadline:
        running = in_flight(server) - before
        if running > 0:
            return running
        if time.monotonic() >= next_start:
            start()
            next_start = time.monotonic() + 5
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"replica B took no request within {within_s}s: the kill would not be mid-run; decisions: {outcomes(tasks)}"
    )


def failed_scores(decision: Decision) -> int:
    return sum(1 for c in decision.candidates if c.scores[POLICY.name].error is not None)


def assert_not_lost(decision: Decision) -> None:
    assert len(decision.candidates) == len(CANDIDATES)
    for candidate in decision.candidates:
        score = candidate.scores[POLICY.name]
        assert (score.score is not None) != (score.error is not None), score
        if score.error is not None:
            assert any(f.kind in ("judge_error", "fail_open") for f in decision.fallbacks), decision.fallbacks


#: Items in the Ray run: the router picks a replica at random per call, so with 20 calls both
#: replicas serve some of them but for a chance of 2 in 2**20 (about 1 run in 500,000; 10 items
#: failed 1 run in 500). A call takes 1-2 s; Ray's start-up dominates the run (~50 s).
RAY_ITEMS = 20


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")  # Ray Data's own settings: not ours
def test_a_ray_evaluation_judges_through_the_router_over_both_replicas(
    vllm_server: ServerProcess, replica_b: ServerProcess, tmp_path: Path, figures: Figures
) -> None:
    # Runs before the kill test (file order): both replicas are alive.
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ra-guard[ray]')")
    from ra_guard.evaluation.ray_run import evaluate_on_ray

    items = [EvalItem(key=f"q{i}", line=i + 1, prompt=PROMPT, candidates=list(CANDIDATES)) for i in range(RAY_ITEMS)]
    a_before, b_before = served_requests(vllm_server), served_requests(replica_b)
    # A factory, not a judge: each worker builds its own router (and its HTTP pools) from the URLs.
    factory = functools.partial(judge_over_urls, [vllm_server.url, replica_b.url])
    started = time.monotonic()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        summary = evaluate_on_ray(
            items, policies=[POLICY], judges={"router": factory}, out=tmp_path, actors=2, batch_size=2,
            concurrency=4, progress=False,
        )  # fmt: skip
    finally:
        ray.shutdown()
    figures.record("router.ray_evaluation_s", round(time.monotonic() - started, 2))

    assert (summary.total, summary.judged, summary.failed) == (RAY_ITEMS, RAY_ITEMS, 0), summary.errors
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["task"] for r in records) == sorted({r["task"] for r in records})
    assert {r["key"] for r in records} == {item.key for item in items}
    for record in records:
        assert record["ok"], record
        decision = Decision.model_validate(record["decision"])
        assert not decision.degraded and failed_scores(decision) == 0, decision.fallbacks
    assert summary.report is not None and summary.report.is_file()
    a_served, b_served = served_requests(vllm_server) - a_before, served_requests(replica_b) - b_before
    figures.record("router.ray_requests_per_replica", [a_served, b_served])
    assert a_served > 0, "the router in the Ray workers sent nothing to replica A"
    assert b_served > 0, "the router in the Ray workers sent nothing to replica B"
    assert a_served + b_served >= RAY_ITEMS


async def test_killing_a_replica_mid_run_loses_no_decision(
    vllm_server: ServerProcess, replica_b: ServerProcess, figures: Figures
) -> None:
    async with Guard(policies=[POLICY], judge=judge_over([vllm_server, replica_b])) as guard:
        await kill_a_replica_mid_run(guard, vllm_server, replica_b, figures)


async def kill_a_replica_mid_run(
    guard: Guard, vllm_server: ServerProcess, replica_b: ServerProcess, figures: Figures
) -> None:
    a_before, b_before = served_requests(vllm_server), served_requests(replica_b)

    # Both replicas take traffic while both live (the router shuffles at random: go on until each served one).
    # A round with a failed score (a cooled-down replica) does not count: the kill must meet a healthy router.
    warm: list[Decision] = []
    last_round: list[Decision] = []
    while len(warm) < 24 and not (
        served_requests(replica_b) > b_before and served_requests(vllm_server) > a_before and last_round
    ):
        last_round = list(await asyncio.gather(*(guard.arerank(PROMPT, CANDIDATES) for _ in range(4))))
        warm.extend(last_round)
        if any(failed_scores(d) for d in last_round):
            last_round = []
    assert served_requests(replica_b) > b_before, "the router sent nothing to replica B"
    assert served_requests(vllm_server) > a_before, "the router sent nothing to replica A"
    assert last_round, f"warm-up rounds kept failing: {[f.reason for d in warm for f in d.fallbacks]}"

    started = time.monotonic()
    tasks: list[asyncio.Task[Decision]] = []

    def start() -> None:
        tasks.append(asyncio.create_task(guard.arerank(PROMPT, CANDIDATES)))

    for _ in range(DECISIONS):
        start()
    running_on_b = await until_in_flight(replica_b, tasks, start, within_s=180)
    await asyncio.to_thread(replica_b.kill)
    killed_at = time.monotonic() - started
    a_at_kill = served_requests(vllm_server)
    decisions = await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
    figures.record("router.decisions_after_kill_s", round(time.monotonic() - started, 2))
    figures.record("router.killed_after_s", round(killed_at, 2))
    figures.record("router.requests_in_flight_on_killed_replica", running_on_b)

    assert not replica_b.alive()
    assert len(decisions) == len(tasks) >= DECISIONS
    for decision in [*warm, *decisions]:
        assert_not_lost(decision)
    failed = sum(failed_scores(d) for d in decisions)
    figures.record("router.failed_scores_after_kill", failed)
    # The router retried on A what B dropped: every decision judged, none through fail_open.
    assert failed == 0, [d.fallbacks for d in decisions if d.fallbacks]
    assert served_requests(vllm_server) > a_at_kill
