"""`TransformersLM`: the transformers backend (CPU and CUDA).

Every batch of concurrent requests becomes one forward pass per group of sequences that share a
prompt prefix (see `kv` for how caches are shared, reused and reordered). Prompts are encoded
once and cached; chunk generation runs as one fused loop over all requesting particles, with
per-particle random streams so a seed fixes the run. On the CPU, float32 linear layers run
through oneDNN with weights packed once (`packed`).

Host-device traffic (it matters on CUDA, where every read of device memory makes the host wait):
inputs (ids, positions, uniforms, masks) are built on the host and sent with non-blocking copies
(`kv.upload`), and nothing is read back except what the host needs next: per sampling step (a
chunk's, or a single token's from `NextToken`), the sampled ids with their log-probabilities and
masses in one copy (`sampling.draw_tokens`); per feed that asks for them (``next_logprobs``,
mask events, constrained spans), the next-token log-distributions in one copy.
"""

from __future__ import annotations

import weakref
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from ...distributions import ZeroProbability
from ..base import FeedRequest, FeedResult, GenerateRequest, GenerateResult, LanguageModel, StopRule
from ..tokenizer import TokenizerText, eos_ids_of, vocabulary_of
from ..vocab import log_indicator
from . import attention, packed
from .kv import (
    Block,
    BlockCache,
    Handle,
    Prefix,
    PromptCache,
    Segment,
    gather_rows,
    new_block,
    prefix_length,
    upload,
)
from .sampling import draw_tokens

LOG_MASK_CACHE = 16  # device copies of recently used token masks
COPY_PREFIX_BYTES = 32 * 2**20  # on CUDA: a prompt whose per-layer copies for all rows fit here is copied
# SDPA kernels for the backend's forwards on CUDA: not cuDNN's, which builds a plan for every new
# shape (a decoding step's keys grow by one each step); measured in benchmarks/README.md
CUDA_SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class TransformersLM(TokenizerText, LanguageModel):
    """A Hugging Face causal LM with batched, cached, asynchronous next-token log-probabilities."""

    def __init__(
        self, model, tokenizer, *, name: str = "transformers", prompt_cache_tokens: int = 65536,
        copy_prefix_bytes: int = COPY_PREFIX_BYTES, pack_linear: bool | None = None,
    ):
        """Rows of a block attend to one copy of their shared prompt (`attention`) instead of each
        getting the prompt's keys copied in at every layer. On CUDA a short prompt is still copied
        when the copies for all rows take at most ``copy_prefix_bytes`` per layer: there a step's
        time is the host launching kernels, and one SDPA call launches fewer than the two-part
        attention. The CPU splits every multi-row forward (benchmarks/README.md has the numbers).

        ``pack_linear``: run the model's float32 linear layers on the CPU through oneDNN with
        weights packed once (`packed`: faster products at decoding shapes on CPUs where PyTorch's
        default is slow, one more copy of those weights in memory). None (default): wherever it
        applies; True: required (an error where it cannot run); False: PyTorch's default product."""
        super().__init__()
        if isinstance(copy_prefix_bytes, bool) or not isinstance(copy_prefix_bytes, int) or copy_prefix_bytes < 0:
            raise ValueError(
                f"copy_prefix_bytes must be an int >= 0 (bytes of prompt copies per layer; 0: never copy "
                f"the prompt), got {copy_prefix_bytes!r}"
            )
        layer_types = getattr(model.config, "layer_types", None) or []
        if any("sliding" in str(t) or "linear" in str(t) for t in layer_types):
            raise NotImplementedError(
                f"{name} uses sliding-window or linear-attention layers, which the transformers backend "
                "does not support yet; use a full-attention decoder (Llama, Qwen2, SmolLM, GPT-2, ...)"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.device = next(model.parameters()).device
        self.n_layers = model.config.num_hidden_layers
        self.vocab = vocabulary_of(tokenizer, model.config.vocab_size, eos_ids_of(tokenizer, model.generation_config))
        self.prompt_cache = PromptCache(prompt_cache_tokens)
        self.pad_id = self.vocab.eos_id
        self.n_forward = 0
        self.n_forward_tokens = 0
        self._shared_prefix_attention = True  # an ablation switch for benchmarks.forward_overhead
        self.copy_prefix_bytes = copy_prefix_bytes
        self._log_masks: dict[int, tuple[np.ndarray, torch.Tensor]] = {}
        if pack_linear not in (None, True, False):
            raise ValueError(f"pack_linear must be None (wherever it applies), True or False, got {pack_linear!r}")
        packable = pack_linear is not False and packed.packable(model)
        if pack_linear and not packable:
            raise ValueError(
                f"pack_linear=True needs float32 linear layers on the CPU and a PyTorch with oneDNN "
                f"({name} is {next(model.parameters()).dtype} on {self.device}); pass pack_linear=None or False"
            )
        self.packed_linears = packed.PackedLinears.of(model) if packable else None
        attention.install(self.model)

    async def generate(self, handle, tokens, rng, *, temperature=1.0, stop=(), max_tokens=64,
                       max_chars=None, disallowed=None, next_logprobs=None) -> GenerateResult:
        """One fused sampling loop for all particles generating concurrently (see `LanguageModel`)."""
        start = None
        if not tokens:
            if next_logprobs is None:
                raise ValueError("generate needs tokens to feed or the handle's next_logprobs")
            host = torch.from_numpy(np.array(next_logprobs, dtype=np.float32))
            start = upload(host, self.device) * temperature
        request = GenerateRequest(handle, list(tokens), float(temperature), rng,
                                  StopRule(tuple(stop), max_tokens, max_chars), disallowed, start)
        return await self.batcher.submit(request)

    # ----- batches --------------------------------------------------------------------------
    def _process(self, requests: list[FeedRequest | GenerateRequest]) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        first_lps: dict[tuple, np.ndarray] = {}  # first feeds of one prompt and temperature: one copy
        with torch.inference_mode():
            for i, r in enumerate(requests):  # a context's first feed: its tokens become a shared prefix
                if r.handle is not None:
                    continue
                handle, logits = self._prompt(tuple(r.tokens))
                if isinstance(r, GenerateRequest):
                    requests[i] = replace(r, handle=handle, tokens=[], start_logits=logits)
                    continue
                key = (tuple(r.tokens), r.temperature)
                if key not in first_lps:
                    lp = torch.log_softmax(logits.float() / r.temperature, -1)
                    first_lps[key] = self._to_numpy(lp)
                lps = self._prompt_token_logprobs(r) if r.want_token_logprobs else np.zeros(0)
                results[i] = FeedResult(handle, lps, first_lps[key])
            groups: dict[tuple, list[int]] = {}
            for i, r in enumerate(requests):
                if results[i] is None:
                    groups.setdefault((type(r), tuple(id(s) for s in r.handle.prefix)), []).append(i)
            for (kind, _), idx in groups.items():
                batch = [requests[i] for i in idx]
                outs = self._feed_group(batch) if kind is FeedRequest else self._generate_group(batch)
                for i, out in zip(idx, outs, strict=True):
                    results[i] = out
        return results

    def _prompt(self, tokens: tuple[int, ...]) -> tuple[Handle, torch.Tensor]:
        """The shared prefix for a prompt, computed once (extending the longest cached prefix)."""
        hit = self.prompt_cache.get(tokens)
        if hit is not None:
            return Handle(hit[0]), hit[1]
        base = self.prompt_cache.longest_prefix(tokens)
        known, chain = base if base is not None else ((), ())
        block = self._empty_block(chain, 1, len(tokens) - len(known))
        logits = self._forward(block, [list(tokens[len(known):])], last_only=True)[0]
        segment = Segment([k[:, :, : block.width].clone() for k in block.keys],
                          [v[:, :, : block.width].clone() for v in block.values])
        chain = chain + (segment,)
        self.prompt_cache.put(tokens, chain, logits)
        return Handle(chain), logits

    def _prompt_token_logprobs(self, r: FeedRequest) -> np.ndarray:
        """Log-probabilities of tokens[1:] of a first feed (recomputed without cache; rarely needed)."""
        if len(r.tokens) < 2:
            return np.zeros(0)
        block = self._empty_block((), 1, len(r.tokens))
        logits = self._forward(block, [r.tokens], last_only=False)[0]
        lp = torch.log_softmax(logits[:-1].float() / r.temperature, -1)
        return lp.gather(1, upload(torch.tensor(r.tokens[1:]), lp.device)[:, None])[:, 0].cpu().numpy()

    def _empty_block(self, prefix: Prefix, rows: int, capacity: int) -> Block:
        like = self._like()
        return new_block(prefix, rows, capacity, like)

    @cached_property
    def _kv_shape(self) -> tuple[int, int, torch.dtype]:
        """Key/value heads, head dimension and dtype of one layer's cache."""
        cfg = self.model.config
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        return heads, head_dim, next(self.model.parameters()).dtype

    def _like(self) -> list[torch.Tensor]:
        if not hasattr(self, "_like_tensors"):
            heads, head_dim, dtype = self._kv_shape
            self._like_tensors = [torch.zeros(1, heads, 0, head_dim, dtype=dtype, device=self.device)] * self.n_layers
        return self._like_tensors

    def _block_for(self, handles: list[Handle], extra: int) -> Block:
        """The block to extend: the handles' own block in place when they own it whole, else a gather."""
        first = handles[0]
        block = first.block
        in_place = (
            block is not None
            and len(handles) == block.rows
            and all(h.block is block and h.row == i and h.owns_row for i, h in enumerate(handles))
        )
        if in_place:
            block.reserve(extra)
            return block
        return gather_rows(first.prefix, handles, extra, self._like())

    def _forward(self, block: Block, tokens: list[list[int]], *, last_only: bool) -> torch.Tensor:
        """Append ``tokens[i]`` to row i of ``block``; returns the logits at each row's last token
        ``(rows, V)`` (``last_only``), else at every position ``(rows, q, V)`` (rows padded to q).

        Ids, validity and positions go to the device in one upload and nothing is read back, so
        the call only queues work.
        """
        rows = block.rows
        q = max(max(len(t) for t in tokens), 1)
        block.reserve(q)
        p_len, w = prefix_length(block.prefix), block.width
        pads = [q - len(t) for t in tokens]
        host = torch.tensor([
            [t + [self.pad_id] * k for t, k in zip(tokens, pads, strict=True)],
            [[1] * len(t) + [0] * k for t, k in zip(tokens, pads, strict=True)],
            [list(range(p_len + n, p_len + n + q)) for n in block.lengths],
        ])  # (3, rows, q): ids, validity, positions (positions count valid columns only)
        ids, q_valid, positions = upload(host, self.device)
        q_valid = q_valid.bool()
        causal = torch.ones(q, q, dtype=torch.bool, device=self.device).tril()
        parts = [block.valid[:, None, :w].expand(rows, q, w), causal[None] & q_valid[:, None, :]]
        block.split_prefix = self._split_prefix(rows, p_len)
        extra = {"selfsteer_block": block} if block.split_prefix else {}
        if not block.split_prefix:
            parts.insert(0, torch.ones(rows, q, p_len, dtype=torch.bool, device=self.device))
        with self._kernels():
            out = self.model(
                input_ids=ids, attention_mask=torch.cat(parts, dim=2)[:, None], position_ids=positions,
                past_key_values=BlockCache(block, self.n_layers), use_cache=True, **extra,
            )
        block.valid[:, w : w + q] = q_valid
        block.width = w + q
        block.lengths = [n + len(t) for n, t in zip(block.lengths, tokens, strict=True)]
        self.n_forward += 1
        self.n_forward_tokens += sum(len(t) for t in tokens)
        if not last_only:
            return out.logits
        if q == 1:  # one column: a view, no gather
            return out.logits[:, 0]
        # a row fed nothing reads its pad position (the caller ignores it)
        last = (q_valid.sum(dim=1) - 1).clamp(min=0)
        return out.logits[torch.arange(rows, device=self.device), last]

    def _kernels(self) -> AbstractContextManager:
        """The kernel choices for the backend's forwards: SDPA without cuDNN on CUDA, packed linears on the CPU."""
        if self.device.type == "cuda":
            return sdpa_kernel(CUDA_SDPA_BACKENDS)
        return self.packed_linears.active() if self.packed_linears is not None else nullcontext()

    def _split_prefix(self, rows: int, prefix_len: int) -> bool:
        """Whether a forward over ``rows`` rows after a ``prefix_len``-token prompt uses the
        two-part attention (see ``__init__``); one row shares nothing, so SDPA is faster."""
        if not self._shared_prefix_attention or rows == 1:
            return False
        if self.device.type != "cuda":
            return True
        heads, head_dim, dtype = self._kv_shape
        per_position = 2 * heads * head_dim * dtype.itemsize  # keys and values, one layer
        return rows * prefix_len * per_position > self.copy_prefix_bytes

    def _issue(self, block: Block, row: int) -> Handle:
        h = Handle(block.prefix, block, row, block.lengths[row])
        block.owners[row] = weakref.ref(h)
        return h

    def _feed_group(self, batch: list[FeedRequest]) -> list[FeedResult]:
        tokens = [r.tokens for r in batch]
        block = self._block_for([r.handle for r in batch], max(len(t) for t in tokens))
        want_all = any(len(r.tokens) > 1 and r.want_token_logprobs for r in batch)
        logits = self._forward(block, tokens, last_only=not want_all)
        if not want_all:  # next-token steps: one copy back for the whole batch
            temps = upload(torch.tensor([r.temperature for r in batch]), self.device)
            lp = self._to_numpy(torch.log_softmax(logits.float() / temps[:, None], -1))
            return [FeedResult(self._issue(block, i), np.zeros(0), lp[i]) for i in range(len(batch))]
        # forced text: per row, the next-token log-probs then the fed tokens' own, all in one copy
        q = logits.shape[1]
        targets = upload(torch.tensor([t[1:] + [0] * (q - len(t)) for t in tokens]), self.device)
        parts = []
        for i, r in enumerate(batch):
            n = len(r.tokens)
            lp = torch.log_softmax(logits[i, :n].float() / r.temperature, -1)
            parts += [lp[-1], lp[:-1].gather(1, targets[i, : n - 1, None])[:, 0]]
        flat = self._to_numpy(torch.cat(parts))
        vocab, at, results = logits.shape[-1], 0, []
        for i, t in enumerate(tokens):
            next_lp, token_lps = flat[at : at + vocab], flat[at + vocab : at + vocab + len(t) - 1]
            at += vocab + len(t) - 1
            results.append(FeedResult(self._issue(block, i), token_lps.copy(), next_lp))
        return results

    def _generate_group(self, batch: list[GenerateRequest]) -> list[GenerateResult | ZeroProbability]:
        n = len(batch)
        budget = max(r.stopper.max_tokens for r in batch)
        block = self._block_for([r.handle for r in batch], max(len(r.tokens) for r in batch) + budget)
        if all(r.tokens for r in batch):
            logits = self._forward(block, [r.tokens for r in batch], last_only=True)
        else:  # some rows start from their prompt's cached logits
            last = [r.start_logits for r in batch]
            if any(r.tokens for r in batch):
                fed = self._forward(block, [r.tokens for r in batch], last_only=True)
                last = [lg if r.tokens else s for r, lg, s in zip(batch, fed, last, strict=True)]
            logits = torch.stack(last)
        temps = [r.temperature for r in batch]
        log_mask = self._log_mask([r.disallowed for r in batch], logits.shape[-1])
        sampled: list[list[int]] = [[] for _ in range(n)]
        token_lps: list[list[float]] = [[] for _ in range(n)]
        log_mass = [0.0] * n
        results: list[GenerateResult | ZeroProbability | None] = [None] * n
        while True:
            # one uniform per active row, from that row's own generator (finished rows draw nothing)
            u = [batch[i].rng.random() if results[i] is None else 0.0 for i in range(n)]
            drawn = draw_tokens(logits, temps, log_mask, upload(torch.tensor(u, dtype=torch.float64), self.device))
            for i, (t, t_lp, mass) in enumerate(drawn):
                if results[i] is not None:
                    continue
                if mass == -np.inf:
                    results[i] = ZeroProbability("every allowed token has probability zero")
                    continue
                sampled[i].append(t)
                token_lps[i].append(t_lp)
                log_mass[i] += mass if batch[i].disallowed is not None else 0.0
                reason = batch[i].stopper.update(self.vocab.token_bytes[t], t in self.vocab.eos_ids, len(sampled[i]))
                if reason is not None:
                    results[i] = GenerateResult(sampled[i], np.array(token_lps[i]), log_mass[i], reason,
                                                self._issue(block, i))
            if all(r is not None for r in results):
                return results
            # finished rows idle (fed nothing) until the last row stops
            next_ids = [[drawn[i][0]] if results[i] is None else [] for i in range(n)]
            logits = self._forward(block, next_ids, last_only=True)

    def _log_mask(self, disallowed: list[np.ndarray | None], vocab: int) -> torch.Tensor | None:
        """0 / ``-inf`` rows for the excluded ids of each request, as a device tensor ``(rows, vocab)``,
        or ``(1, vocab)`` when every row excludes the same array (None: nothing excluded).

        Each distinct array crosses to the device once; the last few stay cached there (keyed by
        the array, which the cache keeps alive), so a mask reused every step is uploaded once.
        """
        if all(d is None for d in disallowed):
            return None
        if len({id(d) for d in disallowed}) == 1:
            return self._device_log_mask(disallowed[0], vocab)
        nothing = torch.zeros(1, vocab, device=self.device)
        return torch.cat([nothing if d is None else self._device_log_mask(d, vocab) for d in disallowed])

    def _device_log_mask(self, excluded: np.ndarray, vocab: int) -> torch.Tensor:
        """One request's mask on the device; read-only arrays (token masks) are cached."""
        key = id(excluded)
        hit = self._log_masks.pop(key, None)
        if hit is None:
            host = np.zeros(vocab, dtype=np.float32)
            bad = np.asarray(excluded, dtype=bool)[:vocab]
            host[: len(bad)] = log_indicator(~bad)
            hit = (excluded, upload(torch.from_numpy(host)[None], self.device))
        if isinstance(excluded, np.ndarray) and not excluded.flags.writeable:
            self._log_masks[key] = hit
        while len(self._log_masks) > LOG_MASK_CACHE:
            self._log_masks.pop(next(iter(self._log_masks)))
        return hit[1]

    @staticmethod
    def _to_numpy(t: torch.Tensor) -> np.ndarray:
        a = t.float().cpu().numpy()
        a.flags.writeable = False
        return a
