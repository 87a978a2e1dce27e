"""One token by adaptive weighted rejection sampling (AWRS, arXiv 2504.05410), on genlm-control.

``awrs_token(rng, log_probs, accept)`` targets the measure ``p(t) * 1[accept(t)]`` where
``p = exp(log_probs)``. It visits tokens in the order of a sample without replacement from p
(Gumbel keys drawn from ``rng``) and returns the first accepted one, which is an exact draw from
p restricted to the accepted set, with genlm's unbiased estimate of that set's mass:

    (t, log_w) = await awrs_token(rng, log_probs, accept)
    E[exp(log_w) f(t)] = sum_t p(t) 1[accept(t)] f(t)        for every f

So it checks a handful of tokens instead of the whole vocabulary; the price is a noisy weight.
``log_w = -inf`` cannot happen: when no token is accepted it raises `ZeroProbability`.

The estimator is genlm-control's ``geometric_awrs`` (two accepts, no cap on rejections); this
module feeds it our log-probabilities and random stream. We do not use genlm's other estimator,
``recursive_awrs``, which genlm picks when no token has probability >= 2/3: it gives up (weight
0) once the rejected tokens hold 1 - 1e-5 of the mass, so wherever the LM puts less than 1e-5 on
the viable tokens (common for a chat model asked for JSON or a date) it would kill every particle,
a bias in the evidence. ``geometric_awrs`` tracks the rejected mass up to float precision
(viable mass down to about 1e-15). Where the viable mass is small the walk checks many tokens;
its cost is then that of a full scan.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import numpy as np

from ..distributions import ZeroProbability
from ..weights import logsumexp
from . import genlm_adapter


async def awrs_token(
    rng: np.random.Generator,
    log_probs: np.ndarray,
    accept: Callable[[int], Awaitable[bool]],
) -> tuple[int, float]:
    """Draw a token id accepted by ``accept``, properly weighted for ``p * 1[accept]``."""
    import torch  # genlm-control's AWRS works on torch tensors; both load on first use

    log_z = logsumexp(log_probs)  # numpy: faster than torch on one (V,) row on a busy CPU
    if log_z == -math.inf:
        raise ZeroProbability("every candidate token has probability zero")
    log_p = torch.from_numpy(np.asarray(log_probs, dtype=np.float64) - log_z)  # a fresh array: AWRS edits it
    seen: dict[int, bool] = {}

    async def checked(token: int) -> bool:
        if token not in seen:
            seen[token] = bool(await accept(int(token)))
        return seen[token]

    def gumbel_keys(lp: torch.Tensor) -> torch.Tensor:  # -log(Exp(1)) is Gumbel(0, 1), and cheaper
        return lp + torch.from_numpy(-np.log(rng.standard_exponential(lp.shape[0])))

    token, log_w, _ = await genlm_adapter.geometric_awrs()(
        logps=log_p, toks=range(len(log_probs)), accept=checked, make_keys=gumbel_keys, rng=rng,
        max_rejects=math.inf, max_accepts=2,
    )
    if log_w == -math.inf:
        raise ZeroProbability("no token satisfies the constraint here")
    return int(token), float(log_w) + log_z
