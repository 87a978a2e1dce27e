"""Semantic isotropy: exact values, invariances, and the bundled MiniLM embedder."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selfsteer.smc.scaling import isotropy_trust, semantic_isotropy

vectors = arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(2, 5)),
                 elements=st.floats(-3, 3, allow_nan=False)).filter(
    lambda a: np.all(np.linalg.norm(a, axis=1) > 1e-2))


@pytest.mark.parametrize("n", [1, 2, 5, 9])
def test_identical_responses_give_zero(n):
    e = np.tile(np.array([[0.3, -1.2, 2.0]]), (n, 1)) * np.arange(1, n + 1)[:, None]  # lengths differ
    assert semantic_isotropy(e) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("n", [2, 3, 8])
def test_orthonormal_responses_give_log_n(n):
    q, _ = np.linalg.qr(np.random.default_rng(n).normal(size=(16, n)))
    assert semantic_isotropy(q.T) == pytest.approx(math.log(n), abs=1e-9)
    assert isotropy_trust(math.log(n), n) == pytest.approx(0.0)


@given(st.floats(0.0, math.pi))
def test_two_responses_match_the_closed_form(angle):
    e = np.array([[1.0, 0.0], [math.cos(angle), math.sin(angle)]])
    lam = np.array([(1 + math.cos(angle)) / 2, (1 - math.cos(angle)) / 2])
    lam = lam[lam > 1e-12]
    assert semantic_isotropy(e) == pytest.approx(float(-(lam * np.log(lam)).sum()), abs=1e-7)


@settings(max_examples=50)
@given(vectors, st.integers(0, 2**31))
def test_invariant_to_scale_order_and_rotation(e, seed):
    rng = np.random.default_rng(seed)
    base = semantic_isotropy(e)
    assert 0.0 <= base <= math.log(len(e)) + 1e-9
    scaled = e * rng.uniform(0.1, 10, size=(len(e), 1))
    rotation, _ = np.linalg.qr(rng.normal(size=(e.shape[1], e.shape[1])))
    assert semantic_isotropy(scaled) == pytest.approx(base, abs=1e-7)
    assert semantic_isotropy(e[rng.permutation(len(e))]) == pytest.approx(base, abs=1e-7)
    assert semantic_isotropy(e @ rotation) == pytest.approx(base, abs=1e-7)


def test_weights_generalise_the_uniform_case():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 4)))
    e = q.T
    assert semantic_isotropy(e, np.ones(4)) == pytest.approx(semantic_isotropy(e))
    assert semantic_isotropy(e, np.array([1.0, 0, 0, 0])) == pytest.approx(0.0, abs=1e-12)
    w = np.array([0.5, 0.5, 0.0, 0.0])
    assert semantic_isotropy(e, w) == pytest.approx(math.log(2))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="no direction"):
        semantic_isotropy(np.array([[0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="2-d"):
        semantic_isotropy(np.ones(3))
    with pytest.raises(ValueError, match="weights"):
        semantic_isotropy(np.eye(2), np.array([-1.0, 2.0]))
    assert math.isnan(isotropy_trust(0.0, 1))


def test_minilm_paraphrases_are_less_isotropic_than_unrelated_answers():
    from selfsteer.smc.scaling import load_embedder

    embed = load_embedder()
    same = ["The capital of France is Paris.", "Paris is the capital of France.",
            "France's capital city is Paris.", "It is Paris, the French capital."]
    mixed = ["The capital of France is Paris.", "Photosynthesis turns light into sugar.",
             "The stock market fell on Monday.", "My cat sleeps all afternoon."]
    e_same, e_mixed = embed(same), embed(mixed)
    assert e_same.shape == (4, 384)
    assert np.allclose(np.linalg.norm(e_same, axis=1), 1.0, atol=1e-5)
    assert semantic_isotropy(e_same) < semantic_isotropy(e_mixed) - 0.3
