"""``redact_secrets``: what it catches, and that it stays linear on adversarial text."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ra_guard._redact import ContentFilter, redact_capped, redact_secrets

SECRET = "hunter2SECRETvalue"

URLS = {
    "userinfo": f"http://bob:{SECRET}@gpu-1:8000/v1",
    "token_only_userinfo": f"https://{SECRET}@github.com/org/repo.git",
    "api_key_param": f"http://gpu/v1?api_key={SECRET}",
    "key_param": f"https://maps.example/v1?alt=json&key={SECRET}",
    "token_param": f"http://gpu/v1?token={SECRET}&x=1",
    "access_token_param": f"http://gpu/v1?access_token={SECRET}",
    "sig_param": f"https://bucket.example/obj?sv=2024&sig={SECRET}",
    "signature_param": f"https://s3.example/obj?X-Amz-Signature={SECRET}",
    "password_param": f"http://gpu/v1?user=bob&password={SECRET}",
    "in_a_message": f"Connection refused: openai-compat:http://u:{SECRET}@10.0.0.7:8000/v1 (retried 3 times)",
}


@pytest.mark.parametrize("text", URLS.values(), ids=URLS.keys())
def test_credentials_in_urls_are_redacted(text: str) -> None:
    redacted = redact_secrets(text)
    assert SECRET not in redacted
    assert "[REDACTED]" in redacted


def test_the_rest_of_a_url_is_kept() -> None:
    assert redact_secrets(f"http://bob:{SECRET}@gpu-1:8000/v1?alt=json&sig={SECRET}#top") == (
        "http://[REDACTED]@gpu-1:8000/v1?alt=json&sig=[REDACTED]#top"
    )
    assert redact_secrets("mail bob@example.com, see http://example.com/a@b") == (
        "mail bob@example.com, see http://example.com/a@b"
    )


ADVERSARIAL = {
    "dotted": "a.",
    "at_signs": "@",
    "equals": "=",
    "key_equals": "api_key=",
    "digits": "7",
    "base64": "QUJD+/=",
    "scheme_chars": "a+",
    "dashed_jwt_starts": "-eyJ",
    "schemes": "http://a:b",
    "bearers": "bearer ",
    "query_keys": "?key",
    "colons": "x:",
}


@pytest.mark.parametrize("unit", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_text_is_redacted_in_linear_time(unit: str) -> None:
    text = unit * (400_000 // len(unit))
    started = time.perf_counter()
    redact_secrets(text)
    # Loose: quadratic patterns take minutes on 400 KB (40 KB of "a.a." took 5.8 s); linear ones milliseconds.
    assert time.perf_counter() - started < 2.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", ".", "@", "=", ":", "/", "-", "_", "sk", "eyJ", "key", "?", "&", " ", "9"]), max_size=12
    )
)
def test_repeated_fragments_stay_linear(fragments: list[str]) -> None:
    unit = "".join(fragments) or "a."
    text = unit * (100_000 // len(unit) + 1)
    started = time.perf_counter()
    redact_secrets(text)
    assert time.perf_counter() - started < 1.0


def test_content_is_capped_before_it_is_redacted() -> None:
    seen: list[int] = []

    def hook(text: str) -> str:
        seen.append(len(text))
        return text

    huge = "a." * 5_000_000
    cleaned = ContentFilter(redact=hook, max_length=100)(huge)
    assert seen and seen[0] <= 100 + 256  # the hook (and redaction) saw a capped text, not 10 MB
    assert cleaned.startswith("a.a.") and cleaned.endswith(f"[truncated {len(huge) - 100} chars]")


def test_a_key_straddling_the_cap_is_still_redacted() -> None:
    text = "x" * 94 + " sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    capped = redact_capped(text, 100)
    assert "abcdefghij" not in capped and "sk-pr" not in capped
