"""`VLLMLM`: the vLLM backend (GPU; optional extra ``selfsteer[vllm]``).

A thin layer over vLLM's public API (``vllm.LLM.generate`` with token prompts); each batch of
requests becomes one ``generate`` call:

- ``feed``: a ``max_tokens=1`` request at temperature 1 with the whole vocabulary's log-probs
  in vLLM's flat format (``flat_logprobs``: a few lists instead of one ``Logprob`` object per
  vocabulary entry, which made vLLM's output processor the bottleneck; see benchmarks/README.md),
  tempered here (vLLM samples only at temperatures in [0, 2] and raises those
  below 0.01). The fed tokens' log-probs come from ``prompt_logprobs``, which vLLM never
  tempers; at another temperature they come from one extra request per fed prefix instead
  (cheap with prefix caching, but each returns a whole vocabulary of log-probs).
- ``generate``: native sampling with stop strings, our EOS ids as stop tokens, per-request seeds
  and the sampled tokens' tempered log-probs (``logprobs_mode="processed_logprobs"``), then cut
  at the first stopping point of our `StopRule` (vLLM matches stop strings on detokenized text
  and knows no ``max_chars``), so chunks end where they end on the other backends. A chunk that
  excludes tokens (``disallowed``: vLLM does not report the excluded mass) or whose temperature
  is outside [0.01, 2] is sampled with one ``feed`` per token instead.
- KV reuse comes from vLLM's prefix caching (on) and tensor parallelism from
  ``tensor_parallel_size``.

Status: written against vLLM's public API as of 0.33 (the extra asks for >= 0.12, the first with
``flat_logprobs``). Here (no GPU) it is tested only against a stand-in of that API backed by the
bundled model (``tests/vllm_standin.py``), never against vLLM itself; ``tests/test_vllm.py`` runs
where vLLM imports and CUDA is present.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from ..weights import logsumexp
from .base import FeedRequest, FeedResult, GenerateRequest, GenerateResult, LanguageModel, StopRule
from .tokenizer import TokenizerText, eos_ids_of, vocabulary_of

SAMPLING_TEMPERATURES = (1e-2, 2.0)  # vLLM rejects higher temperatures and raises lower ones


class VLLMLM(TokenizerText, LanguageModel):
    """A vLLM engine behind the `LanguageModel` contract. Handles are token-id tuples."""

    def __init__(self, llm, *, name: str):
        super().__init__()
        self.llm = llm
        self.name = name
        self.tokenizer = llm.get_tokenizer()
        config = llm.llm_engine.model_config
        self.n_logits = config.get_vocab_size()
        generation = SimpleNamespace(**config.try_get_generation_config())  # as transformers does
        eos_ids = eos_ids_of(self.tokenizer, generation)
        self.vocab = vocabulary_of(self.tokenizer, self.n_logits, eos_ids)

    @classmethod
    def load(cls, source: str, *, name: str, dtype: str = "auto", tensor_parallel_size: int = 1,
             gpu_memory_utilization: float = 0.85, seed: int = 0, **engine_options) -> VLLMLM:
        try:
            import vllm
        except ImportError as e:
            from .loading import ModelNotFound

            raise ModelNotFound(
                "the vLLM backend needs vLLM on a Linux machine with CUDA: pip install 'selfsteer[vllm]'; "
                "on CPU use backend='transformers'"
            ) from e
        llm = vllm.LLM(
            model=source, dtype=dtype, tensor_parallel_size=tensor_parallel_size, seed=seed,
            gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=True,
            max_logprobs=-1, logprobs_mode="processed_logprobs", **engine_options,
        )
        return cls(llm, name=name)

    # ----- operations -------------------------------------------------------------------------
    async def generate(self, handle, tokens, rng, *, temperature=1.0, stop=(), max_tokens=64,
                       max_chars=None, disallowed=None, next_logprobs=None) -> GenerateResult:
        low, high = SAMPLING_TEMPERATURES
        if disallowed is not None or not low <= temperature <= high:
            return await super().generate(
                handle, tokens, rng, temperature=temperature, stop=stop, max_tokens=max_tokens,
                max_chars=max_chars, disallowed=disallowed, next_logprobs=next_logprobs,
            )
        stopper = StopRule(tuple(stop), max_tokens, max_chars)
        request = GenerateRequest(handle, list(tokens), float(temperature), rng, stopper)
        return await self.batcher.submit(request)

    def _process(self, requests: list[FeedRequest | GenerateRequest]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        prompts, params, owner = [], [], []
        for i, r in enumerate(requests):
            for ids, p in self._vllm_requests(r):
                prompts.append(TokensPrompt(prompt_token_ids=ids))
                params.append(p)
                owner.append(i)
        outs: list[list[Any]] = [[] for _ in requests]
        for i, out in zip(owner, self.llm.generate(prompts, params, use_tqdm=False), strict=True):
            outs[i].append(out)
        return [
            self._feed_result(r, o)
            if isinstance(r, FeedRequest)
            else self._generate_result(r, o[0])
            for r, o in zip(requests, outs, strict=True)
        ]

    def _vllm_requests(self, r: FeedRequest | GenerateRequest) -> list[tuple[list[int], Any]]:
        """The (prompt ids, sampling parameters) of the vLLM requests that serve ``r``."""
        from vllm import SamplingParams

        seq = [*(r.handle or ()), *r.tokens]
        if isinstance(r, GenerateRequest):
            p = SamplingParams(
                max_tokens=r.stopper.max_tokens,
                temperature=r.temperature,
                stop=list(r.stopper.stop),
                stop_token_ids=sorted(self.vocab.eos_ids),  # every id `StopRule` ends at
                logprobs=0,  # the sampled token only, tempered (processed_logprobs)
                seed=int(r.rng.integers(2**31)),
            )
            return [(seq, p)]
        scored = r.want_token_logprobs and len(r.tokens) > 1
        by_prefix = scored and r.temperature != 1.0  # prompt log-probs are never tempered
        prompt_logprobs = 0 if scored and not by_prefix else None
        p = SamplingParams(
            max_tokens=1,
            temperature=1.0,
            logprobs=self.n_logits,
            prompt_logprobs=prompt_logprobs,
            detokenize=False,
            flat_logprobs=True,  # plain lists, not a Logprob object per vocabulary entry
        )
        first = len(seq) - len(r.tokens) + 1
        cuts = [*range(first, len(seq)), len(seq)] if by_prefix else [len(seq)]
        return [(seq[:cut], p) for cut in cuts]

    def _next_logprobs(self, out, temperature: float) -> np.ndarray:
        """The tempered next-token distribution from a request's full-vocabulary log-probs
        (a ``FlatLogprobs``: position 0's ids and log-probs are one slice of two flat lists)."""
        flat = out.outputs[0].logprobs
        at = slice(flat.start_indices[0], flat.end_indices[0])
        lp = np.full(self.vocab.size, -np.inf)
        lp[np.asarray(flat.token_ids[at])] = np.asarray(flat.logprobs[at], dtype=float) / temperature
        return lp - logsumexp(lp)

    def _feed_result(self, r: FeedRequest, outs: list) -> FeedResult:
        seq = (*(r.handle or ()), *r.tokens)
        prompt_lps = outs[0].prompt_logprobs  # [None, {seq[1]: Logprob}, ...]
        if len(outs) > 1:
            # one request per prefix: the one ending at tokens[k] scores tokens[k + 1]
            pairs = zip(outs[:-1], r.tokens[1:], strict=True)
            lps = np.array([self._next_logprobs(o, r.temperature)[t] for o, t in pairs])
        elif prompt_lps is not None:
            first = len(seq) - len(r.tokens) + 1
            lps = np.array([prompt_lps[j][seq[j]].logprob for j in range(first, len(seq))])
        else:
            lps = np.zeros(0)
        nxt = self._next_logprobs(outs[-1], r.temperature).astype(np.float32)
        nxt.flags.writeable = False
        return FeedResult(seq, lps, nxt)

    def _generate_result(self, r: GenerateRequest, out) -> GenerateResult:
        sample = out.outputs[0]
        # vLLM's own reason, used only if our rule never fires (e.g. the context length ran out)
        reason = "max_tokens" if sample.finish_reason == "length" else "stop"
        tokens, lps = [], []
        for tok, step in zip(sample.token_ids, sample.logprobs, strict=True):
            tokens.append(int(tok))
            lps.append(step[tok].logprob)
            eos = tok in self.vocab.eos_ids
            stop = r.stopper.update(self.vocab.token_bytes[tok], eos, len(tokens))
            if stop is not None:
                reason = stop
                break
        handle = (*(r.handle or ()), *r.tokens, *tokens[:-1])
        return GenerateResult(tokens, np.array(lps), 0.0, reason, handle)
