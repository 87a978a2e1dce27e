"""During a run the cycle collector skips the objects that existed before it (`smc.lm.transformers.heap`), and
afterwards everything is back as it was; cycles made during the run are still collected."""

import gc
import weakref

import pytest

from selfsteer.smc import Model, smc, smc_steer
from selfsteer.smc.lm.transformers.heap import collect_new_objects_only


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cycle collector frees it


class Probe(Model):
    """Records what the collector looks like from inside each step; finishes after three steps."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[int, bool]] = []
        self.n = 0

    async def step(self):
        cycle = Node()
        ref = weakref.ref(cycle)
        del cycle
        gc.collect()
        self.seen.append((gc.get_freeze_count(), ref() is None))
        self.n += 1
        if self.n == 3:
            self.finish(self.seen)


@pytest.fixture
def nothing_frozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.parametrize("engine", [smc, smc_steer])
def test_a_run_freezes_older_objects_and_gives_them_back(engine, nothing_frozen):
    older = len(gc.get_objects())
    result = engine(Probe(), 4, seed=0)
    for particle in result.particles:
        for frozen, collected in particle.output:
            assert frozen >= older // 2  # the loaded libraries' objects were set aside
            assert collected  # a cycle made during the run was still collected during it
    assert gc.get_freeze_count() == 0


def test_an_existing_freeze_is_left_alone(nothing_frozen):
    gc.freeze()
    before = gc.get_freeze_count()
    result = smc(Probe(), 2, seed=0)
    seen = [step for p in result.particles for step in p.output]
    assert all(frozen <= before and collected for frozen, collected in seen)  # nothing more frozen
    # the application's freeze (e.g. before a fork) holds: only objects freed by refcounting left it
    assert before - 100 < gc.get_freeze_count() <= before


def test_nothing_changes_while_the_collector_is_disabled(nothing_frozen):
    gc.disable()
    try:
        with collect_new_objects_only():
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_objects_are_given_back_when_the_block_raises(nothing_frozen):
    with pytest.raises(RuntimeError), collect_new_objects_only():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0
