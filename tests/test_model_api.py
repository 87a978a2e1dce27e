"""Edge cases of the program API: zero probability, caps, limits, bad input, results."""

import asyncio
import json
import math

import pytest

from selfsteer.smc import (
    Bernoulli,
    Categorical,
    ExactLM,
    LMContext,
    Model,
    ProgramError,
    Status,
    smc,
    smc_async,
    smc_steer,
)


class Coin(Model):
    """Flip until heads; observations can make some particles impossible."""

    def __init__(self, kill_tails: bool = False):
        super().__init__()
        self.kill_tails = kill_tails
        self.flips = 0

    async def step(self):
        heads = await self.sample(Bernoulli(0.5))
        self.flips += 1
        if self.kill_tails:
            self.condition(heads)
        if heads:
            self.finish(self.flips)


def test_zero_probability_kills_one_particle_not_the_run():
    r = smc(Coin(kill_tails=True), 16, seed=0, ess_threshold=0.0)
    dead = [p for p in r.particles if not p.alive]
    assert 0 < len(dead) < 16
    assert r.status == Status.COMPLETED
    assert list(r.posterior) == [1] and math.isclose(r.posterior[1], 1.0)
    assert math.isclose(math.exp(r.log_ml), (16 - len(dead)) / 16)


class Impossible(Model):
    async def step(self):
        await self.observe(Categorical([1.0, 0.0]), 1)
        self.finish("never")


class EmptyMask(Model):
    def __init__(self, lm):
        super().__init__()
        self.ctx = LMContext(lm, "a")

    async def step(self):
        nothing = self.ctx.lm.masks.containing("zzz")
        await self.observe(self.ctx.mask_dist(nothing), True)
        await self.sample(self.ctx.next_token())


@pytest.mark.parametrize("make", [Impossible, lambda: EmptyMask(ExactLM())])
def test_all_dead_is_a_status(make):
    r = smc(make(), 4, seed=0)
    assert r.status == Status.ALL_DEAD
    assert r.log_ml == -math.inf and r.posterior == {} and r.best is None
    json.loads(r.to_json())


class Forever(Model):
    async def step(self):
        await self.sample(Bernoulli(0.5))


def test_step_cap():
    r = smc(Forever(), 4, max_steps=7, seed=0)
    assert r.status == Status.STEP_CAP and r.n_steps == 7 and r.posterior == {}


class Slow(Model):
    async def step(self):
        await asyncio.sleep(0.05)


def test_time_limit():
    r = smc(Slow(), 3, time_limit=0.3, seed=0)
    assert r.status == Status.TIMEOUT
    assert r.timings["total_s"] < 2.0
    r = smc_steer(Slow(), 3, 2, time_limit=0.3, seed=0)
    assert r.status == Status.TIMEOUT


class Checked(Model):
    async def step(self):
        self.finish(await self.sample(Categorical([0.5, 0.5], values=["good", "bad"])))

    def check(self, output):
        return output == "good"


def test_check_kills_failing_outputs():
    r = smc(Checked(), 32, seed=1, ess_threshold=0.0)
    assert list(r.posterior) == ["good"]
    assert set(r.check_passed) == {True, False}


class NoStep(Model):
    pass


class SyncStep(Model):
    def step(self):  # deliberately not async
        self.finish(1)


class NoSuperInit(Model):
    def __init__(self):
        pass

    async def step(self):
        self.finish(1)


class Buggy(Model):
    async def step(self):
        raise KeyError("oops")


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: smc(NoStep(), 2), TypeError, "async def step"),
        (lambda: smc(SyncStep(), 2), TypeError, "async def step"),
        (lambda: smc(NoSuperInit(), 2), TypeError, "super().__init__()"),
        (lambda: smc(Coin(), 0), ValueError, "n_particles"),
        (lambda: smc(Coin(), 2, resampling="magic"), ValueError, "stratified"),
        (lambda: smc(Coin(), 2, ess_threshold=1.5), ValueError, "ess_threshold"),
        (lambda: smc(Coin(), 2, max_steps=0), ValueError, "max_steps"),
        (lambda: smc(Coin(), 2, time_limit=-1), ValueError, "time_limit"),
        (lambda: smc_steer(Coin(), 2, 0), ValueError, "n_beam"),
        (lambda: smc(object(), 2), TypeError, "Model subclass"),
        (lambda: smc(Buggy(), 2), ProgramError, "KeyError"),
    ],
)
def test_bad_input_gets_clear_errors(call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_smc_inside_a_running_loop_points_to_smc_async():
    async def inside():
        with pytest.raises(RuntimeError, match="smc_async"):
            smc(Coin(), 2)
        return await smc_async(Coin(), 2, seed=0)

    assert asyncio.run(inside()).status == Status.COMPLETED


@pytest.mark.parametrize(("call", "name"), [(lambda: smc(Coin(), 2), "smc"),
                                            (lambda: smc_steer(Coin(), 2), "smc_steer")])
def test_the_running_loop_error_names_the_caller_and_its_async_twin(call, name):
    async def inside():
        with pytest.raises(RuntimeError, match=rf"^{name}\(\) was called .* `await {name}_async\(\.\.\.\)`"):
            call()

    asyncio.run(inside())


def test_result_json_and_draws():
    r = smc(Coin(), 8, seed=2, record=True)
    data = json.loads(r.to_json())
    assert data["status"] == "completed" and len(data["particles"]) == 8
    assert abs(sum(p["probability"] for p in data["posterior"]) - 1) < 1e-9
    assert r.sample(0) in r.posterior
    assert r.trace.data["final"]["status"] == "completed"
    assert len(r.trace.data["steps"]) == r.n_steps


class ListOutput(Model):
    async def step(self):
        self.finish([1, 2])


def test_unhashable_outputs_are_merged_by_value():
    r = smc(ListOutput(), 4, seed=0)
    assert len(r.posterior) == 1 and math.isclose(sum(r.posterior.values()), 1.0)


class Endless(Model):
    """Never finishes by itself: a step yields to the event loop and does nothing."""

    async def step(self):
        await asyncio.sleep(0.01)


def test_cancelling_smc_async_raises_as_asyncio_expects():
    async def main():
        with pytest.raises(TimeoutError):  # wait_for cancels the run and sees the cancellation
            await asyncio.wait_for(smc_async(Endless(), 4, seed=0), timeout=0.2)
        task = asyncio.ensure_future(smc_async(Endless(), 4, seed=0))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
