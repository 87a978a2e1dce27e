"""A randomly initialised two-layer Llama with the bundled model's tokenizer, for fast training tests.

Built in-process (no hub access): the tokenizer comes from the bundled SmolLM2 conversion cache
(or the directory ``$SELFSTEER_TEST_TOKENIZER``, on a machine without the bundled model, such as
a GPU machine the weights cannot travel to), the weights are random (seeded), so a gradient step
takes milliseconds on CPU. The byte vocabulary the backend derives from the tokenizer is computed
once and reused.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch


@lru_cache(maxsize=1)
def bundled_tokenizer():
    from transformers import AutoTokenizer

    from selfsteer.smc.lm.loading import bundled_gguf, converted_gguf

    directory = os.environ.get("SELFSTEER_TEST_TOKENIZER") or converted_gguf(bundled_gguf())
    return AutoTokenizer.from_pretrained(directory)


def tiny_model(seed: int = 0, *, hidden: int = 64, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = bundled_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


_VOCAB = []


def tiny_lm(seed: int = 0, device: str = "cpu", **options):
    """A `TransformersLM` around a fresh tiny model on ``device`` (same seed -> same weights);
    ``options`` go to `TransformersLM`."""
    import selfsteer.smc.lm.transformers.backend as hf

    if not _VOCAB:
        lm = hf.TransformersLM(tiny_model(seed).to(device), bundled_tokenizer(), name="tiny-llama", **options)
        _VOCAB.append(lm.vocab)
        return lm
    original = hf.vocabulary_of
    hf.vocabulary_of = lambda *args, **kwargs: _VOCAB[0]  # the same tokenizer: reuse its vocabulary
    try:
        return hf.TransformersLM(tiny_model(seed).to(device), bundled_tokenizer(), name="tiny-llama", **options)
    finally:
        hf.vocabulary_of = original


def uncached_logprobs(lm, ctx) -> np.ndarray:
    """Tempered log-probs at every position of ``ctx.tokens`` from one forward of ``lm``'s model
    without any cache (the reference cached paths are held to)."""
    with torch.inference_mode():
        logits = lm.model(torch.tensor([ctx.tokens], device=lm.device)).logits[0]
    return torch.log_softmax(logits.float() / ctx.temperature, -1).cpu().numpy()


def fixed_tokens(lm, n_tokens: int):
    """Token-level SMC's program with EOS disallowed, exactly ``n_tokens`` tokens after a short
    prompt (`benchmarks.programs.FixedLengthTokens` on the free task)."""
    from benchmarks.programs import FixedLengthTokens
    from benchmarks.tasks import free_task

    return FixedLengthTokens(lm, free_task(max_tokens=n_tokens, prompt="Tell me a story."))


def save_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Write a tiny model and the tokenizer as a Hugging Face directory (for load_lm / the CLI)."""
    tiny_model(seed).save_pretrained(directory)
    bundled_tokenizer().save_pretrained(directory)
    return directory


def coin_questions(n: int, *, with_context: bool = False):
    from selfsteer.training.questions import Question

    return [Question(f"coin-{i}", f"Flip coin {i}.", "heads",
                     context=f"Coin {i} always lands heads." if with_context else None) for i in range(n)]


def coin_task(n_train: int = 8, n_eval: int = 2, *, with_context: bool = False):
    """A task a random model solves about half the time: "heads" iff the completion has even length.

    Every objective then sees mixed groups (nonzero advantages) on a random tiny model.
    """
    from dataclasses import dataclass

    from selfsteer.training.questions import Task

    @dataclass(frozen=True)
    class CoinTask(Task):
        def extract(self, text: str) -> str:
            return "heads" if len(text) % 2 == 0 else "tails"

    qs = coin_questions(n_train + n_eval, with_context=with_context)
    return CoinTask("coin", tuple(qs[n_eval:]), tuple(qs[:n_eval]), numeric=False)
