"""`VLLMLM`: the vLLM backend (GPU; optional extra ``selfsteer[vllm]``).

A thin layer over vLLM's public API (``vllm.LLM.generate`` with token prompts):

- ``feed``: one ``generate(max_tokens=1)`` call per batch, with full-vocabulary log-probs of the
  next token and, when asked, prompt log-probs for the fed tokens (scoring text under the prior);
- ``generate``: native batched sampling with stop strings, per-request seeds and the sampled
  tokens' log-probs, then cut at the first stopping point of our `StopRule` so chunk boundaries
  mean exactly what they mean on the other backends (a chunk excluding EOS falls back to one
  ``feed`` per token, since vLLM does not report the excluded mass);
- KV reuse comes from vLLM's prefix caching (on by default) and tensor parallelism from
  ``tensor_parallel_size``.

Status: written against vLLM >= 0.10's public API, not run in this project's CI (no GPU there);
its tests run wherever vLLM imports and CUDA is present, and skip elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import FeedRequest, FeedResult, GenerateRequest, GenerateResult, LanguageModel, StopRule
from .hf import eos_ids_of, vocabulary_of


class VLLMLM(LanguageModel):
    """A vLLM engine behind the `LanguageModel` contract. Handles are token-id tuples."""

    def __init__(self, llm, *, name: str):
        super().__init__()
        self.llm = llm
        self.name = name
        self.tokenizer = llm.get_tokenizer()
        config = llm.llm_engine.model_config
        self.vocab = vocabulary_of(self.tokenizer, config.get_vocab_size(), eos_ids_of(self.tokenizer, None))

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

    # ----- text ---------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def chat_prompt(self, messages: Sequence[dict]) -> list[int]:
        return list(self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True))

    # ----- operations -------------------------------------------------------------------------
    async def generate(self, handle, tokens, rng, *, temperature=1.0, stop=(), max_tokens=64,
                       max_chars=None, disallowed=None, next_logprobs=None) -> GenerateResult:
        if disallowed is not None:  # excluded mass is not reported by vLLM: sample token by token
            return await super().generate(handle, tokens, rng, temperature=temperature, stop=stop,
                                          max_tokens=max_tokens, max_chars=max_chars, disallowed=disallowed,
                                          next_logprobs=next_logprobs)
        request = GenerateRequest(handle, list(tokens), float(temperature), rng, StopRule(tuple(stop), max_tokens, max_chars))
        return await self.batcher.submit(request)

    def _process(self, requests: list[FeedRequest | GenerateRequest]) -> list[Any]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        results: list[Any] = [None] * len(requests)
        feeds = [i for i, r in enumerate(requests) if isinstance(r, FeedRequest)]
        gens = [i for i, r in enumerate(requests) if isinstance(r, GenerateRequest)]
        if feeds:
            prompts = [TokensPrompt(prompt_token_ids=[*(requests[i].handle or ()), *requests[i].tokens]) for i in feeds]
            params = [
                SamplingParams(max_tokens=1, temperature=requests[i].temperature, logprobs=self.vocab.size,
                               prompt_logprobs=0 if requests[i].want_token_logprobs else None, detokenize=False)
                for i in feeds
            ]
            for i, out in zip(feeds, self.llm.generate(prompts, params, use_tqdm=False), strict=True):
                results[i] = self._feed_result(requests[i], out)
        if gens:
            prompts = [TokensPrompt(prompt_token_ids=[*(requests[i].handle or ()), *requests[i].tokens]) for i in gens]
            params = [
                SamplingParams(
                    max_tokens=requests[i].stopper.max_tokens, temperature=requests[i].temperature,
                    stop=list(requests[i].stopper.stop) or None, include_stop_str_in_output=True,
                    logprobs=0, seed=int(requests[i].rng.integers(2**31)),
                )
                for i in gens
            ]
            for i, out in zip(gens, self.llm.generate(prompts, params, use_tqdm=False), strict=True):
                results[i] = self._generate_result(requests[i], out)
        return results

    def _feed_result(self, r: FeedRequest, out) -> FeedResult:
        prompt = [*(r.handle or ()), *r.tokens]
        nxt = np.full(self.vocab.size, -np.inf, dtype=np.float32)
        for tok, lp in out.outputs[0].logprobs[0].items():
            nxt[tok] = lp.logprob
        nxt -= np.logaddexp.reduce(nxt)
        nxt.flags.writeable = False
        gathered = np.zeros(0)
        if r.want_token_logprobs and len(r.tokens) > 1:
            start = len(prompt) - len(r.tokens) + 1
            gathered = np.array([out.prompt_logprobs[j][prompt[j]].logprob for j in range(start, len(prompt))])
        return FeedResult(tuple(prompt), gathered, nxt)

    def _generate_result(self, r: GenerateRequest, out) -> GenerateResult:
        sample = out.outputs[0]
        tokens, lps, reason = [], [], "max_tokens"
        for tok, step_lps in zip(sample.token_ids, sample.logprobs, strict=False):
            tokens.append(int(tok))
            lps.append(step_lps[tok].logprob)
            stop = r.stopper.update(self.vocab.token_bytes[tok], tok in self.vocab.eos_ids, len(tokens))
            if stop is not None:
                reason = stop
                break
        handle = (*(r.handle or ()), *r.tokens, *tokens[:-1])
        return GenerateResult(tokens, np.array(lps), 0.0, reason, handle)
