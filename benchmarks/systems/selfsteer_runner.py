"""selfsteer: our `smc` running the task's program (`benchmarks.programs`) on the shared model."""

from __future__ import annotations

import math

from selfsteer.smc import smc
from selfsteer.smc.lm.transformers.backend import TransformersLM

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

    @property
    def lm(self) -> TransformersLM:
        return self.shared.lm

    def prepare(self, task: Task, seed: int):
        lm = self.lm
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


class SelfsteerUnpackedRunner(SelfsteerRunner):
    """The ablation of the CPU backend's packed linears: ``selfsteer`` on a second backend over
    the same model object with ``pack_linear=False`` (PyTorch's default float32 product), on the
    constrained tasks."""

    name = "selfsteer-unpacked"

    def __init__(self, shared):
        super().__init__(shared)
        self._lm = TransformersLM(shared.model, shared.tokenizer, name="transformers-unpacked", pack_linear=False)

    @property
    def lm(self) -> TransformersLM:
        return self._lm

    def supports(self, task: Task) -> str | None:
        if self.shared.lm.packed_linears is None:
            return "the shared backend packs no linear layers here (GPU or not float32): same as selfsteer"
        return None if task.constrained else "the ablation runs on the constrained tasks"
