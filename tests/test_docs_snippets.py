"""Every ```python snippet of README.md and docs/*.md runs, for real, against loopback servers.

Snippets are found by reading the files, so a new one is tested as soon as it is
written: each is one test, named ``file#index:first line``. A snippet runs as
written except for the substitutions below, which are the whole of what this
test changes, and which must cover every URL in it (a snippet naming a host the
tables do not know fails, asking for a row):

- :data:`HOSTS`: each host of the docs (``http://gpu-box:8000``...) becomes one
  of the servers this module starts on 127.0.0.1: the OpenAI-compatible stub
  (``tests/support/openai_server.py``: chat completions for sampler and judge,
  ``/v1/models``, the reference ``rewardanything`` API), a second stub for the
  second server of a router, or a real Phoenix.
- :data:`PATHS`: files the docs put under system directories go to a temporary one.
- :func:`environment`: what the docs say comes from the environment:
  ``OPENAI_BASE_URL``/``OPENAI_API_BASE`` (both litellm and ``langchain-openai``
  read them, so ``litellm:gpt-4o-mini``, ``openai/gpt-4o-mini`` and
  ``ChatOpenAI(model="gpt-4o-mini")`` reach the stub under their own model
  names), ``OPENAI_API_KEY`` and ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (a loopback
  OTLP receiver).
- :data:`PRELUDES`: the names a snippet takes from the prose around it
  (``messages``, an agent's output, a tool, a chat model).
- :data:`CONTINUES`: a snippet that goes on from earlier ones of its file runs
  after them, in one namespace.

While a snippet runs, :func:`tests.support.loopback_only.loopback_only` refuses
(and records) any lookup or connection off loopback, so a missed substitution
cannot send traffic anywhere. :data:`CHECKS` then asserts what each snippet
promises its reader. The ``python -m ra_guard ...`` commands quoted anywhere in
the docs are checked to be real subcommands (their ``--help`` runs).
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ra_guard._sync import run_sync
from tests.observability.otlp_receiver import OtlpReceiver
from tests.observability.score_stub import ScoreStub
from tests.support.leaks import unclosed_after_collection
from tests.support.loopback_only import loopback_only
from tests.support.openai_server import OpenAIStubServer, RecordedRequest, _default_sample_text

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_URL = re.compile(r"\bhttps?://[^\s\"'`)\]>]+")

#: Host of the docs -> the loopback server that stands in for it.
HOSTS = {
    "http://gpu-box:8000": "stub",  # vLLM serving RewardAnything (README)
    "http://gpu:8000": "stub",  # the same (docs/observability.md)
    "http://gpu-1:8000": "stub",  # first vLLM server (docs/integrations.md)
    "http://gpu-2:8000": "stub-2",  # second vLLM server behind a router
    "http://host:8000": "stub",  # the reference `rewardanything serve`
    "http://localhost:6006": "phoenix",  # `phoenix serve`
    "http://localhost:4318": "otlp",  # Jaeger's OTLP/HTTP receiver (traces and logs)
    "https://api.smith.langchain.com": "scores",  # LangSmith's API
    "https://cloud.langfuse.com": "scores",  # Langfuse's API
}
#: Path of the docs -> name of a file in the test's temporary directory.
PATHS = {"/var/log/ra-guard/decisions.jsonl": "var-log-ra-guard/decisions.jsonl"}

_MESSAGES = 'messages = [{"role": "user", "content": "How do vaccines work?"}]\n'
#: File -> code run before each of its snippets: names the prose around them supplies.
PRELUDES = {
    "README.md": _MESSAGES + 'agent_output = "Vaccines train the immune system to recognise a germ."\n',
    "docs/integrations.md": _MESSAGES
    + (
        "from langchain_core.tools import tool\n"
        "from langchain_openai import ChatOpenAI\n"
        "@tool\n"
        "def get_weather(city: str) -> str:\n"
        '    """The weather in a city."""\n'
        '    return f"Sunny in {city}."\n'
        'model = ChatOpenAI(model="gpt-4o-mini", temperature=0.8)\n'
    ),
}
#: (file, index) -> indexes of earlier snippets of that file it goes on from.
CONTINUES: dict[tuple[str, int], tuple[int, ...]] = {
    ("README.md", 1): (0,),
    ("README.md", 2): (0,),
    ("README.md", 4): (0,),
    ("docs/integrations.md", 1): (0,),
    ("docs/integrations.md", 2): (0,),
    ("docs/integrations.md", 3): (0,),
    ("docs/integrations.md", 4): (0,),
    ("docs/integrations.md", 5): (0,),
    ("docs/integrations.md", 6): (0,),
    ("docs/observability.md", 1): (0,),
    ("docs/observability.md", 2): (0,),
    ("docs/observability.md", 3): (0,),
    ("docs/observability.md", 4): (0,),
    ("docs/observability.md", 5): (0,),
    ("docs/observability.md", 6): (0,),
}


def _json_on_retry(request: RecordedRequest, index: int) -> str:
    # The stub judge scores the `score=N` marker of an answer: prose first, JSON once the critique came back.
    if any(message.get("role") == "assistant" for message in request.messages):
        return "[2, 3, 5] score=5"
    return "The first three primes are 2, 3 and 5. score=2"


#: (file, index) -> what the stub samples for that snippet (default: ``answer i to: <prompt>``, judged 3/5).
SAMPLES = {("README.md", 2): _json_on_retry}


#: Snippets that leave sockets unclosed for the garbage collector: library defects, reported, not hidden.
KNOWN_LEAKS: dict[tuple[str, int], str] = {}


@dataclass(frozen=True)
class Snippet:
    """One ```python block: its file (relative to the root), index in the file, first line and code."""

    file: str
    index: int
    line: int
    source: str

    @property
    def id(self) -> str:
        first = next((line.strip() for line in self.source.splitlines() if line.strip()), "")
        return f"{self.file}#{self.index}:{first[:50]}"


def extract(path: Path) -> list[Snippet]:
    """The ```python blocks of a Markdown file, in order."""
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(ROOT).as_posix()
    return [
        Snippet(name, index, text.count("\n", 0, match.start(1)) + 1, match.group(1))
        for index, match in enumerate(_FENCE.finditer(text))
    ]


SNIPPETS = [snippet for path in DOC_FILES for snippet in extract(path)]
_BY_KEY = {(s.file, s.index): s for s in SNIPPETS}


@dataclass
class Loopback:
    """The servers standing in for the docs' hosts, and the temporary directory for :data:`PATHS`."""

    stub: OpenAIStubServer
    stub_2: OpenAIStubServer
    otlp: OtlpReceiver
    scores: ScoreStub
    tmp: Path
    phoenix_url: str | None = None

    def root_of(self, role: str) -> str:
        if role == "stub":
            return self.stub.root_url
        if role == "stub-2":
            return self.stub_2.root_url
        if role == "otlp":
            return self.otlp.endpoint.removesuffix("/v1/traces")
        if role == "scores":
            return self.scores.url
        assert self.phoenix_url is not None, "this snippet needs the Phoenix fixture"
        return self.phoenix_url

    def rewrite(self, snippet: Snippet) -> str:
        """The snippet with :data:`HOSTS` and :data:`PATHS` applied; fails on a URL they do not cover."""
        source = snippet.source
        for url in _URL.findall(source):
            assert any(url.startswith(host) for host in HOSTS), (
                f"{snippet.id}: {url} is not in HOSTS; add the loopback server that stands in for it"
            )
        for host, role in HOSTS.items():
            if host in source:
                source = source.replace(host, self.root_of(role))
        for path, name in PATHS.items():
            source = source.replace(path, str(self.tmp / name))
        otlp_root = self.otlp.endpoint.removesuffix("/v1/traces")
        loopback_roots = [self.stub.root_url, self.stub_2.root_url, otlp_root, self.scores.url, self.phoenix_url or "-"]
        for url in _URL.findall(source):
            assert any(url.startswith(root) for root in loopback_roots), f"{snippet.id}: {url} left unsubstituted"
        return source


def needs_phoenix(snippet: Snippet) -> bool:
    chain = [_BY_KEY[(snippet.file, i)] for i in CONTINUES.get((snippet.file, snippet.index), ())]
    return any("localhost:6006" in s.source for s in [*chain, snippet])


def marks_of(snippet: Snippet) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.slow] if needs_phoenix(snippet) else []
    if (snippet.file, snippet.index) in KNOWN_LEAKS:
        # Tolerated, and named in KNOWN_LEAKS: the leaked sockets surface whenever the collector runs.
        marks.append(pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"))
    return marks


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loopback]:
    with (
        OpenAIStubServer(models=["WisdomShell/RewardAnything-8B-v1"]) as stub,
        OpenAIStubServer(models=["WisdomShell/RewardAnything-8B-v1"]) as stub_2,
        ScoreStub() as scores,
        pytest.MonkeyPatch.context() as env,
    ):
        otlp = OtlpReceiver()
        otlp.start()
        env.setenv("OPENAI_BASE_URL", stub.base_url)
        env.setenv("OPENAI_API_BASE", stub.base_url)
        env.setenv("OPENAI_API_KEY", "docs-snippet-test-key")
        env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp.endpoint)
        try:
            yield Loopback(stub=stub, stub_2=stub_2, otlp=otlp, scores=scores, tmp=tmp_path_factory.mktemp("docs"))
        finally:
            otlp.stop()


@pytest.fixture(scope="module")
def phoenix_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.observability.phoenix_server import phoenix_venv, start_phoenix

    venv, _ = phoenix_venv()
    server = start_phoenix(tmp_path_factory.mktemp("phoenix"), venv=venv)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def global_tracer_provider() -> Iterator[None]:
    """Put back OpenTelemetry's global tracer provider that a snippet sets (it may be set only once)."""
    from opentelemetry import trace

    saved = trace._TRACER_PROVIDER
    done = trace._TRACER_PROVIDER_SET_ONCE._done
    yield
    trace._TRACER_PROVIDER = saved
    trace._TRACER_PROVIDER_SET_ONCE._done = done


def run_snippet(snippet: Snippet, source: str, namespace: dict[str, Any]) -> str:
    """Execute one snippet (top-level ``await`` allowed) in ``namespace``; return what it printed."""
    code = compile(
        source, f"{snippet.file} snippet {snippet.index} (line {snippet.line})", "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    )  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            # On ra-guard's own loop: langchain-openai caches one async HTTP client per process, and a
            # ChatModelSampler on ra-guard's loop then fails ("bound to a different event loop") once the
            # user's loop has used it first (reported as an integration defect).
            run_sync(result)
    return out.getvalue()


def close_everything(namespace: dict[str, Any]) -> None:
    """Stop what snippets leave running (tracer providers' export threads, guards' pools, audit logs)."""
    from opentelemetry.sdk.trace import TracerProvider

    from ra_guard import Guard

    for value in {id(v): v for v in namespace.values()}.values():
        if isinstance(value, TracerProvider):
            value.shutdown()
        elif isinstance(value, Guard):
            value.close()


@pytest.mark.parametrize(
    "snippet",
    [
        pytest.param(s, id=s.id, marks=marks_of(s))
        for s in SNIPPETS
    ],
)  # fmt: skip
@pytest.mark.usefixtures("global_tracer_provider")
def test_snippet_runs(snippet: Snippet, loopback: Loopback, request: pytest.FixtureRequest) -> None:
    if needs_phoenix(snippet):
        loopback.phoenix_url = request.getfixturevalue("phoenix_url")
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    chain = [_BY_KEY[(snippet.file, i)] for i in CONTINUES.get((snippet.file, snippet.index), ())]
    loopback.stub.reset()
    loopback.stub_2.reset()
    loopback.stub.sample_text = _default_sample_text
    # Garbage an earlier test left is collected now, so that what is found below is this snippet's.
    unclosed_after_collection()
    # Guards a snippet rebinds stay referenced until the end: a dropped litellm-backed guard closes
    # litellm's per-loop clients from a finalizer, racing the next guard's calls (reported as a defect).
    kept: list[Any] = []
    with loopback_only() as refused:
        try:
            for earlier in [*chain, snippet]:
                kept += [value for value in namespace.values() if value.__class__.__name__ == "Guard"]
                if earlier.file in PRELUDES:
                    exec(PRELUDES[earlier.file], namespace)
                if earlier is snippet:
                    loopback.stub.reset()
                    loopback.stub_2.reset()
                    loopback.stub.sample_text = SAMPLES.get((snippet.file, snippet.index), _default_sample_text)
                printed = run_snippet(earlier, loopback.rewrite(earlier), namespace)
            check = CHECKS.get((snippet.file, snippet.index))
            if check is not None:
                check(namespace, printed, loopback)
        finally:
            close_everything({**{str(i): guard for i, guard in enumerate(kept)}, **namespace})
    kept.clear()
    namespace.clear()
    leaks = unclosed_after_collection()
    assert refused == [], f"{snippet.id} tried to leave loopback: {refused}"
    if (snippet.file, snippet.index) in KNOWN_LEAKS:
        request.node.user_properties.append(("known_leak", leaks))
    else:
        assert leaks == [], f"{snippet.id} left connections open: {leaks}"


def test_every_snippet_is_found() -> None:
    # The counts of the docs as of this test: a fence the pattern misses would silently go untested.
    counts = {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8").count("```python") for path in DOC_FILES
    }
    assert {name: n for name, n in counts.items() if n} == {
        name: len([s for s in SNIPPETS if s.file == name]) for name in {s.file for s in SNIPPETS}
    }
    assert len(SNIPPETS) >= 16


def test_checks_and_continuations_name_real_snippets() -> None:
    # A snippet removed or renumbered must not leave a check or a continuation pointing at another one.
    for key in [*CHECKS, *CONTINUES]:
        assert key in _BY_KEY, f"{key} names no snippet"
    for (file, index), earlier in CONTINUES.items():
        assert all(i < index for i in earlier), (file, index)


_CLI = re.compile(r"python -m ra_guard ([a-z][a-z-]*)")


@pytest.mark.parametrize(
    "command",
    sorted({m for path in DOC_FILES for m in _CLI.findall(path.read_text(encoding="utf-8"))}),
)
def test_cli_commands_in_the_docs_exist(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ra_guard", command, "--help"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"ra_guard {command}" in result.stdout or command in result.stdout


# -- what each snippet promises ------------------------------------------------------------------

Check = Callable[[dict[str, Any], str, Loopback], None]


def _kinds(server: OpenAIStubServer) -> list[str]:
    return [r.kind for r in server.requests]


def _readme_quickstart(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    decision = ns["decision"]
    assert decision.text == decision.candidates[decision.chosen_index].text
    assert len(decision.candidates) == 4
    assert decision.why and decision.why in printed
    sampled = [r for r in lb.stub.requests if r.kind == "sampler"]
    assert sampled and {r.body["model"] for r in sampled} == {"gpt-4o-mini"}
    assert _kinds(lb.stub).count("judge") == 3  # one listwise call per policy


def _readme_check(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    decision = ns["decision"]  # the last line: rerank given drafts, no sampling
    assert decision.strategy == "rerank"
    assert [c.text for c in decision.candidates] == ["draft A", "draft B", "draft C"]


def _readme_retry(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    decision = ns["decision"]
    assert (decision.attempts, decision.text, decision.passed) == (2, "[2, 3, 5] score=5", True)
    retry = [r for r in lb.stub.requests if r.kind == "sampler"][1]
    assert "valid-json-only" in retry.messages[-1]["content"]  # the judge's critique went back


def _readme_function_judge(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    from ra_guard import Guard

    decision = Guard(policies=["concise"], judge=ns["judge"]).rerank("Ask nicely", ["no", "yes please"])
    assert decision.text == "yes please"


def _readme_deployment(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    decision = ns["guard"].run("How do vaccines work?")
    assert decision.passed
    # "The served model name is discovered from /v1/models"
    judged = [r for r in lb.stub.requests if r.kind == "judge"]
    assert "models" in _kinds(lb.stub) and {r.body["model"] for r in judged} == {"WisdomShell/RewardAnything-8B-v1"}


def _integrations_guard(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    decision = ns["guard"].rerank("How do vaccines work?", ["short", "a longer answer"])
    assert decision.policies == ["concise", "professional-tone"]


def _integrations_agent(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    decision = ns["decision"]
    assert decision is not None and len(decision.candidates) == 4
    assert decision.why in printed and ns["answer"].content == decision.text
    sampled = [r for r in lb.stub.requests if r.kind == "sampler"]
    assert len(sampled) == 4 and all(r.body.get("tools") for r in sampled)  # the agent's tools were bound


def _integrations_chain(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    assert "What is a reward model?" in ns["chain"].invoke({"question": "What is a reward model?"})
    assert printed  # the stream yielded the chosen answer


def _integrations_chat_models(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    assert len(ns["decision"].candidates) == 4
    judged = [r for r in lb.stub.requests if r.kind == "judge"]
    assert len(judged) == 1 and judged[0].body["temperature"] == 0


def _integrations_completion(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    response = ns["response"]
    decision = response._hidden_params["ra_guard_decision"]
    assert response.choices[0].message.content == decision.text
    assert response.ra_guard["why"] == decision.why
    assert len([r for r in lb.stub.requests if r.kind == "sampler"]) == 4


def _integrations_usage_and_cost(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    import litellm

    response, out, usage = ns["response"], ns["out"], ns["usage"]
    decision = response._hidden_params["ra_guard_decision"]
    assert response.usage.total_tokens == decision.total_usage.total_tokens
    # the dollars are the four candidate calls at gpt-4o-mini's price; the HTTP judge is named, not priced
    sampled = decision.sampling_usage
    candidates = sum(litellm.cost_per_token("gpt-4o-mini", sampled.prompt_tokens, sampled.completion_tokens))
    assert response._hidden_params["response_cost"] == pytest.approx(candidates)
    assert 0 < response._hidden_params["ra_guard_winner_cost"] < candidates / 3
    assert response.ra_guard["judge_cost"] is None and "openai-compat" in response.ra_guard["cost_unpriced"][0]
    # LangChain: the callback counted the four candidates; the HTTP judge only the decision knows
    counted = sum(u["total_tokens"] for u in usage.usage_metadata.values())
    assert counted == out["decision"].sampling_usage.total_tokens
    assert out["decision"].judge_usage.total_tokens > 0
    assert out["output"].usage_metadata["total_tokens"] == out["decision"].chosen.usage.total_tokens


def _integrations_router(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    for _ in range(4):
        ns["guard"].rerank("Summarise this ticket", ["draft A", "draft B"])
    judged = _kinds(lb.stub).count("judge") + _kinds(lb.stub_2).count("judge")
    assert judged == 4


def _observability_quickstart(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    # "OTEL_EXPORTER_OTLP_* env vars apply" and the guard "uses the global provider".
    before = len(lb.otlp.spans)
    decision = ns["guard"].rerank("Summarise this ticket", ["draft A", "draft B"])
    assert ns["provider"].force_flush()
    roots = [s for s in lb.otlp.spans[before:] if s.name.startswith("invoke_workflow")]
    assert [s.trace_id for s in roots] == [decision.trace_id]
    assert roots[0].resource["service.name"] == "faq-bot"


def _observability_phoenix(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    trace_id = ns["decision"].trace_id
    deadline = time.monotonic() + 60
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(spans) < 2:
        try:
            answer = httpx.get(f"{lb.phoenix_url}/v1/projects/faq-bot/spans", params={"trace_id": trace_id}, timeout=10)
        except httpx.TransportError:  # Phoenix busy ingesting: not yet, the deadline decides
            answer = None
        spans = answer.json()["data"] if answer is not None and answer.status_code == 200 else []
        time.sleep(0.5)
    assert {s["span_kind"] for s in spans} == {"CHAIN", "EVALUATOR"}
    assert ns["annotator"].dropped == 0


def _observability_langsmith(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    feedback = [body for path, body in lb.scores.posts if path.endswith("/feedback")]
    # Two candidates x (the policy + ra_guard.choice), and the outcome: sent before close() returned.
    assert len(feedback) == 5 and ns["feedback"].sent == 5 and ns["feedback"].dropped == 0
    assert {b["key"] for b in feedback} == {"concise", "ra_guard.choice", "ra_guard.outcome"}


def _observability_langfuse(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    sent = [body for path, body in lb.scores.posts if "langfuse" not in path and "scores" in path]
    assert sent, [path for path, _ in lb.scores.posts]


def _observability_log_events(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    events = [(name, attrs) for name, _, attrs in lb.otlp.logs if name == "gen_ai.evaluation.result"]
    assert {attrs["gen_ai.evaluation.name"] for _, attrs in events} >= {"concise"}


def _observability_jaeger(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    # The receiver stands in for Jaeger; the first snippet's exporter (by environment) sends there too.
    before = len(lb.otlp.spans)
    decision = ns["guard"].rerank("Summarise this ticket", ["draft A", "draft B"])
    assert ns["provider"].force_flush()
    roots = [s for s in lb.otlp.spans[before:] if s.name.startswith("invoke_workflow")]
    assert [s.trace_id for s in roots] == [decision.trace_id] * 2


def _observability_audit(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    records = list(ns["records"])
    assert [r["decision_id"] for r in records] == [ns["decision"].decision_id]
    assert ns["records"].skipped == 0


def _integrations_openai_agents(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    result = ns["result"]
    info = result.output_guardrail_results[0].output.output_info
    assert info["passed"] is True and set(info["scores"]) == {"harmless"} and info["degraded"] is False
    assert printed.splitlines()[0] == result.final_output
    sampled = [r for r in lb.stub.requests if r.kind == "sampler"]
    assert len(sampled) == 4 and {r.body["model"] for r in sampled} == {"gpt-4o-mini"}
    assert _kinds(lb.stub).count("judge") == 3  # concise and professional-tone on the 4, then harmless on the winner


def _integrations_pydantic_ai(ns: dict[str, Any], printed: str, lb: Loopback) -> None:
    # The validator's run: one answer, judged on both policies; then best-of-4: four answers, judged listwise.
    assert "'passed': True" in printed.splitlines()[1]
    summary = ns["result"].response.metadata["ra_guard"]
    assert summary["candidates"] == 4 and summary["strategy"] == "best_of_n"
    sampled = [r for r in lb.stub.requests if r.kind == "sampler"]
    assert len(sampled) == 5 and {r.body["model"] for r in sampled} == {"gpt-4o-mini"}
    assert _kinds(lb.stub).count("judge") == 4


CHECKS: dict[tuple[str, int], Check] = {
    ("README.md", 0): _readme_quickstart,
    ("README.md", 1): _readme_check,
    ("README.md", 2): _readme_retry,
    ("README.md", 3): _readme_function_judge,
    ("README.md", 4): _readme_deployment,
    ("docs/integrations.md", 0): _integrations_guard,
    ("docs/integrations.md", 1): _integrations_agent,
    ("docs/integrations.md", 2): _integrations_chain,
    ("docs/integrations.md", 3): _integrations_chat_models,
    ("docs/integrations.md", 4): _integrations_completion,
    ("docs/integrations.md", 5): _integrations_router,
    ("docs/integrations.md", 6): _integrations_usage_and_cost,
    ("docs/integrations.md", 7): _integrations_openai_agents,
    ("docs/integrations.md", 8): _integrations_pydantic_ai,
    ("docs/observability.md", 0): _observability_quickstart,
    ("docs/observability.md", 1): _observability_phoenix,
    ("docs/observability.md", 2): _observability_langsmith,
    ("docs/observability.md", 3): _observability_langfuse,
    ("docs/observability.md", 4): _observability_jaeger,
    ("docs/observability.md", 5): _observability_log_events,
    ("docs/observability.md", 6): _observability_audit,
}


def test_a_host_missing_from_the_table_fails_before_anything_runs(loopback: Loopback) -> None:
    unknown = Snippet("docs/new.md", 0, 1, 'guard = Guard(judge="openai-compat:http://new-gpu:8000/v1")\n')
    with pytest.raises(AssertionError, match="http://new-gpu:8000/v1 is not in HOSTS"):
        loopback.rewrite(unknown)
    known = Snippet("docs/new.md", 1, 1, 'judge = "openai-compat:http://gpu-box:8000/v1"\n')
    assert loopback.rewrite(known) == f'judge = "openai-compat:{loopback.stub.root_url}/v1"\n'


def test_the_loopback_guard_refuses_lookups_and_connections_off_loopback(loopback: Loopback) -> None:
    import socket

    with loopback_only() as refused:
        with pytest.raises(ConnectionRefusedError):
            socket.getaddrinfo("gpu-box", 8000)
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.connect(("10.255.255.1", 8000))  # refused before a packet leaves
        assert httpx.get(f"{loopback.stub.base_url}/models").status_code == 200
    assert refused == ["getaddrinfo gpu-box", "connect ('10.255.255.1', 8000)"]
