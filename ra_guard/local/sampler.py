"""Sample candidates from a local chat model with transformers, N at a time.

``TransformersSampler("/models/Qwen3-1.7B")`` (or the spec string
``"transformers:/models/Qwen3-1.7B"``) renders the conversation with the
tokenizer's chat template and draws the N candidates in one batched
``generate`` call (``num_return_sequences=n``), on a worker thread so that the
event loop keeps running. Message text is tokenized apart from the template's
control tokens, so a message cannot open a turn of its own. Token usage is counted: the prompt once (on the
first sample), each sample's completion on that sample.

Example:
    >>> sampler = TransformersSampler("/models/Qwen3-1.7B", max_new_tokens=256)  # doctest: +SKIP
    >>> [s.text for s in sampler.sample([{"role": "user", "content": "Hi"}], n=4)]  # doctest: +SKIP
    ['Hello!', 'Hi there!', 'Hey!', 'Hello, how can I help?']
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from pathlib import Path
from typing import Any

from typing_extensions import Unpack

from ra_guard.exceptions import ConfigurationError, SamplerError
from ra_guard.local._tokens import TokenEncoder
from ra_guard.local.loading import (
    LOAD_SETTINGS,
    LoadOptions,
    LoadSettings,
    SamplerOutOfMemoryError,
    check_known_settings,
    is_out_of_memory,
    load_model_and_tokenizer,
    require,
)
from ra_guard.samplers.base import Sampler
from ra_guard.tracing import record_target
from ra_guard.types import Messages, Sample, Usage

__all__ = ["SamplerOutOfMemoryError", "TransformersSampler"]

_THINK_CLOSE = "</think>"


class TransformersSampler(Sampler):
    """Candidates from a local causal chat LM, sampled in one batched ``generate``.

    Args:
        model: A directory saved with ``save_pretrained`` or a cached hub id.
        max_new_tokens: Tokens per candidate at most.
        temperature: Default sampling temperature (a call's ``temperature`` wins);
            ``0`` means greedy: one generation, repeated ``n`` times (usage counted once).
        top_p: Nucleus sampling mass.
        seed: Seed torch's generator before each call, for reproducible candidates.
        enable_thinking: Passed to the chat template (Qwen3 reads it); ``None``
            leaves the template's default.
        strip_thinking: Drop everything up to ``</think>`` from the candidates.
        name: The sampler's name in traces (default ``transformers:<model>``).
        **load: dtype, device, device_map, attn_implementation,
            trust_remote_code, revision: the load options every local backend
            shares (:class:`~ra_guard.local.loading.LoadOptions`), e.g.
            ``revision="v1"`` for a hub id, ``dtype="bfloat16"``.

    Raises:
        ConfigurationError: An unknown setting or a wrong value (before loading).
        LocalModelError: Missing files, a non-causal architecture, no chat template.
        MissingDependencyError: torch/transformers missing (``pip install 'ra-guard[local]'``).

    Example:
        >>> sampler = TransformersSampler("org/chat-model", revision="v1.0", dtype="bfloat16")  # doctest: +SKIP
        >>> sampler.load_options.revision  # doctest: +SKIP
        'v1.0'
    """

    def __init__(
        self,
        model: str | Path,
        *,
        max_new_tokens: int = 512,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
        enable_thinking: bool | None = None,
        strip_thinking: bool = True,
        name: str | None = None,
        **load: Unpack[LoadSettings],
    ) -> None:
        # A misspelt sampling setting lands in **load: the "did you mean" looks at both.
        check_known_settings(load, [*_SAMPLER_SETTINGS, *LOAD_SETTINGS], owner="TransformersSampler")
        if max_new_tokens < 1:
            raise ConfigurationError("max_new_tokens must be at least 1")
        self.load_options = LoadOptions.from_settings(load, owner="TransformersSampler")
        # ``model`` is the model's name (the Sampler contract); the loaded module is ``hf_model``.
        self.hf_model, self.tokenizer = load_model_and_tokenizer(model, self.load_options)
        self.model = self.model_name = str(model)
        self.encoder = TokenEncoder(self.tokenizer, model_name=self.model_name)
        self.name = name or f"transformers:{model}"
        record_target(self.name, provider="transformers", model=self.model_name)  # in-process: no server
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.enable_thinking = enable_thinking
        self.strip_thinking = strip_thinking
        # One generate at a time: the model is not safe to share between threads.
        self._lock = threading.Lock()

    def _prompt_ids(self, messages: Messages) -> list[int]:
        kwargs: dict[str, Any] = {"add_generation_prompt": True}
        if self.enable_thinking is not None:
            kwargs["enable_thinking"] = self.enable_thinking
        # Message text is the user's: it must never open a turn of its own (see TokenEncoder).
        return self.encoder.chat(list(messages), **kwargs)

    def _generate(self, messages: Messages, n: int, temperature: float) -> list[Sample]:
        torch = require("torch")
        transformers = require("transformers")
        prompt = self._prompt_ids(messages)
        eos = self.hf_model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        stop_ids = set(eos) if isinstance(eos, list) else {eos}
        config = transformers.GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=self.top_p if temperature > 0 else None,
            top_k=None,
            # Greedy decoding gives one answer: generate it once and repeat it.
            num_return_sequences=n if temperature > 0 else 1,
            eos_token_id=eos,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        inputs = torch.tensor([prompt], dtype=torch.long, device=self.hf_model.device)
        with self._lock, torch.inference_mode(), contextlib.ExitStack() as stack:
            if self.seed is not None:
                # A private RNG state: seeding must not touch the caller's torch RNG.
                cuda = [self.hf_model.device] if self.hf_model.device.type == "cuda" else []
                stack.enter_context(torch.random.fork_rng(devices=cuda))
                torch.manual_seed(self.seed)
            output = self.hf_model.generate(
                input_ids=inputs, attention_mask=torch.ones_like(inputs), generation_config=config
            )
        samples = []
        for i, row in enumerate(output[:, len(prompt) :].tolist()):
            length = next((k + 1 for k, t in enumerate(row) if t in stop_ids), None)
            tokens = row[:length] if length is not None else row
            text = str(self.tokenizer.decode(tokens, skip_special_tokens=True))
            if self.strip_thinking and _THINK_CLOSE in text:
                text = text.split(_THINK_CLOSE, 1)[1]
            samples.append(
                Sample(
                    text=text.strip(),
                    finish_reason="stop" if length is not None else "length",
                    usage=Usage(prompt_tokens=len(prompt) if i == 0 else 0, completion_tokens=len(tokens)),
                    model=self.model_name,
                )
            )
        if len(samples) < n:
            copy = samples[0].model_copy(update={"usage": Usage()})
            samples.extend([copy] * (n - len(samples)))
        return samples

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        """Sample ``n`` candidates in one batched ``generate``, off the event loop.

        Raises:
            SamplerOutOfMemoryError: Out of memory; lower ``n`` or ``max_new_tokens``.
            SamplerError: Generation failed.
        """
        if n < 1:
            raise SamplerError(f"{self.name}: n must be at least 1")
        chosen = self.temperature if temperature is None else temperature
        try:
            return await asyncio.to_thread(self._generate, messages, n, chosen)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise SamplerOutOfMemoryError(
                    f"{self.name}: out of memory sampling {n} candidates of up to {self.max_new_tokens} tokens; "
                    "lower n (BestOfN(n=...)) or max_new_tokens, or use a smaller dtype"
                ) from exc
            raise SamplerError(f"{self.name}: generation failed: {exc.__class__.__name__}: {exc}") from exc


#: The sampler's own settings (its keyword parameters), for the "did you mean" of an unknown one.
_SAMPLER_SETTINGS: tuple[str, ...] = tuple(
    name
    for name, parameter in inspect.signature(TransformersSampler.__init__).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)
