"""Policy-gradient losses on token log-probabilities, with the aggregation explicit.

Shapes: ``logp``, ``old_logp``, ``mask``: (N, T) for N sequences of up to T tokens; ``adv``: (N,),
broadcast to every token of its sequence. Each loss returns per-token terms; `aggregate` turns
them into a scalar with a *global* normaliser (the whole step's counts, not the micro-batch's),
so splitting a step into micro-batches for gradient accumulation never changes the gradient.

.. math::

    \\text{clipped}:\\ \\ell_t = -\\min(\\rho_t A,\\ \\mathrm{clip}(\\rho_t, 1-\\epsilon_{lo}, 1+\\epsilon_{hi}) A),
    \\ \\rho_t = e^{\\log\\pi_\\theta - \\log\\pi_{old}} \\qquad
    \\text{reinforce}:\\ \\ell_t = -A \\log\\pi_\\theta \\ \\text{(no ratio, no clipping)}

    \\text{k3 KL}:\\ e^{\\log\\pi_{ref} - \\log\\pi_\\theta} - (\\log\\pi_{ref} - \\log\\pi_\\theta) - 1 \\ \\ge 0

Aggregations: ``token`` (sum over every token of the step / number of tokens: DAPO, BNPO),
``sequence`` (mean over each sequence's tokens, then mean over sequences: GRPO), ``constant``
(sum / (sequences * L), L the token limit: Dr.GRPO, no length bias).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Normaliser:
    """Counts over the whole optimisation step (all micro-batches)."""

    n_sequences: int
    n_tokens: int
    max_tokens: int  # L, for the "constant" aggregation


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, agg: str, norm: Normaliser) -> torch.Tensor:
    """Scalar loss from per-token terms (N, T) over ``mask`` (N, T) with the step's normaliser."""
    mask = mask.to(per_token.dtype)
    if agg == "token":
        return (per_token * mask).sum() / max(norm.n_tokens, 1)
    if agg == "sequence":
        lengths = mask.sum(dim=1).clamp(min=1)
        return ((per_token * mask).sum(dim=1) / lengths).sum() / max(norm.n_sequences, 1)
    if agg == "constant":
        return (per_token * mask).sum() / max(norm.n_sequences * norm.max_tokens, 1)
    raise ValueError(f"unknown aggregation {agg!r}; choose token, sequence or constant")


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, *, clip_low: float = 0.2, clip_high: float | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO/GRPO clipped-ratio terms (N, T) and the clipped indicator for logging."""
    clip_high = clip_low if clip_high is None else clip_high
    ratio = torch.exp(logp - old_logp)  # (N, T)
    a = adv[:, None]  # (N, 1)
    unclipped = ratio * a
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * a
    per_token = -torch.minimum(unclipped, clipped)
    return per_token, {"ratio": ratio.detach(), "clipped": (clipped < unclipped).detach()}


def reinforce(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, *, clip_low: float = 0.2, clip_high: float | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Ratio-free REINFORCE terms ``-A * log pi`` (N, T); ``old_logp`` and clipping are unused."""
    return -adv[:, None] * logp, {}


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi_theta || pi_ref) from samples of pi_theta; >= 0."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


LossFn = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
LOSSES: dict[str, LossFn] = {"clipped": clipped_surrogate, "reinforce": reinforce}


def get_loss(name: str) -> LossFn:
    """The loss registered as ``name`` (the error lists the valid names)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]
