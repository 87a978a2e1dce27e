"""KV blocks are freed by reference counting as soon as no handle needs them (`smc.lm.transformers.kv`).

Resampling gathers the surviving rows into a new block; the old block must then go at once, not
whenever Python's cycle collector runs (on a GPU, a dead block is device memory). The run below
resamples at every step with the cycle collector switched off, on the tiny random Llama with the
bundled tokenizer, and counts the blocks alive after each step.
"""

import gc

from tiny_lm import fixed_tokens, tiny_lm

from selfsteer.smc import inference, smc
from selfsteer.smc.lm.transformers.kv import Block

LM = tiny_lm(seed=5)


def live_blocks(older: set[int] = frozenset()) -> list[Block]:
    """Blocks alive now, leaving out those in ``older`` (ids of blocks other tests still hold)."""
    return [o for o in gc.get_objects() if isinstance(o, Block) and id(o) not in older]


def test_a_resampled_block_is_freed_at_once(monkeypatch):
    alive: list[int] = []
    step = inference.step_particles

    async def counted(particles, deadline):
        done = await step(particles, deadline)
        alive.append(len(live_blocks(older)))
        return done

    monkeypatch.setattr(inference, "step_particles", counted)
    gc.collect()
    gc.disable()
    older = {id(b) for b in live_blocks()}
    try:
        result = smc(fixed_tokens(LM, 12), 16, seed=0, ess_threshold=1.0)
        assert result.n_resamples >= 8  # every resample gathered a new block
        assert max(alive) <= 2, alive  # the block in use, and at most the one being replaced
        assert len(live_blocks(older)) == 1  # the finished particles' block
        del result
        assert live_blocks(older) == []  # nothing waits for the cycle collector
    finally:
        gc.enable()
