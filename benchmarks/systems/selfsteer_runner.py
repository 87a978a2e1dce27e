"""selfsteer: our `smc` running the task's program (`benchmarks.programs`) on the shared model."""

from __future__ import annotations

import math

from selfsteer.smc import smc

from ..programs import program_for
from ..tasks import Task
from .base import Outcome, Runner


class SelfsteerRunner(Runner):
    """Token-level SMC (``ess_threshold=0.5``, multinomial resampling).

    The prompt cache is cleared before every run, so each run pays for its prompt's prefill like
    every other system does.
    """

    name = "selfsteer"
    chunked = False

    def prepare(self, task: Task, seed: int):
        lm = self.shared.lm
        program = program_for(lm, task, chunked=self.chunked)

        def job() -> Outcome:
            lm.prompt_cache.clear()
            forwards, forward_tokens = lm.n_forward, lm.n_forward_tokens
            result = smc(program, task.n_particles, seed=seed, ess_threshold=0.5, resampling="multinomial")
            ps = result.particles
            return Outcome(
                texts=[p.output if p.finished else p.text for p in ps],
                kept=[p.finished and math.isfinite(p.log_weight) for p in ps],
                n_tokens=sum(p.n_tokens for p in ps),
                extra={
                    "status": str(result.status), "n_steps": result.n_steps, "n_resamples": result.n_resamples,
                    "log_ml": result.log_ml if math.isfinite(result.log_ml) else str(result.log_ml),
                    "n_forward": lm.n_forward - forwards, "n_forward_tokens": lm.n_forward_tokens - forward_tokens,
                },
            )

        return job


class SelfsteerChunkRunner(SelfsteerRunner):
    """The free task as one fused chunk per particle (`TextModel.extend`), the fastest selfsteer path."""

    name = "selfsteer-chunk"
    chunked = True

    def supports(self, task: Task) -> str | None:
        return None if task.constraint == "free" else "the chunk variant only applies to the free task"
