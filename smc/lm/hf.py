"""`TransformersLM`: the transformers backend (CPU and CUDA).

Every batch of concurrent requests becomes one forward pass per group of sequences that share a
prompt prefix (see `kv` for how caches are shared, reused and reordered). Prompts are encoded
once and cached; chunk generation runs as one fused loop over all requesting particles, with
per-particle random streams so a seed fixes the run.

Host-device traffic (it matters on CUDA, where every read of device memory makes the host wait):
inputs (ids, positions, uniforms, masks) are built on the host and sent with non-blocking copies
(`kv.upload`), and nothing is read back except what the host needs next: per step of the fused
loop, the sampled ids with their log-probabilities and masses in one copy; per token-level feed,
the next-token log-distributions in one copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from . import attention
from .base import FeedRequest, FeedResult, GenerateRequest, GenerateResult, LanguageModel, StopRule
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
from .vocab import Vocabulary

EXTRA_EOS_TOKENS = ("<|endoftext|>", "<|eot_id|>", "<|end|>", "</s>")


def vocabulary_of(tokenizer, model_vocab_size: int, eos_ids: set[int]) -> Vocabulary:
    """Byte strings for every id the model can emit (ids past the tokenizer are empty specials)."""
    from genlm.backend.tokenization import decode_vocab

    byte_vocab, _ = decode_vocab(tokenizer)
    tokens = [bytes(t) for t in byte_vocab]
    n = max(model_vocab_size, len(tokens))
    extra = list(range(len(tokens), n))
    tokens += [b""] * len(extra)
    special = set(getattr(tokenizer, "all_special_ids", [])) | set(extra)
    special |= {i for i, t in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(byte_vocab))))) if t in getattr(tokenizer, "added_tokens_encoder", {})}
    return Vocabulary(tokens, eos_ids, special)


def eos_ids_of(tokenizer, generation_config) -> set[int]:
    ids = set()
    for src in (getattr(tokenizer, "eos_token_id", None), getattr(generation_config, "eos_token_id", None)):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(i) for i in src)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in EXTRA_EOS_TOKENS if t in vocab)
    return ids


class TokenizerText:
    """Text <-> token ids through a Hugging Face tokenizer (``self.tokenizer``), for backends that have one."""

    tokenizer: Any
    name: str

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def bos_ids(self) -> list[int]:
        probe = self.tokenizer("a").input_ids
        bos = self.tokenizer.bos_token_id
        return [bos] if bos is not None and probe and probe[0] == bos else []

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def chat_prompt(self, messages: Sequence[dict]) -> list[int]:
        if not self.has_chat_template:
            raise ValueError(f"{self.name} has no chat template; pass the prompt as a string")
        out = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
        ids = out["input_ids"] if hasattr(out, "keys") else out  # a mapping in transformers >= 5
        return [int(i) for i in ids]


class TransformersLM(TokenizerText, LanguageModel):
    """A Hugging Face causal LM with batched, cached, asynchronous next-token log-probabilities."""

    def __init__(
        self, model, tokenizer, *, name: str = "transformers", prompt_cache_tokens: int = 65536,
        shared_prefix_attention: bool = True,
    ):
        super().__init__()
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
        self.shared_prefix_attention = shared_prefix_attention
        if shared_prefix_attention:
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

    def _like(self) -> list[torch.Tensor]:
        if not hasattr(self, "_like_tensors"):
            cfg = self.model.config
            heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
            head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            dtype = next(self.model.parameters()).dtype
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
        block.split_prefix = self.shared_prefix_attention and rows > 1  # one row shares nothing: SDPA is faster
        extra = {"selfsteer_block": block} if block.split_prefix else {}
        if not block.split_prefix:
            parts.insert(0, torch.ones(rows, q, p_len, dtype=torch.bool, device=self.device))
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
        # a row fed nothing reads its pad position (the caller ignores it)
        last = (q_valid.sum(dim=1) - 1).clamp(min=0)
        return out.logits[torch.arange(rows, device=self.device), last]

    def _issue(self, block: Block, row: int) -> Handle:
        h = Handle(block.prefix, block, row, block.lengths[row])
        block.owners[row] = h
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

    def _generate_group(self, batch: list[GenerateRequest]) -> list[GenerateResult]:
        n = len(batch)
        budget = max(r.stopper.max_tokens for r in batch)
        block = self._block_for([r.handle for r in batch], max(len(r.tokens) for r in batch) + budget)
        last = [r.start_logits for r in batch]
        if any(r.tokens for r in batch):
            fed = self._forward(block, [r.tokens for r in batch], last_only=True)
            last = [lg if r.tokens else s for r, lg, s in zip(batch, fed, last, strict=True)]
        logits = torch.stack(last)
        temps = upload(torch.tensor([r.temperature for r in batch]), self.device)[:, None]
        disallowed = None
        if any(r.disallowed is not None for r in batch):
            vocab = logits.shape[-1]
            host = np.zeros((n, vocab), dtype=bool)
            for i, r in enumerate(batch):
                if r.disallowed is not None:
                    bad = np.asarray(r.disallowed, dtype=bool)[:vocab]
                    host[i, : len(bad)] = bad
            disallowed = upload(torch.from_numpy(host), self.device)
        sampled: list[list[int]] = [[] for _ in range(n)]
        token_lps: list[list[float]] = [[] for _ in range(n)]
        log_mass = [0.0] * n
        reasons: list[str | None] = [None] * n
        handles: list[Handle | None] = [None] * n
        while True:
            # one uniform per active row, from that row's own generator (finished rows draw nothing)
            u = torch.tensor([batch[i].rng.random() if reasons[i] is None else 0.0 for i in range(n)])
            lp = torch.log_softmax(logits.float() / temps, -1)
            drawn = self._draw(lp, disallowed, u)
            for i, (t, t_lp, mass) in enumerate(drawn):
                if reasons[i] is not None:
                    continue
                sampled[i].append(t)
                token_lps[i].append(t_lp)
                log_mass[i] += mass
                reasons[i] = batch[i].stopper.update(self.vocab.token_bytes[t], t in self.vocab.eos_ids, len(sampled[i]))
                if reasons[i] is not None:
                    handles[i] = self._issue(block, i)
            if all(r is not None for r in reasons):
                break
            # finished rows idle (fed nothing) until the last row stops
            next_ids = [[drawn[i][0]] if reasons[i] is None else [] for i in range(n)]
            logits = self._forward(block, next_ids, last_only=True)
        return [
            GenerateResult(sampled[i], np.array(token_lps[i]), log_mass[i], reasons[i], handles[i])
            for i in range(n)
        ]

    @staticmethod
    def _draw(
        lp: torch.Tensor, disallowed: torch.Tensor | None, u: torch.Tensor
    ) -> list[tuple[int, float, float]]:
        """Inverse-CDF draws: row i's token is where ``u[i]`` (a host float32 uniform) falls in the
        CDF of ``lp[i]`` (float32) restricted to the allowed tokens.

        Returns (id, log p(id), log p(allowed set)) per row. Only the result is read from the
        device, the three together in one copy: the sampling step's only wait for the device.
        """
        masked = lp if disallowed is None else lp.masked_fill(disallowed, float("-inf"))
        mass = torch.logsumexp(masked, -1) if disallowed is not None else torch.zeros(lp.shape[0], device=lp.device)
        probs = torch.exp(masked - mass[:, None])
        cdf = torch.cumsum(probs, -1)
        x = upload(u, lp.device) * cdf[:, -1]
        tok = torch.searchsorted(cdf, x[:, None], right=True)[:, 0]
        # rounding can put x at the CDF's top (tok = V): take the last token with mass instead, the
        # first where the CDF reaches its total (always computed, as checking would read the device)
        last = torch.searchsorted(cdf, cdf[:, -1:].contiguous(), right=False)[:, 0]
        tok = torch.minimum(tok, last)
        tok_lp = lp.gather(1, tok[:, None])[:, 0]
        # one copy back; float64 holds the ids, and the float32 log-probs, exactly
        drawn = torch.stack([tok.double(), tok_lp.double(), mass.double()], dim=1).cpu()
        return [(int(t), t_lp, m) for t, t_lp, m in drawn.tolist()]

    @staticmethod
    def _to_numpy(t: torch.Tensor) -> np.ndarray:
        a = t.float().cpu().numpy()
        a.flags.writeable = False
        return a
