"""Two vLLM replicas behind the litellm ``Router`` judge; one is killed mid-run and no decision is lost.

Replica A is the session's vLLM server; replica B is started here and killed
(SIGKILL of its process group, as an OOM kill or a crash would) while decisions
are in flight. Every decision must come back: the calls that hit B are retried
on A by the router, or, where a call still fails, the failure is on the decision
(``fallbacks``), never a lost decision or an exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ra_guard import Guard, Policy
from ra_guard.decision import Decision
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
    server = start_vllm(smollm2_dir, served_name=SERVED_NAME, log_dir=server_logs)
    yield server
    server.stop()


def served_requests(server: ServerProcess) -> int:
    return server.log_tail(10**9).count("POST /v1/chat/completions")


def judge_over(replicas: list[ServerProcess]) -> RouterJudge:
    """A router judge over the replicas; a JSON schema keeps SmolLM2 (not a trained judge) in the verdict format."""
    masked = [f"model-{i}" for i in range(1, len(CANDIDATES) + 1)]
    schema = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": verdict_schema(masked)}}
    built = router_judge(
        [f"{r.url}/v1" for r in replicas], model=SERVED_NAME, num_retries=3, retry_after=0, timeout=120
    )
    return RouterJudge(built.router, built.model, max_tokens=200, response_format=schema)


async def running_requests(server: ServerProcess, *, within_s: float) -> float:
    """Wait until vLLM reports requests running (its Prometheus gauge), so that the kill lands mid-run."""
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        while time.monotonic() < deadline:
            metrics = (await client.get("/metrics")).text
            running = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("vllm:num_requests_running")
            )
            if running > 0:
                return running
            await asyncio.sleep(0.05)
    raise AssertionError(f"replica B ran no request within {within_s}s: the kill would not be mid-run")


def assert_not_lost(decision: Decision) -> None:
    assert len(decision.candidates) == len(CANDIDATES)
    for candidate in decision.candidates:
        score = candidate.scores[POLICY.name]
        assert (score.score is not None) != (score.error is not None), score
        if score.error is not None:
            assert any(f.kind in ("judge_error", "fail_open") for f in decision.fallbacks), decision.fallbacks


async def test_killing_a_replica_mid_run_loses_no_decision(
    vllm_server: ServerProcess, replica_b: ServerProcess, figures: Figures
) -> None:
    guard = Guard(policies=[POLICY], judge=judge_over([vllm_server, replica_b]))
    a_before, b_before = served_requests(vllm_server), served_requests(replica_b)

    # Both replicas take traffic while both live (the router shuffles at random: go on until each served one).
    warm: list[Decision] = []
    while len(warm) < 16 and not (served_requests(replica_b) > b_before and served_requests(vllm_server) > a_before):
        warm.extend(await asyncio.gather(*(guard.arerank(PROMPT, CANDIDATES) for _ in range(4))))
    assert served_requests(replica_b) > b_before, "the router sent nothing to replica B"
    assert served_requests(vllm_server) > a_before, "the router sent nothing to replica A"

    started = time.monotonic()
    tasks = [asyncio.create_task(guard.arerank(PROMPT, CANDIDATES)) for _ in range(DECISIONS)]
    in_flight = await running_requests(replica_b, within_s=60)
    await asyncio.to_thread(replica_b.kill)
    killed_at = time.monotonic() - started
    a_at_kill = served_requests(vllm_server)
    decisions = await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
    figures.record("router.decisions_after_kill_s", round(time.monotonic() - started, 2))
    figures.record("router.killed_after_s", round(killed_at, 2))
    figures.record("router.requests_running_on_killed_replica", in_flight)

    assert not replica_b.alive()
    assert len(decisions) == DECISIONS
    for decision in [*warm, *decisions]:
        assert_not_lost(decision)
    failed = sum(1 for d in decisions for c in d.candidates if c.scores[POLICY.name].error is not None)
    figures.record("router.failed_scores_after_kill", failed)
    # The router retried on A what B dropped: every decision judged, none through fail_open.
    assert failed == 0, [d.fallbacks for d in decisions if d.fallbacks]
    assert served_requests(vllm_server) > a_at_kill
