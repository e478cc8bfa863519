"""Batched incremental decoding on a transformers causal LM.

One primitive does all the work: :meth:`Engine.extend` appends a ragged chunk
of tokens to every row of a batch (each chunk left-padded to the longest) and
returns the next-token logits of every row, reusing the rows' key/value cache.
Prefill, greedy or sampled decoding, forced JSON and per-candidate digit
reading are all sequences of ``extend`` calls.

Pads inside a row are masked out of attention and every real token gets its
true position (``position_ids`` are given explicitly), so a padded row
computes what it would compute alone. That is what lets a batch reuse the
KV cache of the shared system prompt: rows are laid out as
``[prefix][pads][rest of the row]`` and the prefix cache, computed once with
batch size 1, is repeated across the batch.

Example:
    >>> engine = Engine(model, tokenizer)  # doctest: +SKIP
    >>> state, logits = engine.start([[1, 2, 3], [4, 5]])  # doctest: +SKIP
    >>> logits.shape  # (batch, vocabulary)  # doctest: +SKIP
    torch.Size([2, 727])
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ra_guard.local.loading import require

__all__ = ["BatchState", "DecodeResult", "Engine", "SamplingOptions"]


@dataclass(frozen=True)
class SamplingOptions:
    """Greedy (``do_sample=False``) or temperature/top-p sampling.

    Example:
        >>> SamplingOptions(do_sample=True, temperature=0.7).top_p
        1.0
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class BatchState:
    """The KV cache, attention mask and next position of each row of a batch."""

    cache: Any
    attention_mask: Any
    next_positions: list[int]


@dataclass
class DecodeResult:
    """Tokens generated per row, why each row stopped, and tokens not yet in the cache.

    Attributes:
        tokens: Generated tokens per row, the stop token included.
        finish_reasons: ``"stop"`` (a stop token) or ``"length"`` (the budget ran out).
        pending: Per row, generated tokens that were not fed back into the cache.
    """

    tokens: list[list[int]]
    finish_reasons: list[str]
    pending: list[list[int]] = field(default_factory=list)


class Engine:
    """Runs ragged, left-padded batches through a causal LM with KV caches.

    Args:
        model: A transformers causal LM (``model(input_ids, attention_mask,
            position_ids, cache)`` returning ``.logits``).
        tokenizer: Its tokenizer (used for the pad id).
        prefix_ids: Token ids of the prefix every row shares (the system
            prompt), or ``None`` to disable the prefix cache.
    """

    def __init__(self, model: Any, tokenizer: Any, *, prefix_ids: Sequence[int] | None = None) -> None:
        self.torch = require("torch")
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id: int = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        parameters = inspect.signature(model.forward).parameters
        # transformers renamed past_key_values to cache (5.x); support both spellings.
        self._cache_kw = "cache" if "cache" in parameters else "past_key_values"
        self._keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in parameters), None)
        self.prefix_ids: list[int] | None = list(prefix_ids) if prefix_ids else None
        self._prefix_cache: Any = None
        self._generator: Any = None

    @property
    def device(self) -> Any:
        """The device of the model's inputs."""
        return getattr(self.model, "device", None) or self.torch.device("cpu")

    def _new_cache(self) -> Any:
        transformers = require("transformers")
        try:
            return transformers.DynamicCache(config=self.model.config)
        except TypeError:  # transformers < 4.56 takes no config
            return transformers.DynamicCache()

    def _forward(self, state: BatchState, ids: Any, mask: Any, positions: Any) -> Any:
        kwargs: dict[str, Any] = {self._cache_kw: state.cache, "use_cache": True}
        if self._keep_kw is not None:
            kwargs[self._keep_kw] = 1
        out = self.model(input_ids=ids, attention_mask=state.attention_mask, position_ids=positions, **kwargs)
        return out.logits[:, -1, :].float()

    def extend(self, state: BatchState, chunks: Sequence[Sequence[int]]) -> Any:
        """Append ``chunks[r]`` to row ``r``; return the logits after each row's last token.

        Chunks may have different lengths (left-padded within the step) and may
        be empty; the logits of a row with an empty chunk are meaningless.
        """
        torch = self.torch
        width = max((len(c) for c in chunks), default=0)
        if width == 0:
            raise ValueError("extend() needs at least one non-empty chunk")
        rows = len(chunks)
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        for r, chunk in enumerate(chunks):
            n, start = len(chunk), state.next_positions[r]
            positions[r, :] = start  # pads: any position, they are masked out
            if n:
                ids[r, width - n :] = torch.tensor(list(chunk), dtype=torch.long)
                mask[r, width - n :] = 1
                positions[r, width - n :] = torch.arange(start, start + n)
            state.next_positions[r] = start + n
        device = self.device
        state.attention_mask = torch.cat([state.attention_mask, mask.to(device)], dim=1)
        return self._forward(state, ids.to(device), mask, positions.to(device))

    def _prefix_state(self, rows: int) -> BatchState | None:
        """A copy of the prefix cache repeated ``rows`` times, or ``None`` without one."""
        if self.prefix_ids is None:
            return None
        torch = self.torch
        if self._prefix_cache is None:
            cache = self._new_cache()
            seed = BatchState(cache, torch.zeros((1, 0), dtype=torch.long, device=self.device), [0])
            self.extend(seed, [self.prefix_ids])
            self._prefix_cache = seed.cache
        cache = copy.deepcopy(self._prefix_cache)
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        size = len(self.prefix_ids)
        mask = torch.ones((rows, size), dtype=torch.long, device=self.device)
        return BatchState(cache, mask, [size] * rows)

    def start(self, rows: Sequence[Sequence[int]]) -> tuple[BatchState, Any]:
        """Prefill a batch of token rows; return its state and the next-token logits.

        When every row starts with the prefix ids (checked token by token) and
        the prefix cache is on, only the rest of each row is computed.
        """
        prefix = self.prefix_ids
        if prefix is not None and all(len(r) > len(prefix) and list(r[: len(prefix)]) == prefix for r in rows):
            state = self._prefix_state(len(rows))
            if state is not None:
                return state, self.extend(state, [r[len(prefix) :] for r in rows])
        torch = self.torch
        state = BatchState(
            self._new_cache(), torch.zeros((len(rows), 0), dtype=torch.long, device=self.device), [0] * len(rows)
        )
        return state, self.extend(state, rows)

    def chooser(self, sampling: SamplingOptions) -> Callable[[Any], list[int]]:
        """A function from logits ``[rows, vocab]`` to one token per row."""
        torch = self.torch
        if not sampling.do_sample or sampling.temperature <= 0:
            return lambda logits: [int(t) for t in logits.argmax(dim=-1).tolist()]
        if self._generator is None:
            self._generator = torch.Generator(device="cpu")
            if sampling.seed is not None:
                self._generator.manual_seed(sampling.seed)
            else:
                self._generator.seed()
        generator = self._generator

        def sample(logits: Any) -> list[int]:
            probs = torch.softmax(logits.float().cpu() / sampling.temperature, dim=-1)
            if sampling.top_p < 1.0:
                sorted_probs, order = probs.sort(dim=-1, descending=True)
                cumulative = sorted_probs.cumsum(dim=-1)
                # Keep the smallest set whose mass reaches top_p (the first token always stays).
                drop = cumulative - sorted_probs > sampling.top_p
                sorted_probs = sorted_probs.masked_fill(drop, 0.0)
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
            picked = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            return [int(t) for t in picked.tolist()]

        return sample

    def decode(
        self,
        state: BatchState,
        logits: Any,
        *,
        max_new_tokens: int,
        stop_ids: set[int],
        choose: Callable[[Any], list[int]],
        drop_finished: bool = False,
    ) -> DecodeResult:
        """Generate up to ``max_new_tokens`` per row, each row stopping at a stop token.

        The last token of each row is *not* fed back (``DecodeResult.pending``), so
        that a caller can continue the rows with forced text without a wasted step.
        With ``drop_finished``, rows that stopped are removed from the batch (and
        its cache) once they are half of it, so long generations do not carry
        finished rows; ``state`` is then unusable afterwards.
        """
        rows = len(state.next_positions)
        tokens: list[list[int]] = [[] for _ in range(rows)]
        reasons = ["length"] * rows
        done = [False] * rows
        active = list(range(rows))  # batch position -> original row
        for step in range(max_new_tokens):
            picked = choose(logits)
            chunks: list[list[int]] = []
            for position, r in enumerate(active):
                if done[r]:
                    chunks.append([])
                    continue
                token = picked[position]
                tokens[r].append(token)
                if token in stop_ids:
                    done[r], reasons[r] = True, "stop"
                    chunks.append([])
                else:
                    chunks.append([token])
            if all(done) or step == max_new_tokens - 1:
                break
            finished = sum(done[r] for r in active)
            if drop_finished and finished * 2 >= len(active):
                keep = [position for position, r in enumerate(active) if not done[r]]
                self._select(state, keep)
                active = [active[position] for position in keep]
                chunks = [chunks[position] for position in keep]
            logits = self.extend(state, chunks)
        pending = [
            [row[-1]] if row and (reasons[r] == "stop" or len(row) == max_new_tokens) else []
            for r, row in enumerate(tokens)
        ]
        return DecodeResult(tokens=tokens, finish_reasons=reasons, pending=pending)

    def _select(self, state: BatchState, keep: list[int]) -> None:
        """Keep only the batch positions ``keep`` (cache, mask and positions)."""
        index = self.torch.tensor(keep, dtype=self.torch.long, device=self.device)
        state.cache.batch_select_indices(index)
        state.attention_mask = state.attention_mask[index]
        state.next_positions = [state.next_positions[position] for position in keep]

    def digit_probabilities(self, logits: Any, digit_ids: Sequence[int]) -> list[tuple[list[float], float]]:
        """Per row, the probabilities of ``digit_ids`` renormalised to 1, and their raw mass."""
        torch = self.torch
        probs = torch.softmax(logits.float(), dim=-1)[:, list(digit_ids)].cpu()
        result: list[tuple[list[float], float]] = []
        for row in probs.tolist():
            mass = float(sum(row))
            result.append(([p / mass for p in row] if mass > 0 else [1.0 / len(row)] * len(row), mass))
        return result
