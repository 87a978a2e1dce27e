"""Shared-prefix attention: particles attend to one copy of their common prompt.

Standard attention needs every sequence's keys in one contiguous tensor, which for N particles
on a P-token prompt means N copies of the prompt's keys and values per layer. Here attention is
split in two and merged exactly, as in flash attention's running softmax:

- prefix part: all particles' queries, stacked as one batch, against the single ``(1, H, P, D)``
  copy of the prompt's keys (one matrix product; no copies of the prompt);
- own part: each particle's queries against its own block row (masked: holes, padding, causal).

Each part keeps its unnormalised output ``sum_j e^(s_j - m) v_j``, its largest score m and its
mass ``sum_j e^(s_j - m)``; both are rescaled to the larger m, added, and divided by the total
mass. Forward passes without a selfsteer block (training, plain ``generate``) go to transformers'
SDPA unchanged, and so does a one-row block, which has nothing to share (the backend copies its
prompt's keys instead; see `TransformersLM._forward`).
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "selfsteer_prefix"


def _partial(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float):
    """Unnormalised softmax attention of q (.., M, D) over k, v (.., L, D), in float32.

    Returns ``(sum_j e^(s_j - m) v_j, m, sum_j e^(s_j - m))`` with m the row's largest score, kept
    finite (a row that may attend to nothing gets zero output and zero mass, never NaN).
    """
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)).mul_(scale)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    top = scores.amax(dim=-1, keepdim=True).clamp_(min=torch.finfo(scores.dtype).min)
    weights = scores.sub_(top).exp_()
    return torch.matmul(weights, v.float()), top, weights.sum(dim=-1, keepdim=True)


def prefix_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs):
    """Attention for selfsteer blocks (see the module docstring); SDPA for everything else.

    query: (B, Hq, q, D); key/value: the block's own keys (B, Hkv, w+q, D); attention_mask:
    (B, 1, q, w+q) bool over the own keys. Returns (B, q, Hq, D) like transformers' functions.
    """
    block = kwargs.get("selfsteer_block")
    if block is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    b, hq, q_len, d = query.shape
    hkv = key.shape[1]
    groups = hq // hkv
    scale = scaling if scaling is not None else d**-0.5
    # group the query heads that share a key head: (B, Hkv, G*q, D)
    qg = query.reshape(b, hkv, groups * q_len, d)
    own_mask = attention_mask[:, :, None].expand(b, 1, groups, q_len, attention_mask.shape[-1])
    own_mask = own_mask.reshape(b, 1, groups * q_len, attention_mask.shape[-1])
    out, top, mass = _partial(qg, key, value, own_mask, scale)
    prefix_k, prefix_v = block.prefix_kv(module.layer_idx)
    if prefix_k is not None:
        qp = qg.transpose(0, 1).reshape(1, hkv, b * groups * q_len, d)
        out_p, top_p, mass_p = _partial(qp, prefix_k, prefix_v, None, scale)
        out_p = out_p.reshape(hkv, b, groups * q_len, d).transpose(0, 1)
        top_p = top_p.reshape(hkv, b, groups * q_len, 1).transpose(0, 1)
        mass_p = mass_p.reshape(hkv, b, groups * q_len, 1).transpose(0, 1)
        # rescale both parts to their common maximum before adding them
        common = torch.maximum(top, top_p)
        own_w, prefix_w = torch.exp(top - common), torch.exp(top_p - common)
        out = out * own_w + out_p * prefix_w
        mass = mass * own_w + mass_p * prefix_w
    out = out / mass.clamp(min=torch.finfo(mass.dtype).tiny)
    out = out.reshape(b, hkv, groups, q_len, d).reshape(b, hq, q_len, d)
    return out.transpose(1, 2).to(query.dtype).contiguous(), None


def install(model) -> None:
    """Route ``model``'s attention through `prefix_attention` (SDPA whenever no block is passed)."""
    AttentionInterface.register(NAME, prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    model.config._attn_implementation = NAME
    for sub in model.modules():  # some models cache the choice on sub-configs
        cfg = getattr(sub, "config", None)
        if cfg is not None and getattr(cfg, "_attn_implementation", None) == "sdpa":
            cfg._attn_implementation = NAME
