"""Losses and aggregation: formulas, clipping behaviour, and micro-batch invariance."""

from __future__ import annotations

import pytest
import torch

from selfsteer.training.losses import (
    Normaliser,
    aggregate,
    clipped_surrogate,
    get_loss,
    kl_k3,
    reinforce,
)
from selfsteer.training.objectives.contract import split


def batch(seed=0, n=6, t=5):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(n, t, generator=g)
    old = logp + 0.3 * (torch.rand(n, t, generator=g) - 0.5)
    adv = torch.randn(n, generator=g)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = torch.arange(t)[None, :] < lengths[:, None]
    return logp, old, adv, mask


def test_aggregations_match_their_definitions():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    norm = Normaliser(n_sequences=2, n_tokens=4, max_tokens=3)
    assert aggregate(per_token, mask, "token", norm).item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert aggregate(per_token, mask, "sequence", norm).item() == pytest.approx((6 / 3 + 4 / 1) / 2)
    assert aggregate(per_token, mask, "constant", norm).item() == pytest.approx(10 / (2 * 3))
    with pytest.raises(ValueError, match="choose token, sequence or constant"):
        aggregate(per_token, mask, "mean", norm)


@pytest.mark.parametrize("agg", ["token", "sequence", "constant"])
@pytest.mark.parametrize("loss_name", ["clipped", "reinforce"])
def test_micro_batches_sum_to_the_full_batch_gradient(agg, loss_name):
    logp, old, adv, mask = batch()
    norm = Normaliser(len(adv), int(mask.sum()), mask.shape[1])
    fn = get_loss(loss_name)
    full = logp.clone().requires_grad_(True)
    aggregate(fn(full, old, adv)[0], mask, agg, norm).backward()
    parts = logp.clone().requires_grad_(True)
    total = 0.0
    for idx in split(list(range(len(adv))), 4):
        idx = torch.tensor(idx)
        total = total + aggregate(fn(parts[idx], old[idx], adv[idx])[0], mask[idx], agg, norm)
    total.backward()
    assert torch.allclose(full.grad, parts.grad, atol=1e-7)


def test_clipped_surrogate_at_ratio_one_is_minus_advantage_and_clips_its_gradient():
    adv = torch.tensor([1.0, -1.0])
    logp = torch.zeros(2, 1, requires_grad=True)
    per_token, info = clipped_surrogate(logp, torch.zeros(2, 1), adv)
    assert torch.allclose(per_token[:, 0], -adv)
    # ratio 1.5 > 1 + 0.2 with A > 0: the clipped branch is active, no gradient pushes it further
    logp2 = torch.log(torch.tensor([[1.5], [1.5]])).requires_grad_(True)
    per_token2, info2 = clipped_surrogate(logp2, torch.zeros(2, 1), adv)
    per_token2.sum().backward()
    assert logp2.grad[0, 0] == 0 and info2["clipped"][0, 0]
    assert logp2.grad[1, 0] != 0 and not info2["clipped"][1, 0]  # A < 0: the unclipped (larger loss) branch
    assert torch.allclose(per_token2[0], torch.tensor([-1.2]))


def test_asymmetric_clipping_uses_clip_high():
    logp = torch.log(torch.tensor([[1.25]]))
    per_token, _ = clipped_surrogate(logp, torch.zeros(1, 1), torch.tensor([1.0]), clip_low=0.2, clip_high=0.28)
    assert per_token.item() == pytest.approx(-1.25)


def test_reinforce_has_no_ratio_term():
    logp, old, adv, mask = batch(1)
    a, _ = reinforce(logp, old, adv)
    b, _ = reinforce(logp, old + 5.0, adv)  # the behaviour log-probs do not enter
    assert torch.equal(a, b)
    assert torch.allclose(a, -adv[:, None] * logp)


def test_k3_kl_is_nonnegative_and_zero_only_at_equality():
    logp = torch.linspace(-3, 0, 20)
    assert torch.all(kl_k3(logp, logp) == 0)
    other = logp.flip(0)
    kl = kl_k3(logp, other)
    assert torch.all(kl >= 0) and torch.all((kl > 0) == (logp != other))


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"choose one of \['clipped', 'reinforce'\]"):
        get_loss("ppo")
