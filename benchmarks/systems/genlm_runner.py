"""genlm-control 0.4: SMC with adaptive weighted rejection sampling (AWRS) on a `PromptedLLM`.

The LLM potential wraps the shared model through genlm-backend's `AsyncTransformer` (batch size
set to the number of particles, so a full step's queries go out as one batch). Its prompt KV is
cached at the start of each run (`cache_kv`, the documented fast path) and every cache is cleared
between runs. Constraints, each a Boolean potential that AWRS checks on sampled tokens:

- no-e: ``BoolFSA.from_regex("[^eE]*")`` coerced from bytes onto the LLM's tokens;
- regex: ``BoolFSA.from_regex(task.pattern)``, coerced the same way (EOS only after a full match);
- free (EOS disallowed): `NoEndOfSequence`, which accepts every prefix and rejects completion.

Sequences end through ``terminate_when`` (the token budget, or sentence-final punctuation for a
sentence task), which
appends EOS without a weight correction, as the other systems stop; ``max_tokens`` is one more
than the budget so the sampler never forces EOS itself.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np

from ..tasks import Task, is_sentence_end
from .base import Outcome, Runner


def no_end_of_sequence(vocabulary):
    """A Boolean genlm `Potential` over ``vocabulary`` that forbids ending: prefix 0, complete -inf."""
    from genlm.control import Potential

    class NoEndOfSequence(Potential):
        async def prefix(self, context):
            return 0.0

        async def complete(self, context):
            return -math.inf

    return NoEndOfSequence(vocabulary)


def context_bytes(context) -> bytes:
    from genlm.control import EOS

    return b"".join(t.byte_string for t in context if t is not EOS)


class GenlmRunner(Runner):
    name = "genlm-control"

    def __init__(self, shared):
        super().__init__(shared)
        from genlm.backend.llm import AsyncTransformer
        from genlm.control import PromptedLLM

        self.backend = AsyncTransformer(shared.model, shared.tokenizer)
        eos_bytes = [shared.tokenizer.convert_ids_to_tokens(i).encode() for i in shared.eos_ids]
        self.llm = PromptedLLM(self.backend, eos_byte_strings=eos_bytes)
        self._conditions: dict[tuple, object] = {}

    def _condition(self, task: Task, llm):
        from genlm.control import BoolFSA

        key = (task.constraint, task.pattern, tuple(llm.prompt_ids))
        if key not in self._conditions:
            if task.constrained:
                pattern = r"[^eE]*" if task.constraint == "no_e" else task.pattern
                self._conditions[key] = BoolFSA.from_regex(pattern).coerce(llm, f=b"".join)
            else:
                self._conditions[key] = no_end_of_sequence(llm.vocab)
        return self._conditions[key]

    def prepare(self, task: Task, seed: int):
        from genlm.control import AWRS, EOS, SMC

        prompt_ids = self.shared.chat_ids(task.prompt)
        llm = self.llm.spawn(prompt_ids=prompt_ids)
        sampler = SMC(AWRS(llm, self._condition(task, llm), seed=seed))
        budget = task.max_tokens

        def stop(context) -> bool:
            return len(context) >= budget or (task.ends_at_sentence and is_sentence_end(
                context_bytes(context).decode("utf-8", errors="replace")))

        def job() -> Outcome:
            self.backend.clear_cache()
            self.backend.batch_size = task.n_particles
            np.random.seed(seed)
            self.backend.cache_kv(prompt_ids)
            seqs = asyncio.run(sampler(
                n_particles=task.n_particles, ess_threshold=0.5, max_tokens=budget + 1,
                resampling_method="multinomial", terminate_when=stop,
            ))
            texts = [context_bytes(c).decode("utf-8", errors="replace").strip() for c in seqs.contexts]
            n_tokens = sum(sum(1 for t in c if t is not EOS) for c in seqs.contexts)
            kept = [bool(np.isfinite(w)) for w in seqs.log_weights]
            return Outcome(texts, kept, n_tokens, {"log_ml": float(seqs.log_ml) if np.isfinite(seqs.log_ml) else str(seqs.log_ml)})

        return job
