"""AsymRE: the shifted baseline and the tabular bandit's phase transition, with our REINFORCE loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsteer.training.losses import Normaliser, aggregate, reinforce
from selfsteer.training.objectives.asymre import asymre_advantages

REWARDS = np.array([1.0, 0.8, 0.6])  # a 3-arm bandit; every arm pays more than the shifted baseline below


def bandit_run(delta: float, steps: int = 4000, lr: float = 0.5) -> np.ndarray:
    """Expected-gradient ascent on tabular softmax logits with a *fixed* uniform behaviour policy μ.

    A group is the three arms once each (an exact sample of uniform μ), so the group mean is V^μ and
    the REINFORCE loss on it, averaged over the group, is exactly E_μ[log π(y)(r(y) - V)].
    """
    logits = torch.zeros(3, requires_grad=True)
    adv = torch.tensor(asymre_advantages(REWARDS[None, :], delta)[0], dtype=torch.float32)
    arms = torch.arange(3)
    mask = torch.ones(3, 1, dtype=torch.bool)
    norm = Normaliser(3, 3, 1)
    for _ in range(steps):
        logp = torch.log_softmax(logits, 0)[arms][:, None]  # (3, 1): one-token "sequences"
        loss = aggregate(reinforce(logp, logp.detach(), adv)[0], mask, "sequence", norm)
        (grad,) = torch.autograd.grad(loss, logits)
        with torch.no_grad():
            logits -= lr * grad
    return torch.softmax(logits, 0).detach().numpy()


def test_baseline_below_the_behaviour_value_keeps_support():
    v_mu = REWARDS.mean()
    delta = -0.3
    pi = bandit_run(delta)
    v = v_mu + delta
    fixed_point = (REWARDS - v) / (3 * (v_mu - v))  # π*(y) = μ(y)(r(y) - V) / (V^μ - V)
    assert np.all(pi > 0.05)
    assert np.allclose(pi, fixed_point, atol=0.01)


def test_baseline_above_the_behaviour_value_collapses_to_one_arm():
    pi = bandit_run(+0.1)
    assert pi.max() > 0.99 and int(np.argmax(pi)) == 0


def test_on_policy_gradient_does_not_depend_on_the_baseline():
    logits = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    grads = []
    for v in (0.0, 0.7, -2.0):
        pi = torch.softmax(logits, 0)
        # exact expectation over y ~ π (weights detached): sum_y π(y) log π(y) (r(y) - V)
        loss = -(pi.detach() * torch.log_softmax(logits, 0) * torch.tensor(REWARDS - v, dtype=torch.float32)).sum()
        grads.append(torch.autograd.grad(loss, logits)[0])
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and torch.allclose(grads[0], grads[2], atol=1e-6)


@pytest.mark.parametrize("delta", [0.0, -0.1, 0.25])
def test_advantages_sum_to_minus_g_delta(delta):
    r = np.array([[1.0, 0.0, 0.0, 1.0, 1.0], [0.0] * 5])
    adv = asymre_advantages(r, delta)
    assert np.allclose(adv.sum(axis=1), -5 * delta)
    assert np.allclose(adv.mean(axis=1), -delta)
