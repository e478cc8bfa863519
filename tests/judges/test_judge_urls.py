"""Judge URLs: checked when the judge is built, and credentials never shown (names, errors, logs)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ra_guard._redact import redact_secrets
from ra_guard.exceptions import ConfigurationError, JudgeError
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.openai_compat import OpenAICompatJudge
from ra_guard.judges.rewardanything_server import RewardAnythingServerJudge
from tests.support.openai_server import Fault, OpenAIStubServer

REQUEST = JudgeRequest(principle="p", prompt="q", responses={"a": "x score=4", "b": "y score=2"})
SECRET = "pl4nted-s3cret"
QUERY_SECRET = "qu3ry-s3cret"


@pytest.fixture
def every_log_line() -> Iterator[list[logging.LogRecord]]:
    """Every record any logger emits, at DEBUG (httpx logs request URLs at INFO)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler, level = Keep(level=logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _secret_url(server: OpenAIStubServer, root: bool = False) -> str:
    base = server.root_url if root else server.base_url
    return base.replace("http://", f"http://alice:{SECRET}@") + f"?api_key={QUERY_SECRET}&sig={QUERY_SECRET}"


def _assert_clean(*texts: Any) -> None:
    for text in texts:
        assert SECRET not in str(text) and QUERY_SECRET not in str(text), text


@pytest.mark.parametrize("kind", ["openai-compat", "rewardanything"])
async def test_credentials_are_sent_but_never_shown(
    openai_server: OpenAIStubServer, every_log_line: list[logging.LogRecord], kind: str
) -> None:
    judge: OpenAICompatJudge | RewardAnythingServerJudge
    if kind == "openai-compat":
        judge = OpenAICompatJudge(_secret_url(openai_server), model="ra-stub", max_retries=1)
    else:
        judge = RewardAnythingServerJudge(_secret_url(openai_server, root=True), max_retries=1)
    openai_server.script(Fault.error(500), Fault.error(500))  # one retried failure: an exception to read
    try:
        with pytest.raises(JudgeError) as caught:
            await judge.ajudge(REQUEST)
        verdict = await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()

    assert verdict.best == "a"
    sent = openai_server.requests[-1]
    assert sent.headers["authorization"].startswith("Basic ")  # the userinfo, as HTTP basic auth
    assert f"api_key={QUERY_SECRET}" in sent.query  # query parameters still reach the server
    assert len(every_log_line) > 0
    _assert_clean(repr(judge), judge.name, str(caught.value), caught.value.judge, judge.base_url)
    _assert_clean(*(record.getMessage() for record in every_log_line))


def test_userinfo_and_api_key_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="give the credentials once") as caught:
        OpenAICompatJudge(f"http://alice:{SECRET}@gpu:8000/v1", api_key="k")
    _assert_clean(str(caught.value))


@pytest.mark.parametrize(
    ("spec", "fix"),
    [
        ("openai-compat:localhost:8000", "'openai-compat:http://localhost:8000/v1'"),
        ("vllm:gpu-1:8000/v1", "'openai-compat:http://gpu-1:8000/v1'"),
        ("openai-compat:ftp://gpu-1/v1", "'openai-compat:http://gpu-1/v1'"),
        ("openai-compat:http:///v1", "'openai-compat:http://localhost:8000/v1'"),
        ("rewardanything:localhost:8000", "'rewardanything:http://localhost:8000'"),
    ],
)
def test_bad_urls_are_refused_when_the_judge_is_built(spec: str, fix: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_judge(spec)
    message = str(caught.value)
    assert message.startswith(f"judge {spec!r}: ")
    assert fix in message


def test_a_bad_url_with_credentials_is_refused_without_showing_them() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_judge(f"openai-compat:alice:{SECRET}@gpu:8000/v1?token={QUERY_SECRET}")
    _assert_clean(str(caught.value))


@pytest.mark.parametrize(
    "noise", ["a" * 160_000, "a:" * 80_000, ("a" * 300 + ":") * 520, "a:b@" * 40_000, ("://" + "a" * 511) * 300]
)
def test_url_redaction_stays_linear_on_adversarial_text(noise: str) -> None:
    # Error bodies and log lines are untrusted: redaction must not freeze the loop on crafted text.
    started = time.perf_counter()
    redact_secrets(noise)
    assert time.perf_counter() - started < 1.0  # a quadratic scan of 160 KB takes minutes


def test_url_redaction_blanks_every_form() -> None:
    # One redactor serves judge errors, log lines and traces alike (ra_guard._redact.redact_secrets).
    text = "POST http://bob:pw1@h:1/v1/x?api_key=k1&n=2&sig=s1 spec openai-compat:bob:pw2@h:1/v1?token=t1&x_api_key=k2"
    assert redact_secrets(text) == (
        "POST http://[REDACTED]@h:1/v1/x?api_key=[REDACTED]&n=2&sig=[REDACTED] "
        "spec openai-compat:bob:[REDACTED]@h:1/v1?token=[REDACTED]&x_api_key=[REDACTED]"
    )


def test_the_judges_url_redaction_is_the_package_redactor() -> None:
    from ra_guard.judges import _url

    # One implementation, not a drifting copy: no second redactor under the judges.
    assert not [name for name in vars(_url) if name.startswith("redact") and name != "redact_secrets"]
