"""`TransformersLM`: the transformers backend (CPU and CUDA).

Every batch of concurrent requests becomes one forward pass per group of sequences that share a
prompt prefix (see `kv` for how caches are shared, reused and reordered). Prompts are encoded
once and cached; chunk generation runs as one fused loop over all requesting particles, with
per-particle random streams so a seed fixes the run.
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


class TransformersLM(LanguageModel):
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

    # ----- text ---------------------------------------------------------------------------
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
        ids = out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out
        return [int(i) for i in ids]

    async def generate(self, handle, tokens, rng, *, temperature=1.0, stop=(), max_tokens=64,
                       max_chars=None, disallowed=None, next_logprobs=None) -> GenerateResult:
        """One fused sampling loop for all particles generating concurrently (see `LanguageModel`)."""
        start = None
        if not tokens:
            if next_logprobs is None:
                raise ValueError("generate needs tokens to feed or the handle's next_logprobs")
            start = torch.from_numpy(np.array(next_logprobs, dtype=np.float32)).to(self.device) * temperature
        request = GenerateRequest(handle, list(tokens), float(temperature), rng,
                                  StopRule(tuple(stop), max_tokens, max_chars), disallowed, start)
        return await self.batcher.submit(request)

    # ----- batches --------------------------------------------------------------------------
    def _process(self, requests: list[FeedRequest | GenerateRequest]) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        with torch.inference_mode():
            for i, r in enumerate(requests):  # a context's first feed: its tokens become a shared prefix
                if r.handle is not None:
                    continue
                handle, logits = self._prompt(tuple(r.tokens))
                if isinstance(r, GenerateRequest):
                    requests[i] = replace(r, handle=handle, tokens=[], start_logits=logits)
                else:
                    lps = self._prompt_token_logprobs(r) if r.want_token_logprobs else np.zeros(0)
                    results[i] = FeedResult(handle, lps, self._to_numpy(torch.log_softmax(logits.float() / r.temperature, -1)))
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
        return lp.gather(1, torch.tensor(r.tokens[1:], device=lp.device)[:, None])[:, 0].cpu().numpy()

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

    def _forward(self, block: Block, tokens: list[list[int]], *, last_only: bool) -> list[torch.Tensor]:
        """Append ``tokens[i]`` to row i of ``block``; returns each row's logits (last or all positions)."""
        rows = block.rows
        q = max(max(len(t) for t in tokens), 1)
        block.reserve(q)
        ids = torch.full((rows, q), self.pad_id, dtype=torch.long)
        q_valid = torch.zeros(rows, q, dtype=torch.bool)
        for i, t in enumerate(tokens):
            ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
            q_valid[i, : len(t)] = True
        ids, q_valid = ids.to(self.device), q_valid.to(self.device)
        p_len, w = prefix_length(block.prefix), block.width
        positions = p_len + block.n_valid()[:, None] + torch.arange(q, device=self.device)[None, :]
        causal = torch.ones(q, q, dtype=torch.bool, device=self.device).tril()
        parts = [block.valid[:, None, :w].expand(rows, q, w), causal[None] & q_valid[:, None, :]]
        block.split_prefix = self.shared_prefix_attention
        extra = {"selfsteer_block": block} if block.split_prefix else {}
        if not block.split_prefix:
            parts.insert(0, torch.ones(rows, q, p_len, dtype=torch.bool, device=self.device))
        out = self.model(
            input_ids=ids, attention_mask=torch.cat(parts, dim=2)[:, None], position_ids=positions,
            past_key_values=BlockCache(block, self.n_layers), use_cache=True, **extra,
        )
        block.valid[:, w : w + q] = q_valid
        block.width = w + q
        self.n_forward += 1
        self.n_forward_tokens += sum(len(t) for t in tokens)
        logits = out.logits
        if last_only:
            last = torch.tensor([max(len(t) - 1, 0) for t in tokens], device=self.device)
            return list(logits[torch.arange(rows, device=self.device), last])
        return [logits[i, : len(t)] for i, t in enumerate(tokens)]

    def _issue(self, block: Block, row: int) -> Handle:
        h = Handle(block.prefix, block, row)
        block.owners[row] = h
        return h

    def _feed_group(self, batch: list[FeedRequest]) -> list[FeedResult]:
        block = self._block_for([r.handle for r in batch], max(len(r.tokens) for r in batch))
        want_all = any(len(r.tokens) > 1 and r.want_token_logprobs for r in batch)
        logits = self._forward(block, [r.tokens for r in batch], last_only=not want_all)
        temps = torch.tensor([r.temperature for r in batch], device=self.device)
        results = []
        if not want_all:
            lp = torch.log_softmax(torch.stack(logits).float() / temps[:, None], -1)
            lp_np = lp.cpu().numpy()
            lp_np.flags.writeable = False
            return [FeedResult(self._issue(block, i), np.zeros(0), lp_np[i]) for i in range(len(batch))]
        for i, (r, lg) in enumerate(zip(batch, logits, strict=True)):
            lp = torch.log_softmax(lg.float() / r.temperature, -1)
            toks = torch.tensor(r.tokens[1:], device=self.device, dtype=torch.long)
            gathered = lp[:-1].gather(1, toks[:, None])[:, 0].cpu().numpy()
            results.append(FeedResult(self._issue(block, i), gathered, self._to_numpy(lp[-1])))
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
        temps = torch.tensor([r.temperature for r in batch], device=self.device)[:, None]
        disallowed = None
        if any(r.disallowed is not None for r in batch):
            disallowed = torch.zeros(n, logits.shape[-1], dtype=torch.bool)
            for i, r in enumerate(batch):
                if r.disallowed is not None:
                    bad = torch.from_numpy(np.array(r.disallowed, dtype=bool))[: logits.shape[-1]]
                    disallowed[i, : len(bad)] = bad
            disallowed = disallowed.to(self.device)
        sampled: list[list[int]] = [[] for _ in range(n)]
        token_lps: list[list[float]] = [[] for _ in range(n)]
        log_mass = [0.0] * n
        reasons: list[str | None] = [None] * n
        handles: list[Handle | None] = [None] * n
        while True:
            active = [i for i in range(n) if reasons[i] is None]
            lp = torch.log_softmax(logits.float() / temps, -1)
            tok, tok_lp, mass = self._draw(lp, disallowed, [batch[i].rng for i in range(n)], active)
            for i in active:
                t = int(tok[i])
                sampled[i].append(t)
                token_lps[i].append(float(tok_lp[i]))
                log_mass[i] += float(mass[i])
                reasons[i] = batch[i].stopper.update(self.vocab.token_bytes[t], t in self.vocab.eos_ids, len(sampled[i]))
                if reasons[i] is not None:
                    handles[i] = self._issue(block, i)
            if all(r is not None for r in reasons):
                break
            next_ids = [[int(tok[i])] if reasons[i] is None else [] for i in range(n)]  # finished rows idle
            logits = torch.stack(self._forward(block, next_ids, last_only=True))
        return [
            GenerateResult(sampled[i], np.array(token_lps[i]), log_mass[i], reasons[i], handles[i])
            for i in range(n)
        ]

    @staticmethod
    def _draw(lp: torch.Tensor, disallowed: torch.Tensor | None, rngs: list[np.random.Generator], active: list[int]):
        """Inverse-CDF draws with one uniform per active row from that row's own generator."""
        masked = lp if disallowed is None else lp.masked_fill(disallowed, float("-inf"))
        mass = torch.logsumexp(masked, -1) if disallowed is not None else torch.zeros(lp.shape[0], device=lp.device)
        probs = torch.exp(masked - mass[:, None])
        cdf = torch.cumsum(probs, -1)
        u = torch.zeros(lp.shape[0], dtype=cdf.dtype)
        for i in active:
            u[i] = rngs[i].random()
        u = u.to(lp.device) * cdf[:, -1]
        tok = torch.searchsorted(cdf, u[:, None], right=True)[:, 0].clamp(max=lp.shape[1] - 1)
        bad = torch.isinf(masked.gather(1, tok[:, None])[:, 0])
        if bool(bad.any()):
            finite = torch.isfinite(masked)
            last = lp.shape[1] - 1 - torch.argmax(finite.flip(1).to(torch.int8), dim=1)
            tok = torch.where(bad, last, tok)
        tok_lp = lp.gather(1, tok[:, None])[:, 0]
        return tok.cpu(), tok_lp.cpu(), mass.cpu()

    @staticmethod
    def _to_numpy(t: torch.Tensor) -> np.ndarray:
        a = t.float().cpu().numpy()
        a.flags.writeable = False
        return a
