"""The selfsteer programs that run the benchmark tasks (see `benchmarks.tasks`).

Each uses the task prompt as its prior (no separate proposal), so the target is the same as the
other systems': the prompted LM restricted by the constraint.
"""

from __future__ import annotations

from selfsteer.smc import Regex, TextModel

from .tasks import Task, is_sentence_end


class NoLetterE(TextModel):
    """Strategy: token by token, only tokens without "e"/"E" (or EOS) are allowed; the prior's mass
    on them is the weight. Step granularity: one token. End conditions: EOS, ``max_tokens``
    tokens, or (for a sentence task) sentence-final punctuation."""

    def __init__(self, lm, task: Task):
        super().__init__(lm, task.prompt, max_tokens=task.max_tokens)
        self.allowed = lm.masks.without("eE") | lm.masks.eos
        self.ends_at_sentence = task.ends_at_sentence

    async def step(self):
        tok = await self.next_token(mask=self.allowed)
        sentence_over = self.ends_at_sentence and is_sentence_end(self.text)
        if tok.is_eos or sentence_over or self.n_tokens >= self.max_tokens:
            self.finish(self.text.strip())

    def check(self, text: str) -> bool:
        return bool(text.strip()) and "e" not in text.lower()


class RegexMatch(TextModel):
    """Strategy: token by token inside the task's regex (`constrain_step`: exact masks per
    automaton state where the viable set is small, AWRS where it is large); EOS only after a full
    match. Step granularity: one token. End conditions: the span is done (EOS drawn, or a full
    match nothing extends), or ``max_tokens`` tokens (weight zero)."""

    def __init__(self, lm, task: Task):
        super().__init__(lm, task.prompt, max_tokens=task.max_tokens)
        self.spec = Regex(task.pattern)

    async def step(self):
        span = await self.constrain_step(self.spec)
        if span.done:
            self.finish(span.text)


class FixedLengthTokens(TextModel):
    """Strategy: plain SMC over the prior with EOS disallowed (weight: the prior's mass off EOS).
    Step granularity: one token. End condition: exactly ``max_tokens`` tokens."""

    def __init__(self, lm, task: Task):
        super().__init__(lm, task.prompt, max_tokens=task.max_tokens)
        self.not_eos = ~lm.masks.eos

    async def step(self):
        await self.next_token(mask=self.not_eos)
        if self.n_tokens >= self.max_tokens:
            self.finish(self.text)


class FixedLengthChunk(TextModel):
    """Strategy: one chunk of ``max_tokens`` tokens with EOS disallowed, all particles in one fused
    sampling loop. Step granularity: the whole chunk. End condition: exactly ``max_tokens`` tokens."""

    def __init__(self, lm, task: Task):
        super().__init__(lm, task.prompt, max_tokens=task.max_tokens)

    async def step(self):
        await self.extend(max_tokens=self.max_tokens, allow_eos=False)
        self.finish(self.text)


def program_for(lm, task: Task, *, chunked: bool = False) -> TextModel:
    """The program that runs ``task`` (``chunked``: the fused-chunk variant of the free task)."""
    if task.constraint == "no_e":
        return NoLetterE(lm, task)
    if task.constraint == "regex":
        return RegexMatch(lm, task)
    return FixedLengthChunk(lm, task) if chunked else FixedLengthTokens(lm, task)
