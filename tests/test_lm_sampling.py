"""`draw_tokens`: the transformers backend's batched inverse-CDF draw, checked against float64 numpy."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsteer.smc.lm.transformers.sampling import BLOCK, draw_tokens


def log_mask(bad) -> torch.Tensor:
    return torch.zeros(bad.shape).masked_fill(torch.as_tensor(bad), -math.inf)


def u64(*u) -> torch.Tensor:
    return torch.tensor(u, dtype=torch.float64)


def reference(z: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """float64 log-probabilities, the restricted CDF and the allowed set's log-mass of one row."""
    lp = z - np.logaddexp.reduce(z)
    p = np.where(bad, 0.0, np.exp(lp))
    mass = math.log(p.sum()) if p.sum() > 0 else -math.inf
    return lp, np.cumsum(p) / p.sum() if p.sum() > 0 else p, mass


@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(1, 4),
    vocab=st.sampled_from([1, 5, BLOCK - 1, BLOCK, BLOCK + 3, 3 * BLOCK + 17]),
    temperature=st.sampled_from([0.25, 1.0, 3.0]),
    density=st.sampled_from([0.0, 0.01, 0.5, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_each_row_is_the_inverse_cdf_of_its_restricted_distribution(rows, vocab, temperature, density, seed):
    g = np.random.default_rng(seed)
    logits = (g.normal(size=(rows, vocab)) * 4).astype(np.float32)
    bad = g.random((rows, vocab)) < density
    bad[0] = False  # one row with nothing excluded
    u = g.random(rows)
    drawn = draw_tokens(torch.from_numpy(logits), [temperature] * rows, log_mask(bad), torch.from_numpy(u))
    for i, (tok, tok_lp, mass) in enumerate(drawn):
        lp, cdf, want_mass = reference(logits[i].astype(np.float64) / temperature, bad[i])
        if want_mass == -math.inf:
            assert mass == -math.inf
            continue
        assert 0 <= tok < vocab and not bad[i, tok]
        below = cdf[tok - 1] if tok else 0.0
        assert below - 1e-6 <= u[i] <= cdf[tok] + 1e-6  # u falls in the token's own CDF interval
        assert math.isclose(tok_lp, lp[tok], abs_tol=1e-4)
        assert math.isclose(mass, want_mass, abs_tol=1e-4)


def test_uniforms_at_both_ends_give_the_first_and_last_allowed_tokens():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0, 0.0]])
    bad = torch.tensor([[True, False, False, True, True], [False, False, True, False, True]])
    for u, want in ((0.0, [1, 0]), (1.0, [2, 3]), (1 - 1e-12, [2, 3])):  # u = 1.0: x at the CDF's top
        drawn = draw_tokens(logits, [1.0, 1.0], log_mask(bad), u64(u, u))
        assert [t for t, _, _ in drawn] == want


def test_draws_follow_the_restricted_distribution_across_blocks():
    g = np.random.default_rng(0)
    vocab = 2 * BLOCK + 9
    logits = torch.full((1, vocab), -30.0)
    heavy = [3, BLOCK - 1, BLOCK, 2 * BLOCK + 8]  # at block edges and in the ragged last block
    logits[0, heavy] = torch.tensor([0.0, 1.0, 0.5, -0.5])
    bad = torch.zeros(1, vocab, dtype=torch.bool)
    bad[0, BLOCK] = True
    n = 4000
    u = torch.from_numpy(g.random(n))
    counts = np.bincount([draw_tokens(logits, [1.0], log_mask(bad), u[k : k + 1])[0][0] for k in range(n)], minlength=vocab)
    p = torch.softmax(logits[0].masked_fill(bad[0], -math.inf), 0).numpy()
    assert counts[BLOCK] == 0 and np.abs(counts / n - p).max() < 0.03


def test_a_row_whose_allowed_set_has_no_mass_is_flagged_and_the_others_are_drawn():
    logits = torch.tensor([[0.0, float("-inf"), 1.0], [0.0, 0.0, 0.0]])
    bad = torch.tensor([[True, False, True], [False, False, False]])
    (_, _, dead), (tok, _, mass) = draw_tokens(logits, [1.0, 1.0], log_mask(bad), u64(0.5, 0.5))
    assert dead == -math.inf and tok == 1 and abs(mass) < 1e-6


def test_one_mask_row_applies_to_every_row():
    logits = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    drawn = draw_tokens(logits, [1.0, 1.0], log_mask(np.array([[False, True, False]])), u64(0.99, 0.01))
    assert [t for t, _, _ in drawn] == [2, 0]
