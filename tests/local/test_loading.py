"""One set of load options for every local backend: the judge and the sampler load alike.

The hub revision is tested against a real Hugging Face cache laid out on disk
(``models--<org>--<name>/refs/<revision>`` naming a snapshot), read offline by
``from_pretrained`` exactly as a cached hub model is: two revisions of the tiny
model, told apart by a marker in their config and their tokenizer's length.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ra_guard.exceptions import ConfigurationError
from ra_guard.local import LocalJudge, TransformersSampler
from ra_guard.local.loading import LOAD_SETTINGS, LoadOptions

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

HUB_ID = "ra-guard-tests/tiny-revisions"
#: revision -> (snapshot commit, the tokenizer's model_max_length in that snapshot)
REVISIONS = {"main": ("a" * 40, 3001), "v2": ("b" * 40, 3002)}

Backend = Callable[..., Any]
BACKENDS: dict[str, Backend] = {
    "LocalJudge": lambda target, **load: LocalJudge(target, mode="fast", max_wait_ms=0, **load),
    "TransformersSampler": lambda target, **load: TransformersSampler(target, max_new_tokens=4, **load),
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture(scope="module")
def hub_cache(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face hub cache holding HUB_ID at two revisions (``main`` and the tag ``v2``)."""
    cache = tmp_path_factory.mktemp("hub-cache")
    repo = cache / ("models--" + HUB_ID.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    for revision, (commit, length) in REVISIONS.items():
        snapshot = repo / "snapshots" / commit
        shutil.copytree(tiny_model_path, snapshot)
        config = json.loads((snapshot / "config.json").read_text())
        (snapshot / "config.json").write_text(json.dumps({**config, "ra_guard_revision": revision}))
        tokenizer = json.loads((snapshot / "tokenizer_config.json").read_text())
        (snapshot / "tokenizer_config.json").write_text(json.dumps({**tokenizer, "model_max_length": length}))
        (repo / "refs" / revision).write_text(commit)
    return cache


@pytest.fixture
def offline_hub(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """HUB_ID, resolvable offline from ``hub_cache`` (the tiny model's fixture set HF_HUB_OFFLINE)."""
    import huggingface_hub.constants

    # huggingface_hub read $HF_HUB_CACHE at import; transformers reads this constant at each load.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    return HUB_ID


@pytest.mark.parametrize("revision", [None, "v2", REVISIONS["v2"][0]])
def test_both_backends_load_the_revision_asked_for(backend: Backend, offline_hub: str, revision: str | None) -> None:
    loaded = backend(offline_hub, revision=revision)
    expected = "main" if revision is None else "v2"
    assert loaded.hf_model.config.ra_guard_revision == expected
    assert loaded.tokenizer.model_max_length == REVISIONS[expected][1]
    assert loaded.load_options.revision == revision


def test_both_backends_take_the_same_load_options(offline_hub: str) -> None:
    load: dict[str, Any] = {"dtype": "bfloat16", "device": "cpu", "attn_implementation": "eager", "revision": "v2"}
    judge = BACKENDS["LocalJudge"](offline_hub, **load)
    sampler = BACKENDS["TransformersSampler"](offline_hub, **load)
    assert judge.load_options == sampler.load_options == LoadOptions(**load)
    for loaded in (judge, sampler):
        assert loaded.hf_model.dtype == torch.bfloat16
        assert loaded.hf_model.device.type == "cpu"
        assert loaded.hf_model.config._attn_implementation == "eager"
        assert loaded.hf_model.config.ra_guard_revision == "v2"
        assert not loaded.hf_model.training


@pytest.mark.parametrize(
    ("load", "message"),
    [
        ({"revison": "v2"}, r"unknown setting 'revison' \(did you mean 'revision'\?\)"),
        ({"trust_remote_code": "no"}, r"trust_remote_code='no': use True or False"),
        ({"dtype": "int8"}, r"dtype='int8' is not a floating torch dtype name"),
        ({"revision": ""}, r"revision='': give a non-empty string"),
        ({"device": "cpu", "device_map": "auto"}, r"give one of them"),
    ],
)
def test_both_backends_refuse_the_same_bad_options_before_loading(
    backend: Backend, tmp_path: Path, load: dict[str, Any], message: str
) -> None:
    missing = tmp_path / "never-loaded"  # loading it would raise LocalModelError instead
    with pytest.raises(ConfigurationError, match=message):
        backend(missing, **load)


def test_the_backends_document_every_load_option() -> None:
    for backend in (LocalJudge, TransformersSampler):
        doc = backend.__doc__ or ""
        assert all(name in doc for name in LOAD_SETTINGS), backend


def test_a_misspelt_sampler_setting_gets_a_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"did you mean 'max_new_tokens'"):
        TransformersSampler(tmp_path, max_new_token=4)  # type: ignore[call-arg]


def test_from_model_refuses_load_options(tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded
    with pytest.raises(ConfigurationError, match="from_model got load option 'revision': the model is already loaded"):
        LocalJudge.from_model(model, tokenizer, revision="v2")  # type: ignore[call-arg]


def test_a_revision_for_a_local_directory_is_ignored_with_a_warning(
    backend: Backend, tiny_model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ra_guard"):
        backend(tiny_model_path, revision="v2")
    warnings = [r.getMessage() for r in caplog.records if r.name == "ra_guard" and r.levelno == logging.WARNING]
    assert warnings == [
        f"revision='v2' ignored: {tiny_model_path} is a local directory, loaded as it is "
        "(a revision selects a hub commit)"
    ]
