"""A CPU stand-in for the part of vLLM's public API that `VLLMLM` uses (tests only).

vLLM cannot be installed on the CPU machines, so `test_vllm_backend_standin` installs this
module as ``vllm`` (and ``inputs`` as ``vllm.inputs``) inside fixtures. It runs a real Hugging
Face causal LM in float32 on CPU, one plain full-sequence forward pass per generated token (no
KV cache, no batching), and follows vLLM's semantics, not selfsteer's:

- `SamplingParams` validates like vLLM: temperature in [0, 2], values in (0, 0.01) raised to
  0.01, 0 = greedy; ``logprobs``/``prompt_logprobs`` >= 0 or -1 (the whole vocabulary), capped
  by ``LLM(max_logprobs=...)`` (default 20, -1 = no cap); stop strings need ``detokenize``.
- Sample log-probs hold the sampled token plus the top ``logprobs`` tokens. They are the raw
  model log-probs unless ``LLM(logprobs_mode="processed_logprobs")``, which gives them after
  temperature (greedy: untempered). Prompt log-probs are always raw (sampling processors,
  temperature included, are skipped for prompt tokens), and their first entry is None.
- The engine stops on the tokenizer's EOS id, the generation config's EOS ids and
  ``stop_token_ids`` (the stop token is kept in ``token_ids``), or at ``max_tokens``. Stop
  strings are searched in the detokenized text (special tokens skipped): the output ends with
  the token that completed the earliest-ending stop string, and ``text`` is cut after it
  (``include_stop_str_in_output``) or before it.
- A request with a ``seed`` draws from its own generator; others share one seeded by ``LLM(seed)``.
- ``flat_logprobs=True`` returns sample and prompt log-probs as a `FlatLogprobs` (vLLM's
  ``vllm.logprobs.FlatLogprobs``: parallel lists plus per-position start and end indices).

Read from vLLM 0.33.0 (its PyPI wheel): sampling_params.py, outputs.py, logprobs.py,
inputs/llm.py, entrypoints/llm.py, config/model.py, v1/engine/{detokenizer,output_processor,
logprobs}.py, v1/core/sched/utils.py (check_stop), v1/sample/sampler.py and
v1/worker/gpu_model_runner.py (prompt log-probs: "prompt tokens skip sampling processors").
Left out: batching, prefix caching, top-p/top-k, penalties, streaming, n > 1, ignore_eos and
every other sampling parameter (passing one raises TypeError).
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypedDict

import torch
import transformers


class TokensPrompt(TypedDict):
    prompt_token_ids: list[int]


inputs = types.ModuleType("vllm.inputs")
inputs.TokensPrompt = TokensPrompt


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class FlatLogprobs:
    """vLLM's flat log-prob container (``SamplingParams(flat_logprobs=True)``): every position's
    entries in four parallel lists, position i spanning ``start_indices[i]:end_indices[i]``;
    indexing a position gives the ``{token_id: Logprob}`` dict the list format would hold."""

    start_indices: list[int] = field(default_factory=list)
    end_indices: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    ranks: list[int | None] = field(default_factory=list)
    decoded_tokens: list[str | None] = field(default_factory=list)

    def append(self, position: dict[int, Logprob] | None) -> None:
        self.start_indices.append(len(self.logprobs))
        for token_id, lp in (position or {}).items():
            self.token_ids.append(token_id)
            self.logprobs.append(lp.logprob)
            self.ranks.append(lp.rank)
            self.decoded_tokens.append(lp.decoded_token)
        self.end_indices.append(len(self.logprobs))

    def __len__(self) -> int:
        return len(self.start_indices)

    def __getitem__(self, position: int) -> dict[int, Logprob]:
        span = range(self.start_indices[position], self.end_indices[position])
        return {self.token_ids[i]: Logprob(self.logprobs[i], self.ranks[i], self.decoded_tokens[i]) for i in span}

    def __iter__(self):
        return (self[i] for i in range(len(self)))


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | FlatLogprobs | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | FlatLogprobs | None
    outputs: list[CompletionOutput]


@dataclass
class SamplingParams:
    temperature: float = 1.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    max_tokens: int = 16
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    detokenize: bool = True
    include_stop_str_in_output: bool = False
    flat_logprobs: bool = False

    def __post_init__(self):
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature}.")
        if 0 < self.temperature < 1e-2:
            self.temperature = 1e-2
        self.stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        if any(n is not None and n < -1 for n in (self.logprobs, self.prompt_logprobs)):
            raise ValueError("logprobs and prompt_logprobs must be non-negative or -1.")
        if self.max_tokens < 1 or any(not s for s in self.stop):
            raise ValueError("max_tokens must be at least 1; stop cannot contain an empty string.")
        if self.stop and not self.detokenize:
            raise ValueError("stop strings are only supported when detokenize is True.")


@cache
def _load(path: str):
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model.eval(), tokenizer


@dataclass
class ModelConfig:
    hf_model: Any
    max_logprobs: int
    logprobs_mode: str

    def get_vocab_size(self) -> int:
        return self.hf_model.config.vocab_size

    def try_get_generation_config(self) -> dict[str, Any]:
        return self.hf_model.generation_config.to_diff_dict()


class LLM:
    """``vllm.LLM(model, **options)``; the options are kept in ``self.options``. Only ``seed``,
    ``max_logprobs`` and ``logprobs_mode`` change behaviour (the model always runs in float32)."""

    def __init__(self, model: str, **options):
        self.options = {"model": model, **options}
        self.model, self.tokenizer = _load(model)
        max_logprobs = options.get("max_logprobs", 20)
        mode = options.get("logprobs_mode", "raw_logprobs")
        self.llm_engine = types.SimpleNamespace(
            model_config=ModelConfig(self.model, max_logprobs, mode)
        )
        self._generator = torch.Generator().manual_seed(options.get("seed", 0))

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True) -> list[RequestOutput]:
        prompts = [prompts] if isinstance(prompts, dict) else list(prompts)
        params = sampling_params or SamplingParams()
        params = [params] * len(prompts) if isinstance(params, SamplingParams) else params
        if len(params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        return [
            self._run(list(p["prompt_token_ids"]), sp)
            for p, sp in zip(prompts, params, strict=True)
        ]

    def _logprobs(self, lp: torch.Tensor, token: int, n: int, sp: SamplingParams) -> dict:
        """The chosen token first (with its rank), then the top ``n`` (-1: all) by rank."""
        n = lp.numel() if n == -1 else n
        ids = [token, *torch.topk(lp, n).indices.tolist()]
        ranks = [int((lp > lp[token]).sum()) + 1, *range(1, n + 1)]
        out: dict[int, Logprob] = {}
        for i, r in zip(ids, ranks, strict=True):
            text = self.tokenizer.decode([i]) if sp.detokenize else None
            out.setdefault(i, Logprob(float(lp[i]), r, text))
        return out

    def _check(self, ids: list[int], sp: SamplingParams) -> None:
        config = self.llm_engine.model_config
        vocab = config.get_vocab_size()
        cap = vocab if config.max_logprobs == -1 else config.max_logprobs
        if any(
            n is not None and (vocab if n == -1 else n) > cap
            for n in (sp.logprobs, sp.prompt_logprobs)
        ):
            raise ValueError(f"Requested logprobs greater than max allowed: {cap}")
        if not ids:
            raise ValueError("The decoder prompt cannot be empty")

    @torch.no_grad()
    def _run(self, ids: list[int], sp: SamplingParams) -> RequestOutput:
        self._check(ids, sp)
        config = self.llm_engine.model_config
        gen = self._generator if sp.seed is None else torch.Generator().manual_seed(sp.seed)
        logits = self.model(torch.tensor([ids])).logits[0]
        prompt_lps = None
        if sp.prompt_logprobs is not None:  # raw, whatever the temperature or logprobs_mode
            raw = torch.log_softmax(logits, -1)
            prompt_lps = FlatLogprobs() if sp.flat_logprobs else []
            for j in range(len(ids)):  # the first position has none
                prompt_lps.append(self._logprobs(raw[j - 1], ids[j], sp.prompt_logprobs, sp) if j else None)
        gen_eos = config.try_get_generation_config().get("eos_token_id", [])
        eos = {self.tokenizer.eos_token_id, *([gen_eos] if isinstance(gen_eos, int) else gen_eos)}
        scored = sp.logprobs is not None
        container = FlatLogprobs() if sp.flat_logprobs else []
        out = CompletionOutput(0, "", [], 0.0 if scored else None, container if scored else None)
        last = logits[-1]
        while out.finish_reason is None:
            greedy = sp.temperature < 1e-5
            processed = torch.log_softmax(last / (1.0 if greedy else sp.temperature), -1)
            probs = processed.exp()
            tok = int(probs.argmax() if greedy else torch.multinomial(probs, 1, generator=gen))
            out.token_ids.append(tok)
            if scored:
                raw = config.logprobs_mode != "processed_logprobs"
                reported = torch.log_softmax(last, -1) if raw else processed
                out.logprobs.append(self._logprobs(reported, tok, sp.logprobs, sp))
                out.cumulative_logprob += out.logprobs[-1][tok].logprob
            if tok in eos or tok in sp.stop_token_ids:  # engine core: stop tokens, then length
                out.finish_reason = "stop"
                out.stop_reason = tok if tok in sp.stop_token_ids else None
            elif len(out.token_ids) >= sp.max_tokens:
                out.finish_reason = "length"
            if sp.detokenize:  # output processor: text, then stop strings
                self._stop_strings(out, sp)
            if out.finish_reason is None:
                last = self.model(torch.tensor([ids + out.token_ids])).logits[0, -1]
        return RequestOutput(ids, prompt_lps, [out])

    def _stop_strings(self, out: CompletionOutput, sp: SamplingParams) -> None:
        hidden = out.finish_reason == "stop" and not sp.include_stop_str_in_output  # the stop token
        out.text = self.tokenizer.decode(
            out.token_ids[: len(out.token_ids) - hidden], skip_special_tokens=True
        )
        hits = [(out.text.find(s) + len(s), s) for s in sp.stop if s in out.text]
        if hits:
            end, s = min(hits)
            out.finish_reason, out.stop_reason = "stop", s
            out.text = out.text[: end if sp.include_stop_str_in_output else end - len(s)]
