"""TextModel's helpers are properly weighted to the prior, with and without a separate proposal.

Prior prompt "a", proposal prompt "b": the proposal is a different distribution, so any missing
weight correction shows up as a biased evidence estimate. Exact Z by enumeration.
"""

import hashlib
import math

import numpy as np
import pytest

from selfsteer.programs.base import LibraryProgram
from selfsteer.programs.tokens import ProseTokens
from selfsteer.smc import ExactLM, TextModel, smc, smc_steer

LM = ExactLM(("a", "b", " c"), max_len=5, seed=7, concentration=0.8)
PRIOR = LM.prompt_ids("a")
A, B, C, EOS = 0, 1, 2, LM.vocab.eos_id


def continuations():
    return list(LM.continuations(PRIOR))


def z_of(predicate) -> float:
    return sum(math.exp(lp) for seq, lp in continuations() if predicate(seq))


def assert_unbiased(program, z: float, runs: int = 300, n: int = 4):
    est = np.array([math.exp(smc(program(), n, seed=s, ess_threshold=0.5).log_ml) for s in range(runs)])
    se = est.std(ddof=1) / math.sqrt(runs)
    assert abs(est.mean() - z) <= 4 * se + 1e-12, f"mean {est.mean():.5f} vs Z {z:.5f} (se {se:.5f})"


def make(cls, proposal):
    return lambda: cls(LM, "a", proposal)


class MaskedTokens(TextModel):
    async def step(self):
        tok = await self.next_token(mask=self.lm.masks.without("b") | self.lm.masks.eos)
        if tok.is_eos:
            self.finish(self.text)


class Chunked(TextModel):
    async def step(self):
        await self.extend(max_tokens=2, allow_eos=False)
        await self.end()


class Forced(TextModel):
    async def step(self):
        await self.extend_with("b")
        await self.next_token(mask=self.lm.masks.eos)
        self.finish(self.text)


class OneWord(TextModel):
    async def step(self):
        self.word = await self.next_word()
        await self.end()


class Hinted(TextModel):
    """Hints once, then writes at most two tokens: the hinted proposal's longer prompt stays
    within the ExactLM's context length, so it covers the prior's support."""

    HINT_TEMPLATE = "{hint}"  # the ExactLM only tokenises its three tokens

    async def step(self):
        if not self.hints:
            self.hint("b")
        tok = await self.next_token(mask=~self.lm.masks.containing("b"))
        if tok.is_eos:
            self.finish(self.text)
        elif self.n_tokens == 2:
            await self.end()


CASES = {
    "masked tokens": (MaskedTokens, lambda s: B not in s),
    "chunk without eos, then end": (Chunked, lambda s: len(s) == 3 and EOS not in s[:2]),
    "forced text": (Forced, lambda s: s == (B, EOS)),
    "one word then end": (OneWord, lambda s: len(s) >= 2 and all(t in (A, B) for t in s[1:-1])),
    "hint": (Hinted, lambda s: B not in s and len(s) <= 3),
}


@pytest.mark.parametrize("proposal", [None, "b"], ids=["own proposal", "separate proposal"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_helpers_are_properly_weighted(case, proposal):
    cls, predicate = CASES[case]
    z = z_of(predicate)
    assert 0 < z < 1
    assert_unbiased(make(cls, proposal), z)


def test_max_tokens_kills_long_particles():
    class Long(TextModel):
        async def step(self):
            await self.next_token(mask=~self.lm.masks.eos)

    r = smc(Long(LM, "a", max_tokens=2), 4, seed=0)
    assert r.status == "all_dead"


# ----- helper sequences on a full-support LM (issue 23) --------------------------------------
# Every token, EOS included, has probability above zero after any context and there is no length
# cut, so the hinted proposal's longer prompt and the prior see the same kind of distribution. Each
# program bounds its own length; its documented target is enumerated over token sequences.

def full_support(context: tuple[int, ...]) -> np.ndarray:
    digest = hashlib.sha256(repr(context).encode()).digest()
    p = np.random.default_rng(int.from_bytes(digest[:8], "little")).dirichlet(np.ones(4))
    return 0.6 * p + 0.1


FULL = ExactLM(("a", "b", " c"), next_probs=full_support)
F_EOS = FULL.vocab.eos_id
F_CONT = {0, 1}  # "a", "b": tokens that continue a word (next_word's `continues_word`)


def sequences(max_len: int, prompt: str = "a"):
    """Every generated sequence of at most ``max_len`` tokens (EOS only last) with its log p."""
    stack = [((), 0.0)]
    start = tuple(FULL.prompt_ids(prompt))
    while stack:
        seq, lp = stack.pop()
        if seq:
            yield seq, lp
        if len(seq) < max_len and (not seq or seq[-1] != F_EOS):
            log_p = FULL.next_logprobs(start + seq)
            stack.extend((seq + (t,), lp + float(log_p[t])) for t in range(FULL.vocab.size))


def target_of(accepts, max_len: int) -> dict[str, float]:
    """The unnormalised target over outputs (the text): prior mass of the accepted sequences."""
    mass: dict[str, float] = {}
    for seq, lp in sequences(max_len):
        if accepts(seq):
            text = FULL.decode(seq)
            mass[text] = mass.get(text, 0.0) + math.exp(lp)
    return mass


def word_length(seq, max_chars: int | None = None) -> int:
    """Tokens of the word that `next_word` reads at the start of ``seq``."""
    k = 1
    while k < len(seq) and seq[k] in F_CONT and (max_chars is None or len(FULL.decode(seq[:k]).strip()) < max_chars):
        k += 1
    return k


def assert_targets(make_program, target: dict[str, float], *, runs: int = 400, n: int = 4, run=None):
    """E[Z_hat] = Z within 4 standard errors, and E[Z_hat * pi_hat(k)] = Z * pi(k) per output
    (outputs below 2% of Z pooled into one)."""
    run = run or (lambda program, seed: smc(program, n, seed=seed, ess_threshold=0.5))
    z = sum(target.values())
    assert 0 < z < 1
    major = [k for k, v in target.items() if v >= 0.02 * z]
    cols = {"Z": z, **{k: target[k] for k in major}, "rest": z - sum(target[k] for k in major)}
    est = {k: [] for k in cols}
    for s in range(runs):
        r = run(make_program(), s)
        z_hat = math.exp(r.log_ml)
        post = r.posterior
        est["Z"].append(z_hat)
        for k in major:
            est[k].append(z_hat * post.get(k, 0.0))
        est["rest"].append(z_hat * sum(v for k, v in post.items() if k not in major))
    for k, want in cols.items():
        e = np.array(est[k])
        se = e.std(ddof=1) / math.sqrt(runs)
        assert abs(e.mean() - want) <= 4 * se + 1e-9, f"{k!r}: mean {e.mean():.5f} vs exact {want:.5f} (se {se:.5f})"


class WordThenChunk(TextModel):
    """next_word, then a chunk: the word-end restriction applies to the chunk's first token only."""

    async def step(self):
        await self.next_word()
        chunk = await self.extend(max_tokens=2)
        if chunk.eos:
            self.finish(self.text)
        else:
            await self.end()


def word_then_chunk(seq, max_tokens=5) -> bool:
    if seq[0] == F_EOS:
        return False
    rest = seq[word_length(seq):]
    if not rest or rest[0] in F_CONT:
        return False
    chunk = rest[:1] if rest[0] == F_EOS else rest[:2]
    if len(rest) != len(chunk) + (chunk[-1] != F_EOS) or (chunk[-1] != F_EOS and rest[-1] != F_EOS):
        return False
    body = seq if chunk[-1] == F_EOS else seq[:-1]
    return len(body) <= max_tokens


class SplitSteps(TextModel):
    """The same helpers, one per step: the pending restriction survives resampling between steps."""

    async def step(self):
        self.stage = getattr(self, "stage", 0) + 1
        if self.stage == 1:
            await self.next_word()
        elif (await self.extend(max_tokens=2)).eos:
            self.finish(self.text)
        else:
            await self.end()


class ShortWordThenForced(TextModel):
    """next_word(max_chars=2), then forced text: the word-end restriction binds the forced token."""

    async def step(self):
        word = await self.next_word(max_chars=2)
        await self.extend_with("b" if word.startswith("a") else " c")
        await self.end()


def short_word_then_forced(seq) -> bool:
    k = word_length(seq, max_chars=2)
    word = FULL.decode(seq[:k]).strip()
    forced = FULL.encode("b" if word.startswith("a") else " c")
    return seq[0] != F_EOS and seq[k:] == (*forced, F_EOS) and forced[0] not in F_CONT


class HintAfterWord(TextModel):
    """A hint after next_word(max_chars=1): the new proposal keeps the pending restriction."""

    HINT_TEMPLATE = "{hint}"

    async def step(self):
        await self.next_word(max_chars=1)
        self.hint("b")
        tok = await self.next_token()
        if not tok.is_eos:
            await self.end()
        self.finish(self.text)


def hint_after_word(seq) -> bool:
    return seq[0] != F_EOS and len(seq) in (2, 3) and seq[1] not in F_CONT and seq[-1] == F_EOS


class ChunkThenEnd(TextModel):
    """A chunk that may end the text (allow_eos=True), then EOS."""

    async def step(self):
        if not (await self.extend(max_tokens=2)).eos:
            await self.end()
        self.finish(self.text)


def chunk_then_end(seq) -> bool:
    return seq[-1] == F_EOS and (F_EOS not in seq[:-1]) and len(seq) <= 3


class MaskedChunk(TextModel):
    """A chunk-wide mask (``extend(mask=...)``): every chunk token avoids "b"."""

    async def step(self):
        chunk = await self.extend(max_tokens=2, mask=~self.lm.masks.containing("b") | self.lm.masks.eos)
        if not chunk.eos:
            await self.end()
        self.finish(self.text)


def masked_chunk(seq) -> bool:
    return chunk_then_end(seq) and 1 not in seq


class SpanAfterText(TextModel):
    """Free text, then a regex span, then EOS."""

    async def step(self):
        if self.n_tokens == 0:
            await self.extend(max_tokens=1, allow_eos=False)
            return
        span = await self.constrain_step(self.spec)
        if span.done:
            await self.end()

    @property
    def spec(self):
        from selfsteer.smc import Regex

        return Regex(r"(a|b) c")


def span_after_text(seq) -> bool:
    return len(seq) == 4 and seq[0] != F_EOS and seq[1] in F_CONT and seq[2] == 2 and seq[3] == F_EOS


HELPER_CASES = {
    "next_word then extend": (WordThenChunk, lambda s: word_then_chunk(s), 6),
    "helpers split across steps": (SplitSteps, lambda s: word_then_chunk(s), 6),
    "next_word(max_chars) then extend_with": (ShortWordThenForced, short_word_then_forced, 4),
    "hint after generation started": (HintAfterWord, hint_after_word, 3),
    "chunk with allow_eos then end": (ChunkThenEnd, chunk_then_end, 3),
    "chunk-wide mask": (MaskedChunk, masked_chunk, 3),
    "span after free text": (SpanAfterText, span_after_text, 4),
}


def full_program(cls, proposal):
    return lambda: cls(FULL, "a", proposal, max_tokens=5)


@pytest.mark.parametrize("proposal", [None, "b"], ids=["own proposal", "separate proposal"])
@pytest.mark.parametrize("case", sorted(HELPER_CASES))
def test_helper_sequences_target_the_prior(case, proposal):
    cls, accepts, max_len = HELPER_CASES[case]
    assert_targets(full_program(cls, proposal), target_of(accepts, max_len))


@pytest.mark.parametrize("proposal", [None, "b"], ids=["own proposal", "separate proposal"])
def test_smc_steer_on_a_text_model(proposal):
    assert_targets(full_program(WordThenChunk, proposal), target_of(word_then_chunk, 6),
                   run=lambda program, seed: smc_steer(program, 3, 2, seed=seed))


def test_a_single_particle_is_an_importance_sampler():
    assert_targets(full_program(WordThenChunk, "b"), target_of(word_then_chunk, 6), n=1, runs=600)


@pytest.mark.slow
def test_a_word_end_binds_only_the_first_token_of_the_next_chunk(lm):
    """On SmolLM2: after next_word(), extend(stop=".") may continue words again from its second
    token on (when the word-end restriction leaked into the whole chunk, none did and the stop
    was never reached)."""

    class WordThenSentence(TextModel):
        async def step(self):
            await self.next_word()
            self.chunk = await self.extend(stop=".", max_tokens=24)
            self.finish(self.text)

    r = smc(WordThenSentence(lm, "Write one sentence about cats."), 6, seed=0, ess_threshold=0.0)
    cont = lm.masks.where("continues_word", lambda t: bool(t) and not t[0].isspace())
    chunks = [p.chunk for p in r.particles if p.alive]
    assert chunks and all(c.token_ids[0] not in cont for c in chunks)
    assert sum(t in cont for c in chunks for t in c.token_ids[1:]) > 0
    assert any(c.stop_reason == "stop" for c in chunks)


class WholeWords(LibraryProgram):
    """One token a step (no "b" after the first), then `complete_word` continues the word with
    tokens other than "b" (a "b" the proposal wanted ends the word instead)."""

    def __init__(self, lm, prior, proposal):
        TextModel.__init__(self, lm, prior, proposal, max_tokens=5)
        self.tokens = ProseTokens.of(lm)

    async def step(self):
        tok = await self.next_token(~self.lm.masks.containing("b") if self.text else None)
        if tok.is_eos:
            self.finish(self.text)
            return
        await self.complete_word(allowed=~self.lm.masks.containing("b"))


class NoContinuation(WholeWords):
    """No continuation allowed: the word ends at once (the next token starts a word or ends)."""

    async def step(self):
        tok = await self.next_token()
        if tok.is_eos:
            self.finish(self.text)
            return
        await self.complete_word(allowed=self.tokens.none)


@pytest.mark.parametrize("proposal", [None, "b"], ids=["own proposal", "separate proposal"])
def test_complete_word_is_properly_weighted(proposal):
    # every token continues a word here ("a", "b"), except " c" and EOS: after the first token,
    # "b" may never follow a letter, i.e. never appear again
    assert_unbiased(make(WholeWords, proposal), z_of(lambda s: B not in s[1:]))
    # with no continuation allowed, only the first token may be "a" or "b"
    assert_unbiased(make(NoContinuation, proposal), z_of(lambda s: all(t in (C, EOS) for t in s[1:])))
