"""Hugging Face tokenizers as the LM layer sees them: the byte vocabulary, EOS ids, text <-> ids.

Shared by the backends that run a Hugging Face tokenizer (transformers, vLLM).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
