"""A RewardAnything judge running in this process with transformers and torch.

``LocalJudge("/models/RewardAnything-8B-v1")`` (or the spec string
``"local:/models/RewardAnything-8B-v1"``) loads the model with
``from_pretrained`` and judges with the tokenizer's own chat template. What it
adds over the reference package's local ``RewardModel``:

- **Dynamic batching.** Concurrent :meth:`~LocalJudge.ajudge` calls (many
  decisions, many policies) are gathered (``max_batch_size``,
  ``max_wait_ms``) into one left-padded batch that runs on a worker thread,
  off the event loop; each caller gets its own verdict. Greedy results equal
  unbatched ones. Rows that finish early leave the batch once they are half of
  it. Batches are static: requests that arrive while one runs form the next
  (for continuous batching, serve the model with vLLM and use ``openai-compat:``).
- **Prefix cache.** The key/value cache of the system prompt, shared by every
  request, is computed once and reused, where the token ids match exactly.
- **Scoring modes.** ``"reasoning"`` (the model thinks, then writes JSON,
  parsed by :func:`~ra_guard.judges.chat.verdict_from_answer`, the parse step
  that every judge whose model writes its verdict shares); ``"fast"`` (no
  thinking: the JSON skeleton is given and each score is the expected value of
  the digits 1-5, see :mod:`ra_guard.judges.scoring`); ``"hybrid"`` (think up
  to ``thinking_budget`` tokens, then the same digit reading).
- **Long inputs** never lose the generation prompt: candidates are shortened
  (``on_too_long="shorten"``) or :class:`~ra_guard.exceptions.JudgeInputTooLongError`
  is raised (``"raise"``).
- **Position-bias control**: ``permutations=K`` judges K orders and averages.
- **A thin digit mass is seen.** In ``fast``/``hybrid`` mode, where the digits
  1-5 hold less than ``min_digit_mass`` (default 0.1) of the probability at a
  score, that request's reading stops and, with ``on_low_digit_mass="parse"``
  (the default), it is judged again by one ``reasoning`` generation of at most
  ``fallback_max_tokens`` tokens, in a batch of its own after the digit reading;
  the verdict says so in ``Verdict.repairs`` (``low_digit_mass: ...``) and a
  rate-limited WARNING is logged on ``ra_guard.judges``. ``"raise"`` fails that
  request with :class:`~ra_guard.exceptions.JudgeOutputError` (reason
  ``low_digit_mass``). Other requests of the batch keep their digit verdicts.
  Measured: SmolLM2-135M-Instruct standing in as a judge (``make demo``) puts
  0.86-1.0 of the probability on the digits; a random-weight model about 0.005
  (its tests pass ``min_digit_mass=0``). A NaN mass always counts as too thin.

Example:
    >>> from ra_guard.testing.tiny_model import build_tiny_model
    >>> judge = LocalJudge(build_tiny_model(), mode="fast")  # doctest: +SKIP
    >>> verdict = judge.judge(JudgeRequest(principle="Be brief", prompt="Hi",
    ...                                    responses={"a": "Hello!", "b": "Hi"}))  # doctest: +SKIP
    >>> sum(verdict.distributions["a"])  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, Literal, cast

from typing_extensions import TypedDict, Unpack

from ra_guard._warn import warn_fallback
from ra_guard.exceptions import ConfigurationError, JudgeError, JudgeOutputError
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.judges.chat import ChatAnswer, verdict_from_answer
from ra_guard.judges.format import presentation_order
from ra_guard.judges.parsing import unmask_names
from ra_guard.judges.scoring import (
    DIGITS,
    LOW_DIGIT_MASS,
    ForcedJsonReader,
    LowDigitMass,
    average_verdicts,
    check_digit_mass_settings,
    low_digit_mass_detail,
    permutation_orders,
    verdict_from_distributions,
)
from ra_guard.local._batcher import MicroBatcher
from ra_guard.local._engine import BatchState, Engine, SamplingOptions
from ra_guard.local._prepared import JudgeInputs, PreparedInput
from ra_guard.local.loading import (
    LOAD_SETTINGS,
    LoadOptions,
    LoadSettings,
    LocalModelError,
    LocalOutOfMemoryError,
    check_known_settings,
    is_out_of_memory,
    load_model_and_tokenizer,
    require,
)
from ra_guard.tracing import record_target
from ra_guard.types import Usage
from ra_guard.verdict import Verdict

__all__ = [
    "JudgeSettings",
    "LocalJudge",
    "LocalJudgeSettings",
    "LocalModelError",
    "LocalOutOfMemoryError",
    "LowDigitMass",
    "Mode",
    "OnTooLong",
]

Mode = Literal["reasoning", "fast", "hybrid"]
OnTooLong = Literal["shorten", "raise"]
_MODES = ("reasoning", "fast", "hybrid")


class JudgeSettings(TypedDict, total=False):
    """The judging settings of :class:`LocalJudge` and :meth:`LocalJudge.from_model` (see the class docs)."""

    mode: Mode
    max_new_tokens: int
    thinking_budget: int
    do_sample: bool
    temperature: float
    top_p: float
    seed: int | None
    context_length: int | None
    on_too_long: OnTooLong
    max_batch_size: int
    max_wait_ms: float
    prefix_cache: bool
    permutations: int
    min_digit_mass: float
    on_low_digit_mass: LowDigitMass
    fallback_max_tokens: int
    name: str | None


class LocalJudgeSettings(JudgeSettings, LoadSettings, total=False):
    """The keyword arguments of :class:`LocalJudge`: its judging settings and the shared load options.

    The load options (:class:`~ra_guard.local.loading.LoadSettings`) are the
    transformers sampler's too, checked by the same
    :class:`~ra_guard.local.loading.LoadOptions`.
    """


class LocalJudge(Judge):
    """Judge with a local RewardAnything checkpoint (transformers + torch).

    Args:
        model: A directory saved with ``save_pretrained`` or a hub id (already
            cached when offline).
        mode: ``"reasoning"`` (default), ``"fast"`` or ``"hybrid"``; see the module docs.
        max_new_tokens: Generation budget in ``reasoning`` mode (thinking and JSON).
        thinking_budget: Thinking tokens at most in ``hybrid`` mode.
        do_sample: Sample instead of greedy decoding (thinking in reasoning/hybrid).
        temperature: Sampling temperature (the reference samples at 0.1).
        top_p: Nucleus sampling mass (the reference uses 0.9).
        seed: Seed of the sampling generator, for reproducible sampled runs.
        dtype, device, device_map, attn_implementation, trust_remote_code, revision:
            How the model is loaded; the load options every local backend shares
            (:class:`~ra_guard.local.loading.LoadOptions`, e.g. ``revision="v1"``
            for a hub id, ``dtype="bfloat16"``).
        context_length: Tokens the model can attend to (input plus output);
            defaults to the config's ``max_position_embeddings``.
        on_too_long: ``"shorten"`` the longest candidates (marked
            ``…[truncated]``, noted in ``Verdict.repairs``) or ``"raise"``
            :class:`~ra_guard.exceptions.JudgeInputTooLongError`.
        max_batch_size: Requests per forward batch at most.
        max_wait_ms: How long a request waits for others to join its batch.
        prefix_cache: Reuse the system prompt's key/value cache across requests.
        permutations: Judge this many candidate orders and average (position-bias
            control); 1 judges the reference order only. With
            ``on_low_digit_mass="raise"``, an order whose digits held too little
            probability fails the whole call.
        min_digit_mass: ``fast``/``hybrid``: the least probability the digits
            1-5 must hold together where a score is read (default 0.1; a
            RewardAnything model puts nearly all of it there). 0 turns the check off.
        on_low_digit_mass: ``"parse"`` (default) judges a request whose digits
            held less again with one ``reasoning`` generation, noted in
            ``Verdict.repairs`` and logged; ``"raise"`` fails it with
            :class:`~ra_guard.exceptions.JudgeOutputError` (reason ``low_digit_mass``).
        fallback_max_tokens: Generation limit of that fallback (default 512), so
            that it stays near the cost of the mode asked for; a verdict cut off
            there fails with the parser's reason (``truncated_thinking``...).
        name: The judge's name in traces and errors (default ``local:<model>``).

    Raises:
        ConfigurationError: An unknown setting or a wrong value (before loading).
        LocalModelError: Missing files, a non-causal architecture, no chat template.
        MissingDependencyError: torch/transformers missing (``pip install 'ra-guard[local]'``).

    Example:
        >>> judge = LocalJudge("/models/RewardAnything-8B-v1", mode="fast",
        ...                    max_batch_size=16, permutations=2)  # doctest: +SKIP
    """

    def __init__(self, model: str | Path, **settings: Unpack[LocalJudgeSettings]) -> None:
        check_known_settings(settings, [*_JUDGE_SETTINGS, *LOAD_SETTINGS], owner="LocalJudge")
        load = {key: value for key, value in settings.items() if key in LOAD_SETTINGS}
        judging = cast(JudgeSettings, {key: value for key, value in settings.items() if key not in LOAD_SETTINGS})
        _check_settings(judging)
        options = LoadOptions.from_settings(load, owner="LocalJudge")
        loaded_model, tokenizer = load_model_and_tokenizer(model, options)
        self._setup(loaded_model, tokenizer, model_name=str(model), **judging)
        self.load_options: LoadOptions | None = options

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, *, model_name: str = "in-memory", **settings: Unpack[JudgeSettings]
    ) -> LocalJudge:
        """A judge around a model and tokenizer you already loaded (same settings as the constructor).

        Example:
            >>> judge = LocalJudge.from_model(model, tokenizer, mode="fast")  # doctest: +SKIP
        """
        loads = [key for key in settings if key in LOAD_SETTINGS]
        if loads:
            raise ConfigurationError(
                f"LocalJudge.from_model got load option {loads[0]!r}: the model is already loaded; "
                "give it to from_pretrained yourself, or use LocalJudge(path, ...)"
            )
        check_known_settings(settings, _JUDGE_SETTINGS, owner="LocalJudge.from_model")
        _check_settings(settings)
        if not getattr(tokenizer, "chat_template", None):
            raise LocalModelError(model_name, "the tokenizer has no chat template")
        judge = cls.__new__(cls)
        judge._setup(model, tokenizer, model_name=model_name, **settings)
        judge.load_options = None
        return judge

    def _setup(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_name: str,
        mode: Mode = "reasoning",
        max_new_tokens: int = 2048,
        thinking_budget: int = 512,
        do_sample: bool = False,
        temperature: float = 0.1,
        top_p: float = 0.9,
        seed: int | None = None,
        context_length: int | None = None,
        on_too_long: OnTooLong = "shorten",
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        prefix_cache: bool = True,
        permutations: int = 1,
        min_digit_mass: float = 0.1,
        on_low_digit_mass: LowDigitMass = "parse",
        fallback_max_tokens: int = 512,
        name: str | None = None,
    ) -> None:
        # The one place the judge settings' defaults live (the class docstring lists them).
        sampling = SamplingOptions(do_sample=do_sample, temperature=temperature, top_p=top_p, seed=seed)
        # ``model`` is the model's name (the Judge contract); the loaded module is ``hf_model``.
        self.hf_model = model
        self.tokenizer = tokenizer
        self.model = self.model_name = model_name
        self.name = name or f"local:{model_name}"
        record_target(self.name, provider="transformers", model=model_name)  # in-process: no server
        self.mode: Mode = mode
        self.max_new_tokens = max_new_tokens
        self.thinking_budget = thinking_budget
        self.sampling = sampling
        self.on_too_long: OnTooLong = on_too_long
        self.permutations = permutations
        self.min_digit_mass = min_digit_mass
        self.on_low_digit_mass: LowDigitMass = on_low_digit_mass
        self.fallback_max_tokens = fallback_max_tokens
        config = getattr(model, "config", None)
        self.context_length = context_length or int(getattr(config, "max_position_embeddings", 0) or 32768)
        inputs = functools.partial(
            JudgeInputs,
            tokenizer,
            context_length=self.context_length,
            thinking_budget=thinking_budget,
            on_too_long=on_too_long,
            judge=self.name,
            model_name=model_name,
        )
        self.inputs = inputs(mode=mode, max_new_tokens=max_new_tokens)
        # The low-digit-mass fallback's inputs: the same request in reasoning mode, fitted for its own budget.
        self._fallback_inputs = inputs(mode="reasoning", max_new_tokens=fallback_max_tokens)
        self._digit_ids = self.inputs.single_token_ids(DIGITS) if mode != "reasoning" else []
        self._stop_ids = self._eos_ids()
        self._think_close = self.inputs.single_token_ids(["</think>"])[0] if mode == "hybrid" else None
        self.engine = Engine(model, tokenizer, prefix_ids=self.inputs.prefix_ids() if prefix_cache else None)
        self._batcher: MicroBatcher[JudgeRequest, Verdict] = MicroBatcher(
            self._run_batch, max_batch_size=max_batch_size, max_wait_s=max_wait_ms / 1000, name=f"{self.name} batcher"
        )

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.tokenizer, getattr(self.hf_model, "generation_config", None)):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids

    # -- running batches (worker thread) ---------------------------------------

    def _run_batch(self, requests: list[JudgeRequest]) -> list[Verdict | BaseException]:
        """The batcher's process function: prepare each request, run the valid ones as one batch."""
        results: list[Verdict | BaseException] = []
        jobs: list[PreparedInput] = []
        slots: list[int] = []
        for request in requests:
            try:
                jobs.append(self.inputs.prepare(request))
                slots.append(len(results))
                results.append(JudgeError("not run", judge=self.name))
            except JudgeError as exc:
                results.append(exc)
            except Exception as exc:  # a tokenizer or template failure fails this request only
                results.append(JudgeError(f"cannot prepare the judge input: {exc!r}", judge=self.name))
        if jobs:
            torch = require("torch")
            with torch.inference_mode():
                verdicts = self._run_jobs(jobs)
            for slot, verdict in zip(slots, verdicts, strict=True):
                results[slot] = verdict
        return results

    def _run_jobs(self, jobs: list[PreparedInput]) -> list[Verdict | BaseException]:
        """Run jobs as one batch; on out-of-memory, retry in halves down to single requests."""
        try:
            if self.mode == "reasoning":
                return self._reasoning(jobs)
            return self._scored(jobs)
        except Exception as exc:
            if not is_out_of_memory(exc):
                error = JudgeError(f"the local model failed: {exc.__class__.__name__}: {exc}", judge=self.name)
                return [error] * len(jobs)
            _free_memory()
            if len(jobs) > 1:
                half = len(jobs) // 2
                return self._run_jobs(jobs[:half]) + self._run_jobs(jobs[half:])
            longest = len(jobs[0].ids)
            return [
                LocalOutOfMemoryError(
                    f"out of memory judging one request of {longest} input tokens "
                    f"(batches are already split down to 1): lower max_new_tokens "
                    f"(now {self.max_new_tokens}) or max_batch_size, shorten the candidates, "
                    "use a smaller dtype (bfloat16), or spread the model with device_map='auto'",
                    judge=self.name,
                )
            ]

    def _usage(self, job: PreparedInput, completion: int) -> Usage:
        return Usage(prompt_tokens=len(job.ids), completion_tokens=completion)

    def _reasoning(
        self, jobs: list[PreparedInput], *, max_new_tokens: int | None = None
    ) -> list[Verdict | BaseException]:
        engine = self.engine
        state, logits = engine.start([job.ids for job in jobs])
        result = engine.decode(
            state,
            logits,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            stop_ids=self._stop_ids,
            choose=engine.chooser(self.sampling),
            drop_finished=True,
        )
        verdicts: list[Verdict | BaseException] = []
        for job, tokens, finish in zip(jobs, result.tokens, result.finish_reasons, strict=True):
            answer = ChatAnswer(
                text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                usage=self._usage(job, len(tokens)),
                model=self.model_name,
                truncated=finish == "length",  # cut-off thinking holds no verdict
            )
            try:
                verdicts.append(verdict_from_answer(answer, job.rendered, judge=self.name, notes=job.notes))
            except JudgeError as exc:
                verdicts.append(exc)
        return verdicts

    def _scored(self, jobs: list[PreparedInput]) -> list[Verdict | BaseException]:
        """Fast and hybrid modes: (think, close the thinking,) read one digit distribution per candidate."""
        engine = self.engine
        state, logits = engine.start([job.ids for job in jobs])
        thoughts = [""] * len(jobs)
        completions = [0] * len(jobs)
        readers = [ForcedJsonReader(job.rendered.shown_names, open_thinking=self.mode == "fast") for job in jobs]
        if self.mode == "hybrid":
            result = engine.decode(
                state,
                logits,
                max_new_tokens=self.thinking_budget,
                stop_ids={*self._stop_ids, *([self._think_close] if self._think_close is not None else [])},
                choose=engine.chooser(self.sampling),
            )
            chunks: list[list[int]] = []
            for r, tokens in enumerate(result.tokens):
                closed = bool(tokens) and tokens[-1] == self._think_close
                body = tokens[:-1] if closed or (tokens and tokens[-1] in self._stop_ids) else tokens
                thoughts[r] = str(self.tokenizer.decode(body, skip_special_tokens=True))
                pending = [t for t in result.pending[r] if t not in self._stop_ids]
                closing = "\n\n" if closed else "\n</think>\n\n"
                chunk = pending + self.inputs.encoder.parts([(closing, True), (readers[r].prefix, False)])
                completions[r] = len(tokens) + len(chunk) - len(pending)
                chunks.append(chunk)
            logits = engine.extend(state, chunks)
        steps, thin = self._read_digits(state, logits, readers)
        del state, logits  # the digit reading is over: a fallback below starts a batch of its own
        verdicts: list[Verdict | BaseException] = []
        fallbacks: list[tuple[int, str, Usage]] = []
        for r, (job, reader) in enumerate(zip(jobs, readers, strict=True)):
            closing = "" if self.mode == "fast" else "</think>\n\n"
            raw_text = (thoughts[r] + closing if self.mode == "hybrid" else "") + reader.prefix
            usage = self._usage(job, completions[r] + steps[r])
            low = thin[r]
            if low is not None:
                mass, shown = low
                name = job.rendered.masked_to_caller.get(shown, shown)
                detail = low_digit_mass_detail(mass, name, self.min_digit_mass)
                if self.on_low_digit_mass == "raise":
                    hint = "; lower min_digit_mass, or use mode='reasoning' for this model"
                    verdicts.append(JudgeOutputError(LOW_DIGIT_MASS, detail + hint, raw_text=raw_text, judge=self.name))
                else:
                    verdicts.append(JudgeError("not run", judge=self.name))  # replaced by the fallback's outcome
                    fallbacks.append((r, detail, usage))
                continue
            verdict = verdict_from_distributions(
                job.rendered,
                reader.distributions,
                mode=self.mode,
                reasoning=unmask_names(thoughts[r].replace("<think>", "").strip(), job.rendered.masked_to_caller),
                raw_text=raw_text + "}}",
                usage=usage,
                model=self.model_name,
                repairs=job.notes,
            )
            verdicts.append(verdict)
        if fallbacks:
            outcomes = self._fallback([(jobs[r], detail, spent) for r, detail, spent in fallbacks])
            for (r, _, _), outcome in zip(fallbacks, outcomes, strict=True):
                verdicts[r] = outcome
        return verdicts

    def _read_digits(
        self, state: BatchState, logits: Any, readers: list[ForcedJsonReader]
    ) -> tuple[list[int], list[tuple[float, str] | None]]:
        """Feed each reader its digit distributions, one batched step per candidate.

        A row whose digits hold less than ``min_digit_mass`` (or a NaN) stops
        being read there: its verdict will not come from these digits.

        Returns:
            The tokens each row consumed (the forced steps plus its last digit),
            and per row ``(digit mass, shown name)`` of the read that was too
            thin, or ``None`` where every read held enough.
        """
        fed = [1] * len(readers)
        thin: list[tuple[float, str] | None] = [None] * len(readers)
        while True:
            chunks: list[list[int]] = []
            for r, (reader, (distribution, mass)) in enumerate(
                zip(readers, self.engine.digit_probabilities(logits, self._digit_ids), strict=True)
            ):
                chunk: list[int] = []
                if not reader.done and thin[r] is None:
                    if mass >= self.min_digit_mass:
                        step = reader.feed(distribution)
                        chunk = self.inputs.step_ids(step) if step is not None else []
                    else:
                        thin[r] = (mass if math.isfinite(mass) else 0.0, reader.names[len(reader.distributions)])
                fed[r] += len(chunk)
                chunks.append(chunk)
            if not any(chunks):
                return fed, thin
            logits = self.engine.extend(state, chunks)

    def _fallback(self, low: list[tuple[PreparedInput, str, Usage]]) -> list[Verdict | BaseException]:
        """Judge requests whose digits held too little probability with one bounded reasoning generation.

        Each is prepared again for ``reasoning`` mode (fitted for
        ``fallback_max_tokens``), logged, and its verdict carries the
        ``low_digit_mass`` note and the tokens the digit reading spent.
        """
        limit = self.fallback_max_tokens
        results: list[Verdict | BaseException] = []
        jobs: list[PreparedInput] = []
        slots: list[tuple[int, str, Usage]] = []
        for job, detail, spent in low:
            warn_fallback(self.name, LOW_DIGIT_MASS, f"{detail} (fallback generation of at most {limit} tokens)")
            note = f"{LOW_DIGIT_MASS}: {detail}; parsed a generated verdict"
            try:
                prepared = self._fallback_inputs.prepare(job.request)
            except JudgeError as exc:  # e.g. too long for the fallback's budget with on_too_long="raise"
                results.append(exc)
                continue
            slots.append((len(results), detail, spent))
            results.append(JudgeError("not run", judge=self.name))
            jobs.append(dataclasses.replace(prepared, notes=[*prepared.notes, note]))
        if jobs:
            for (slot, detail, spent), outcome in zip(slots, self._reasoning(jobs, max_new_tokens=limit), strict=True):
                if isinstance(outcome, Verdict):
                    outcome = outcome.model_copy(update={"usage": outcome.usage + spent})
                elif isinstance(outcome, JudgeError):
                    # The parse error says why; this says it was the fallback's bounded generation.
                    fallback = f"in the {LOW_DIGIT_MASS} fallback, a generation of at most {limit} tokens"
                    outcome.args = (f"{outcome.args[0]} ({fallback}: {detail})",)
                results[slot] = outcome
        return results

    # -- the Judge interface ----------------------------------------------------

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        """Judge one request; concurrent calls are batched together.

        Raises:
            JudgeOutputError: ``reasoning`` mode output (or the low-digit-mass
                fallback's) could not be parsed; or, with
                ``on_low_digit_mass="raise"``, the digits held too little probability
                (reason ``low_digit_mass``).
            JudgeInputTooLongError: The input does not fit and ``on_too_long="raise"``.
            LocalOutOfMemoryError: Out of memory even for this request alone.
        """
        if self.permutations == 1:
            return await self._batcher.asubmit(request)
        orders = permutation_orders(presentation_order(request), self.permutations)
        outcomes = await asyncio.gather(
            *(self._batcher.asubmit(dataclasses.replace(request, permutation=order)) for order in orders),
            return_exceptions=True,
        )
        verdicts = [v for v in outcomes if isinstance(v, Verdict)]
        failures = [e for e in outcomes if not isinstance(e, Verdict)]
        thin = [e for e in failures if isinstance(e, JudgeOutputError) and e.reason == LOW_DIGIT_MASS]
        if thin:  # on_low_digit_mass="raise": no verdict rests on an order whose digits held too little
            raise thin[0]
        if not verdicts:
            raise failures[0]
        averaged = average_verdicts(verdicts)
        if failures:
            notes = [f"permutation_failed: {len(failures)} of {len(orders)} orders: {failures[0]}"]
            averaged = averaged.model_copy(update={"repairs": [*averaged.repairs, *notes]})
        return averaged

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the batches run so far (requests per forward batch)."""
        return self._batcher.batch_sizes

    async def aclose(self) -> None:
        """Stop the batching worker thread (the model stays loaded until the judge is dropped)."""
        await asyncio.to_thread(self._batcher.close)


_JUDGE_SETTINGS: tuple[str, ...] = tuple(JudgeSettings.__annotations__)


def _check_settings(settings: JudgeSettings) -> None:
    """Fail fast (before a model is loaded) on judging settings that were given and are wrong."""
    if settings.get("mode", "reasoning") not in _MODES:
        raise ConfigurationError(f"mode={settings.get('mode')!r} is not one of {', '.join(_MODES)}")
    if settings.get("on_too_long", "shorten") not in ("shorten", "raise"):
        raise ConfigurationError(f"on_too_long={settings.get('on_too_long')!r}: use 'shorten' or 'raise'")
    if settings.get("max_new_tokens", 1) < 1 or settings.get("thinking_budget", 1) < 1:
        raise ConfigurationError("max_new_tokens and thinking_budget must be at least 1")
    if settings.get("permutations", 1) < 1:
        raise ConfigurationError("permutations must be at least 1")
    check_digit_mass_settings(settings.get("min_digit_mass", 0.1), settings.get("on_low_digit_mass", "parse"))
    if settings.get("fallback_max_tokens", 1) < 1:
        raise ConfigurationError("fallback_max_tokens must be at least 1 token")


def _free_memory() -> None:
    torch = require("torch")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
