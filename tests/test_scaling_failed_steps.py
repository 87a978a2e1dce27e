"""Failed-step fraction of SMC search trees: hand-built traces with known answers, and real runs."""

import math

import numpy as np
import pytest

from selfsteer.smc import Bernoulli, Model, smc, smc_steer
from selfsteer.smc.scaling import failed_step_fraction, trust


def particle(finished=False, alive=True):
    return {"text": "", "log_weight": 0.0 if alive else None, "finished": finished, "alive": alive}


def step(particles, ancestors=None):
    return {"step": 0, "particles": particles, "ess": 1.0, "resampled": ancestors is not None,
            "ancestors": ancestors}


def trace(steps):
    return {"version": 1, "algorithm": "smc", "n_particles": len(steps[0]["particles"]), "meta": {},
            "steps": steps, "final": None}


def test_a_run_where_every_lineage_survives_has_no_failed_steps():
    t = trace([step([particle(), particle()]), step([particle(True), particle(True)])])
    assert failed_step_fraction(t) == 0.0


def test_a_dead_particle_fails_all_its_steps():
    # particle 1 works two steps and dies; particle 0 works two steps and survives
    t = trace([step([particle(), particle()]), step([particle(True), particle(True, alive=False)])])
    assert failed_step_fraction(t) == pytest.approx(2 / 4)


def test_resampling_abandons_branches_and_finished_particles_do_no_work():
    # step 1: particle 0 finishes; 1 and 2 go on. Resampling keeps 0, and 1 twice (2 is dropped).
    # step 2: only the two copies of 1 work; both finish alive.
    t = trace([
        step([particle(True), particle(), particle()], ancestors=[0, 1, 1]),
        step([particle(True), particle(True), particle(True)]),
    ])
    # work: 3 particle-steps at step 1, 2 at step 2; failed: particle 2's step 1
    assert failed_step_fraction(t) == pytest.approx(1 / 5)
    # removing the failed branch (particle 2) lowers the fraction to zero
    pruned = trace([step([particle(True), particle()], ancestors=[0, 1]), step([particle(True), particle(True)])])
    assert failed_step_fraction(pruned) == 0.0


def test_nothing_surviving_fails_everything_and_no_steps_is_nan():
    t = trace([step([particle(True, alive=False), particle(True, alive=False)])])
    assert failed_step_fraction(t) == 1.0
    assert math.isnan(failed_step_fraction({"algorithm": "smc", "steps": []}))


class Coin(Model):
    """Flip until heads; tails three times in a row kills the particle."""

    def __init__(self):
        super().__init__()
        self.tails = 0

    async def step(self):
        if await self.sample(Bernoulli(0.5)):
            self.finish(self.tails)
        else:
            self.tails += 1
            self.condition(self.tails < 3)


def test_real_runs_give_a_fraction_in_the_unit_interval():
    def embed(texts):  # a stand-in embedder: the trust report's FSF does not depend on it
        return np.array([[1.0, float(t)] for t in texts])

    fractions = []
    for seed in range(10):
        r = smc(Coin(), 8, seed=seed, ess_threshold=0.9, record=True)
        fsf = failed_step_fraction(r.trace)
        assert 0.0 <= fsf <= 1.0
        if r.n_resamples == 0:
            assert (fsf > 0) == any(not p.alive for p in r.particles)
        assert trust(r, embed).failed_step_fraction == fsf
        fractions.append(fsf)
    assert max(fractions) > 0
    assert trust(smc(Coin(), 4, seed=0), embed).failed_step_fraction is None  # not recorded


def test_steer_traces_are_refused():
    r = smc_steer(Coin(), 3, 2, seed=0, record=True)
    with pytest.raises(ValueError, match="trace of smc"):
        failed_step_fraction(r.trace)
