"""Long inputs and errors of the local judge: truncation strategies, bad models, OOM, missing deps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ra_guard.exceptions import (
    ConfigurationError,
    JudgeError,
    JudgeInputTooLongError,
    MissingDependencyError,
)
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import JudgeRequest
from ra_guard.local import LocalJudge, LocalModelError, LocalOutOfMemoryError
from ra_guard.local._truncation import TRUNCATION_MARK
from tests.local.scripted import ModelWrapper

torch = pytest.importorskip("torch")

LONG = " ".join(f"word{i} and more words about Paris" for i in range(300))
REQUEST = JudgeRequest(
    principle="Be brief.",
    prompt="Capital of France?",
    responses={"short": "Paris.", "long": LONG, "medium": LONG[:400]},
)
SMALL = JudgeRequest(principle="Be brief.", prompt="Capital of France?", responses={"a": "Paris.", "b": "Lyon."})


def test_the_generation_prompt_is_never_cut(tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded
    judge = LocalJudge.from_model(model, tokenizer, mode="fast", context_length=700)
    job = judge.inputs.prepare(REQUEST)
    text = tokenizer.decode(job.ids)
    assert text.endswith('<|im_start|>assistant\n<think>\n\n</think>\n\n{"scores": {"model-1": ')
    assert len(job.ids) <= 700 - judge.inputs.reserved(job.rendered)


def test_shorten_cuts_the_longest_candidates_and_says_so(tiny_model_path: Path) -> None:
    judge = LocalJudge(tiny_model_path, mode="fast", context_length=900, min_digit_mass=0.0)
    verdict = judge.judge(REQUEST)
    notes = [r for r in verdict.repairs if r.startswith("input_truncated")]
    assert any(n.startswith("input_truncated: long ") for n in notes)
    assert not any("short " in n for n in notes)
    assert set(verdict.scores) == set(REQUEST.responses)
    assert verdict.usage.prompt_tokens <= 900
    user = json.loads(judge.inputs.prepare(REQUEST).rendered.messages[1]["content"])
    assert any(text.endswith(TRUNCATION_MARK) for text in user["responses"].values())
    assert "Paris." in user["responses"].values()


def test_raise_names_the_sizes(tiny_model_path: Path) -> None:
    judge = LocalJudge(tiny_model_path, mode="reasoning", max_new_tokens=100, context_length=900, on_too_long="raise")
    with pytest.raises(JudgeInputTooLongError) as info:
        judge.judge(REQUEST)
    err = info.value
    assert err.input_tokens > err.max_input_tokens == 800
    assert "long:" in str(err) and "on_too_long='shorten'" in str(err)


def test_shorten_raises_when_the_prompt_alone_is_too_long(tiny_model_path: Path) -> None:
    judge = LocalJudge(tiny_model_path, mode="fast", context_length=600)
    with pytest.raises(JudgeInputTooLongError):
        judge.judge(JudgeRequest(principle="p", prompt=LONG, responses={"a": "x", "b": "y"}))


def test_missing_directory_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match="no such directory") as info:
        LocalJudge(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    assert isinstance(info.value, ConfigurationError)


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(LocalModelError, match=r"no config\.json"):
        resolve_judge(f"local:{tmp_path}")


def test_uncached_hub_id_fails_offline(tiny_model_path: Path) -> None:  # the fixture sets HF_HUB_OFFLINE
    pytest.importorskip("transformers")
    with pytest.raises(LocalModelError, match="ra-guard-tests/no-such-model"):
        LocalJudge("ra-guard-tests/no-such-model")


def test_encoder_architecture_is_refused(tmp_path: Path, tiny_model_path: Path) -> None:
    from transformers import BertConfig

    BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        architectures=["BertForMaskedLM"],
    ).save_pretrained(tmp_path)
    with pytest.raises(LocalModelError, match="not a decoder-only causal language model"):
        LocalJudge(tmp_path)


def test_model_without_chat_template_is_refused(tmp_path: Path, tiny_model_path: Path) -> None:
    from transformers import AutoTokenizer, GPT2Config

    GPT2Config(n_embd=32, n_layer=1, n_head=2, architectures=["GPT2LMHeadModel"]).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(LocalModelError, match="no chat template"):
        LocalJudge(tmp_path)


class OutOfMemoryWhenBatched(ModelWrapper):
    """A test-only wrapper: raises torch.OutOfMemoryError for batches above ``limit`` rows."""

    def __init__(self, inner: Any, limit: int) -> None:
        super().__init__(inner)
        self.limit = limit
        self.seen: list[int] = []

    def before(self, input_ids: Any) -> None:
        self.seen.append(input_ids.shape[0])
        if input_ids.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_is_a_typed_error_saying_what_to_reduce(tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded
    judge = LocalJudge.from_model(OutOfMemoryWhenBatched(model, limit=0), tokenizer, mode="fast", min_digit_mass=0.0)
    with pytest.raises(LocalOutOfMemoryError, match="max_new_tokens") as info:
        judge.judge(SMALL)
    assert isinstance(info.value, JudgeError) and info.value.retryable
    assert "max_batch_size" in str(info.value)


async def test_out_of_memory_splits_the_batch(tiny_loaded: Any) -> None:
    import asyncio

    model, tokenizer = tiny_loaded
    wrapper = OutOfMemoryWhenBatched(model, limit=1)
    judge = LocalJudge.from_model(wrapper, tokenizer, mode="fast", max_wait_ms=200, min_digit_mass=0.0)
    verdicts = await asyncio.gather(*(judge.ajudge(SMALL) for _ in range(4)))
    assert judge.batch_sizes == [4]
    assert 4 in wrapper.seen and 2 in wrapper.seen
    assert all(v.scores == verdicts[0].scores for v in verdicts)


def test_other_model_failures_become_judge_errors(tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded

    class Broken(OutOfMemoryWhenBatched):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("device-side assert triggered")

    judge = LocalJudge.from_model(Broken(model, limit=0), tokenizer, mode="fast")
    with pytest.raises(JudgeError, match="device-side assert"):
        judge.judge(SMALL)


def test_fast_mode_needs_single_token_digits(tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded

    class Merged:
        chat_template = tokenizer.chat_template
        pad_token_id = tokenizer.pad_token_id
        eos_token_id = tokenizer.eos_token_id

        def __call__(self, text: str, **kwargs: Any) -> dict[str, list[int]]:
            return {"input_ids": [1, 2] if text == "3" else tokenizer(text, add_special_tokens=False)["input_ids"]}

        def apply_chat_template(self, *args: Any, **kwargs: Any) -> Any:
            return tokenizer.apply_chat_template(*args, **kwargs)

    with pytest.raises(LocalModelError, match="'3' is not a single token"):
        LocalJudge.from_model(model, Merged(), mode="fast")


def test_bad_options_are_configuration_errors(tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded
    for options in ({"mode": "quick"}, {"on_too_long": "cut"}, {"permutations": 0}, {"max_new_tokens": 0}):
        with pytest.raises(ConfigurationError):
            LocalJudge.from_model(model, tokenizer, **options)


def test_missing_torch_names_the_extra(tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"ra-guard\[local\]"):
        LocalJudge(tiny_model_path)


def test_importing_the_backend_does_not_import_torch() -> None:
    code = (
        "import sys, ra_guard.local, ra_guard.judges.local, ra_guard.samplers.transformers, "
        "ra_guard.testing.tiny_model, ra_guard.testing.smollm2, ra_guard.tiny_model, ra_guard.smollm2; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unavailable_device_names_the_device(tiny_model_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(LocalModelError, match="'cuda'"):
        LocalJudge(tiny_model_path, device="cuda")


def test_unknown_or_wrong_settings_fail_before_loading(tmp_path) -> None:
    from ra_guard.exceptions import ConfigurationError

    missing = tmp_path / "never-loaded"  # would raise LocalModelError if loading were attempted
    with pytest.raises(ConfigurationError, match="did you mean 'max_batch_size'"):
        LocalJudge(missing, max_batchsize=4)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="mode='quick'"):
        LocalJudge(missing, mode="quick")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="permutations"):
        LocalJudge(missing, permutations=0)


def test_a_candidate_of_escaped_characters_is_shortened_not_refused(tiny_loaded: Any) -> None:
    """Newlines and quotes cost more tokens inside the JSON input than alone; shortening allows for it."""
    model, tokenizer = tiny_loaded
    room = len(LocalJudge.from_model(model, tokenizer, mode="fast").inputs.prepare(SMALL).ids) + 300
    judge = LocalJudge.from_model(model, tokenizer, mode="fast", context_length=room)
    request = JudgeRequest(principle="p", prompt="q", responses={"a": 'line "x"\n' * 400, "b": "y"})
    job = judge.inputs.prepare(request)
    assert any(note.startswith("input_truncated: a ") for note in job.notes)
    assert len(job.ids) <= room - judge.inputs.reserved(job.rendered)
