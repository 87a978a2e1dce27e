"""Shared fixtures: the bundled model is loaded once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tests never reach a model hub


@pytest.fixture(scope="session")
def lm():
    """The bundled SmolLM2-135M-Instruct on the transformers backend (CPU)."""
    from selfsteer.smc import load_lm

    return load_lm()


@pytest.fixture
def exact_lm():
    """A tiny exact LM whose continuations can be enumerated."""
    from selfsteer.smc import ExactLM

    return ExactLM(("a", "b", " c"), max_len=4, seed=3)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matrices: one torch thread avoids contention on a shared CPU (module-wide)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shared(lm, one_thread):
    """The session's model as the benchmarks' `SharedModel`, run with one torch thread: on a busy
    machine more threads than free cores make every forward pass many times slower."""
    from benchmarks.environment import SharedModel

    return SharedModel(lm, str(lm.device))
