"""Teacher-forced token log-probabilities of completions under a Hugging Face causal LM.

Sampling runs under ``torch.inference_mode`` inside the engine; the gradient comes from this
separate forward pass over ``prompt + completion``. Rows are right-padded (so no real token ever
attends to padding) and only the positions that predict completion tokens are turned into
logits. Log-probabilities use the same tempering as sampling, ``log_softmax(logits / T)``, and a
token drawn under a restriction (``Rollout.choose``) is renormalised over the same mask:
``log p(t) - log p(mask)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch

from selfsteer.smc import TokenMask


def _accepts_logits_to_keep(model) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def completion_logprobs(
    model,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    *,
    temperature: float = 1.0,
    restrictions: Sequence[Mapping[int, TokenMask]] | None = None,
    pad_id: int = 0,
) -> torch.Tensor:
    """``log p(completion[i][t] | prompt[i], completion[i][:t])`` as an (N, T_max) tensor.

    Entries past each completion's end are 0. Gradients flow to ``model``'s parameters unless
    called under ``torch.no_grad``.
    """
    n = len(prompts)
    if n != len(completions) or n == 0:
        raise ValueError("completion_logprobs needs as many prompts as completions (at least one)")
    device = next(model.parameters()).device
    p_len = [len(p) for p in prompts]
    t_len = [len(c) for c in completions]
    if min(p_len) < 1:
        raise ValueError("every prompt needs at least one token (e.g. BOS) to predict the first completion token")
    t_max = max(max(t_len), 1)
    width = max(p + t for p, t in zip(p_len, t_len, strict=True))
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        row = list(p) + list(c)
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attn[i, : len(row)] = 1
    # Position k predicts token k+1: completion token t of row i is predicted at p_i + t - 1.
    lo = min(p_len) - 1
    hi = max(p + max(t, 1) - 1 for p, t in zip(p_len, t_len, strict=True))
    kwargs = {}
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = torch.arange(lo, hi, device=device)
    out = model(input_ids=ids.to(device), attention_mask=attn.to(device), use_cache=False, **kwargs)
    logits = out.logits
    if "logits_to_keep" not in kwargs:
        logits = logits[:, lo:hi]
    logits = logits.float() / temperature  # (N, K, V), K = hi - lo kept positions
    t_idx = torch.arange(t_max)
    pos = (torch.tensor(p_len)[:, None] - 1 - lo + t_idx[None, :]).clamp(max=hi - lo - 1).to(device)  # (N, T)
    targets = torch.zeros((n, t_max), dtype=torch.long)
    for i, c in enumerate(completions):
        if c:
            targets[i, : len(c)] = torch.tensor(list(c), dtype=torch.long)
    targets = targets.to(device)
    row_idx = torch.arange(n, device=device)[:, None]
    log_z = torch.logsumexp(logits, dim=-1)[row_idx, pos]  # (N, T)
    if restrictions is not None and any(restrictions):
        log_z = log_z.clone()
        for i, masks in enumerate(restrictions):
            for t, mask in masks.items():
                allowed = torch.tensor(mask.array[: logits.shape[-1]], device=device)
                log_z[i, t] = torch.logsumexp(logits[i, pos[i, t]][allowed], dim=-1)
    logp = logits[row_idx, pos, targets] - log_z  # (N, T)
    valid = (t_idx[None, :] < torch.tensor(t_len)[:, None]).to(device)
    return torch.where(valid, logp, torch.zeros_like(logp))
