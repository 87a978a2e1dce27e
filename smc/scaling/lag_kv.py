"""Reusing logs' KV caches as prompt prefixes on the transformers backend.

A log is a finished conversation ``[user: prompt, assistant: response]``. `encode_log` renders it
with the chat template and records the KV of its tokens at positions ``0 .. L-1`` (a `LogKV`).

`install_logs` makes later prompts start from stored logs without re-encoding them. A program
whose chat prompt is ``[log_1 turns, ..., log_k turns, user: new task]`` has token ids that begin
with the rendering ``R_k`` of the first ``k`` logs; `install_logs` puts a chain of `Segment`s
covering ``R_k`` into ``lm.prompt_cache``, and the backend then extends that cached prefix (longest
cached prefix) for every particle instead of encoding the logs again.

- One log (``k = 1``) is reused exactly: ``R_1`` is the log's own token sequence, so its keys and
  values are those a fresh encoding computes (tested against re-encoding).
- Several logs follow LAG's recipe: log ``j``'s part of ``R_j`` (its turns, without the template's
  preamble) is taken from its own cache and its keys are moved to their new positions by rotating
  them through the offset (rotary embeddings compose: ``R(p + o) = R(o) R(p)``). Each log then
  attends only to the preamble and to itself, as in block attention; the result approximates
  encoding the logs together.

A log whose tokens do not match the layout (another template or tokenizer) is not installed; it
and the logs after it are encoded as text, with a warning.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .lag_store import LogKV

if TYPE_CHECKING:
    from ..lm.base import LanguageModel

ROTATION_SAFE_ROPE = ("default", "linear", "llama3")  # rope types whose angle is linear in position


def supports_kv_reuse(lm: LanguageModel) -> bool:
    """True for the transformers backend (the one whose KV the logs can store and reuse)."""
    return hasattr(lm, "prompt_cache") and hasattr(lm, "tokenizer") and hasattr(lm, "n_layers")


def log_messages(prompt: str, response: str) -> list[dict[str, str]]:
    """A log as chat messages: the prompt as the user turn, the response as the assistant's."""
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def conversation_ids(lm: LanguageModel, messages: Sequence[dict]) -> list[int]:
    """Token ids of a finished conversation (chat template, no generation prompt opened)."""
    out = lm.tokenizer.apply_chat_template(list(messages), add_generation_prompt=False, tokenize=True)
    ids = out["input_ids"] if hasattr(out, "keys") else out
    return [int(i) for i in ids]


async def encode_log_async(lm: LanguageModel, messages: Sequence[dict]) -> LogKV:
    """The KV of ``messages`` rendered as a finished conversation (see `encode_log`)."""
    import torch

    if not supports_kv_reuse(lm):
        raise TypeError(f"KV reuse needs the transformers backend; {type(lm).__name__} keeps no KV cache")
    ids = conversation_ids(lm, messages)
    await lm.feed(None, ids, want_token_logprobs=False)
    chain, logits = lm.prompt_cache.get(tuple(ids))
    keys = [torch.cat([s.keys[layer] for s in chain], dim=2) for layer in range(lm.n_layers)]
    values = [torch.cat([s.values[layer] for s in chain], dim=2) for layer in range(lm.n_layers)]
    return LogKV(ids, keys, values, logits)


def encode_log(lm: LanguageModel, messages: Sequence[dict]) -> LogKV:
    """Encode a finished conversation once and return its KV (positions 0 .. L-1) and last logits.

    Inside a running event loop, ``await encode_log_async(...)`` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(encode_log_async(lm, messages))
    raise RuntimeError("encode_log was called inside a running event loop; use `await encode_log_async(...)`")


def rotary_frequencies(model: Any):
    """The inverse frequencies of ``model``'s rotary embedding, checked to rotate linearly in position."""
    for module in model.modules():
        inv_freq = getattr(module, "inv_freq", None)
        if inv_freq is None or not hasattr(module, "rope_type"):
            continue
        if module.rope_type not in ROTATION_SAFE_ROPE or getattr(module, "attention_scaling", 1.0) != 1.0:
            raise NotImplementedError(
                f"rotary type {module.rope_type!r} cannot be shifted by rotation; reuse one log at a time (k=1)"
            )
        return inv_freq
    raise NotImplementedError(
        f"{type(model).__name__} has no rotary position embedding, so stored keys cannot be moved to "
        "new positions; reuse one log at a time (k=1)"
    )


def shift_keys(model: Any, keys: Sequence[Any], offset: int) -> list[Any]:
    """Keys computed at positions ``p`` moved to ``p + offset`` (per layer ``(1, H, L, D)``)."""
    import torch

    if offset == 0:
        return list(keys)
    inv_freq = rotary_frequencies(model).to(device=keys[0].device, dtype=torch.float64)
    head_dim = keys[0].shape[-1]
    if 2 * inv_freq.numel() != head_dim:
        raise NotImplementedError("partial rotary embeddings cannot be shifted; reuse one log at a time (k=1)")
    angle = torch.cat([offset * inv_freq, offset * inv_freq])  # (D,)
    cos, sin = angle.cos(), angle.sin()
    out = []
    for k in keys:
        half = k.shape[-1] // 2
        rotated = torch.cat([-k[..., half:], k[..., :half]], dim=-1)
        out.append((k.double() * cos + rotated.double() * sin).to(k.dtype))
    return out


def install_logs(lm: LanguageModel, logs: Sequence[tuple[Sequence[dict], LogKV | None]]) -> int:
    """Cache the KV of the logs' conversation ``[log_1 turns, ..., log_k turns]`` in ``lm.prompt_cache``.

    ``logs``: each log's messages (see `log_messages`) with its stored KV (None: encode as text).
    Returns how many logs, from the first, were installed (see the module docstring).
    """
    from ..lm.transformers.kv import Segment

    if not logs:
        return 0
    if not supports_kv_reuse(lm):
        raise TypeError(f"KV reuse needs the transformers backend; {type(lm).__name__} keeps no KV cache")
    dtype = next(lm.model.parameters()).dtype
    messages: list[dict] = []
    done: list[int] = []
    segments = []
    logits = None
    for j, (pair, kv) in enumerate(logs):
        messages += list(pair)
        ids = conversation_ids(lm, messages)
        piece = ids[len(done):]
        src = len(kv.token_ids) - len(piece) if kv is not None else -1
        if ids[: len(done)] != done or kv is None or src < 0 or kv.token_ids[src:] != piece:
            reason = "it has no usable stored KV" if kv is None else "its tokens differ from the prompt's layout"
            warnings.warn(f"log {j + 1} of {len(logs)} is encoded as text: {reason}", stacklevel=2)
            break
        keys = [k[:, :, src:].to(lm.device, dtype) for k in kv.keys]
        values = [v[:, :, src:].to(lm.device, dtype) for v in kv.values]
        segments.append(Segment(shift_keys(lm.model, keys, len(done) - src), values))
        done, logits = ids, kv.logits.to(lm.device)
    if segments:
        lm.prompt_cache.put(tuple(done), tuple(segments), logits)
    return len(segments)


def kv_bytes_per_token(lm: LanguageModel) -> int:
    """Bytes of keys and values one token takes in a stored log (all layers)."""
    cfg = lm.model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * lm.n_layers * heads * head_dim * next(lm.model.parameters()).element_size()

