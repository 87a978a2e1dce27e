"""Batched token draws on the model's device: one inverse-CDF draw per row of logits.

`draw_tokens` is what the transformers backend samples with, for chunks and for single tokens
alike, so a sampling step reads back only three numbers per row (the id, its log-probability and
the log-mass of the allowed set) instead of a vocabulary of log-probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .kv import upload

BLOCK = 256  # entries per block in the two-level inverse-CDF search


def draw_tokens(
    logits: torch.Tensor, temperatures: Sequence[float], log_mask: torch.Tensor | None, uniforms: torch.Tensor
) -> list[tuple[int, float, float]]:
    """Draw row i's token from ``softmax(logits[i] / temperatures[i])`` restricted to the ids where
    ``log_mask`` (float, 0 on allowed ids and ``-inf`` on excluded ones, ``(rows, V)`` or ``(1, V)``;
    None: nothing excluded) is 0, at the point ``uniforms[i]`` (float64 in [0, 1), on the device)
    of the restricted CDF.

    Returns, per row, ``(id, log p(id), log p(allowed set))`` with ``log p`` the tempered,
    unrestricted log-probability. A row whose allowed set has no mass gets mass ``-inf`` (and an
    arbitrary id). The CDF is searched in two levels (sums of blocks of `BLOCK` entries, then
    within the chosen block in float64), so a draw costs a few vectorised passes over the logits
    and no sequential scan of the vocabulary. Nothing is read back but the one copy of the results.
    """
    rows, vocab = logits.shape
    device = logits.device
    z = logits.float()
    if any(t != 1.0 for t in temperatures):
        z = z / upload(torch.tensor(temperatures, dtype=torch.float32), device)[:, None]
    lp = torch.log_softmax(z, -1)
    if log_mask is None:
        top = torch.zeros(rows, device=device)
        weights = lp.exp()
    else:
        allowed = lp + log_mask
        top = allowed.amax(-1)
        top = torch.where(torch.isfinite(top), top, 0.0)  # a row with no mass: its weights are all 0
        weights = allowed.sub_(top[:, None]).exp_()
    if vocab % BLOCK:
        weights = F.pad(weights, (0, BLOCK - vocab % BLOCK))
    blocks = weights.view(rows, -1, BLOCK)
    cdf = blocks.sum(-1).double().cumsum(-1)
    total = cdf[:, -1:].contiguous()
    x = uniforms[:, None] * total
    # the first block whose CDF passes x; rounding can put x at the top: the last block with mass
    b = torch.minimum(torch.searchsorted(cdf, x, right=True), torch.searchsorted(cdf, total))[:, 0]
    within = blocks[torch.arange(rows, device=device), b].double().cumsum(-1)
    below = torch.where(b > 0, cdf.gather(1, (b - 1).clamp(min=0)[:, None])[:, 0], 0.0)
    j = torch.searchsorted(within, (x[:, 0] - below)[:, None], right=True)
    j = torch.minimum(j, torch.searchsorted(within, within[:, -1:].contiguous()))[:, 0]
    tok = (b * BLOCK + j).clamp(max=vocab - 1)
    tok_lp = lp.gather(1, tok[:, None])[:, 0]
    mass = top.double() + torch.log(total[:, 0])
    drawn = torch.stack([tok.double(), tok_lp.double(), mass], dim=1).cpu()  # float64 holds ids exactly
    return [(int(t), t_lp, m) for t, t_lp, m in drawn.tolist()]
