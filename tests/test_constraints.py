"""Regex, grammar and JSON-schema constraints: exactness by enumeration on the ExactLM, proper
weighting with a separate proposal, real outputs from the bundled model, and clear errors."""

from __future__ import annotations

import copy
import json
import math
import re
from collections import defaultdict

import jsonschema
import lark
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsteer.smc import (
    ExactLM,
    Grammar,
    JsonSchema,
    LMContext,
    Model,
    Regex,
    TextModel,
    ZeroProbability,
    smc,
)

PATTERN = r"(a|b)* c"  # prefix-free: a span is done (exhausted) right after " c"
OPEN_PATTERN = r"(a|b)* c(a|b| c)*"  # never exhausted: spans end at EOS


class SpanProgram(Model):
    """Draws one constrained token per step; finishes when the span is done."""

    def __init__(self, lm, spec, prompt="a", proposal_lm=None):
        super().__init__()
        self.ctx = LMContext(lm, prompt)
        self.proposal = LMContext(proposal_lm, prompt) if proposal_lm is not None else None
        self.span = self.ctx.constrain(spec)

    async def step(self):
        await self.sample(self.span.next_token(proposal=self.proposal))
        if self.span.done:
            self.finish(self.span.text)


class ConstrainedText(TextModel):
    """TextModel version: one `constrain_step` per SMC step."""

    def __init__(self, lm, spec, prior="a", proposal=None, max_tokens=64):
        super().__init__(lm, prior, proposal, max_tokens=max_tokens)
        self.spec = spec

    async def step(self):
        span = await self.constrain_step(self.spec)
        if span.done:
            self.finish(span.text)


def exact_target(lm: ExactLM, pattern: str, prompt: str = "a") -> tuple[float, dict[str, float]]:
    """Z and the exact posterior of a span program: each continuation counts at its first
    prefix whose text is in a prefix-free language (done without EOS), else at EOS if it matches."""
    post: dict[str, float] = defaultdict(float)
    for seq, log_p in lm.continuations(lm.prompt_ids(prompt)):
        texts = [lm.decode(seq[:k]) for k in range(1, len(seq) + 1)]
        if pattern == PATTERN:
            hit = next((t for t in texts if re.fullmatch(pattern, t)), None)
        else:
            hit = texts[-1] if re.fullmatch(pattern, texts[-1]) else None
        if hit is not None:
            post[hit] += math.exp(log_p)
    z = sum(post.values())
    return z, {k: v / z for k, v in post.items()}


def assert_unbiased(make_model, z: float, *, n_particles: int, ess_threshold: float, seeds: int):
    estimates = np.array([
        math.exp(smc(make_model(), n_particles, ess_threshold=ess_threshold, seed=s).log_ml)
        for s in range(seeds)
    ])
    se = estimates.std(ddof=1) / math.sqrt(seeds)
    assert se > 0, "the estimates never varied: the test would be vacuous"
    assert abs(estimates.mean() - z) < 4 * se, (estimates.mean(), z, se)


def tv(p: dict, q: dict) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


# ----- exactness on the ExactLM --------------------------------------------------------------

@pytest.mark.parametrize("method", ["mask", "awrs"])
@pytest.mark.parametrize("ess_threshold", [0.0, 0.5])
@pytest.mark.parametrize("pattern", [PATTERN, OPEN_PATTERN])
def test_regex_log_ml_is_unbiased(exact_lm, method, ess_threshold, pattern):
    z, _ = exact_target(exact_lm, pattern)
    assert 0.01 < z < 0.9
    spec = Regex(pattern, method=method)
    assert_unbiased(lambda: SpanProgram(exact_lm, spec), z, n_particles=4,
                    ess_threshold=ess_threshold, seeds=150)


@pytest.mark.parametrize("method, ess_threshold", [("awrs", 0.0), ("awrs", 1.0), ("mask", 0.5)])
def test_grammar_log_ml_is_unbiased(exact_lm, method, ess_threshold):
    z, _ = exact_target(exact_lm, PATTERN)
    spec = Grammar('start: ("a" | "b")* " c"', method=method)
    assert_unbiased(lambda: SpanProgram(exact_lm, spec), z, n_particles=4,
                    ess_threshold=ess_threshold, seeds=150)


def test_json_schema_log_ml_is_unbiased():
    lm = ExactLM(('{"n": ', "1", "2", "}"), max_len=5, seed=1)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    post = defaultdict(float)
    for seq, log_p in lm.continuations(lm.prompt_ids("1")):
        text = lm.decode(seq)
        try:
            jsonschema.validate(json.loads(text), schema)
        except (ValueError, jsonschema.ValidationError):
            continue
        post[text] += math.exp(log_p)
    z = sum(post.values())
    assert z > 1e-3
    spec = JsonSchema(schema)
    assert_unbiased(lambda: SpanProgram(lm, spec, prompt="1"), z, n_particles=4,
                    ess_threshold=0.5, seeds=150)


@pytest.mark.parametrize("method", ["mask", "awrs"])
def test_posterior_approaches_the_exact_conditional(exact_lm, method):
    _, exact = exact_target(exact_lm, PATTERN)
    spec = Regex(PATTERN, method=method)

    def mean_tv(n):
        return np.mean([tv(smc(SpanProgram(exact_lm, spec), n, seed=s).posterior, exact) for s in range(8)])

    small, large = mean_tv(4), mean_tv(128)
    assert large < small and large < 0.08, (small, large)


def test_per_state_routes_mix_and_stay_unbiased(exact_lm, monkeypatch):
    """With a walk limit of one token, states allowing two first bytes use AWRS, the others
    exact masks; one span mixes both and the estimate stays unbiased."""
    from selfsteer.smc.constraints import token_constraint

    monkeypatch.setattr(token_constraint, "MASK_WALK_LIMIT", 1)
    pattern = r"a?b( c)+"
    z, _ = exact_target(exact_lm, pattern)
    assert 0.01 < z < 0.9
    spec = Regex(pattern)
    assert_unbiased(lambda: SpanProgram(exact_lm, spec), z, n_particles=4, ess_threshold=0.5, seeds=150)


def test_tiny_viable_mass_is_still_unbiased():
    """The viable token has probability 1e-7: AWRS must neither give up nor bias the estimate
    (genlm's recursive AWRS, which stops at 1 - 1e-5 rejected mass, would kill every particle)."""
    def next_probs(ctx):
        if len(ctx) >= 3:
            return np.array([0, 0, 0, 1.0])
        return np.array([0.6, 1e-7, 0.4 - 1e-7 - 1e-3, 1e-3])  # a, b, " c", EOS

    lm = ExactLM(("a", "b", " c"), next_probs=next_probs)
    z = sum(math.exp(lp) for seq, lp in lm.continuations(lm.prompt_ids("a"))
            if re.fullmatch(r"b(a| c)", lm.decode(seq)))
    assert_unbiased(lambda: SpanProgram(lm, Regex(r"b(a| c)", method="awrs")), z,
                    n_particles=4, ess_threshold=0.0, seeds=150)


# ----- a separate proposal ---------------------------------------------------------------------

@pytest.mark.parametrize("method", ["mask", "awrs"])
def test_text_model_with_a_separate_proposal_targets_the_prior(exact_lm, method):
    z, _ = exact_target(exact_lm, PATTERN, prompt="a")
    spec = Regex(PATTERN, method=method)
    make = lambda: ConstrainedText(exact_lm, spec, prior="a", proposal="ba")  # noqa: E731
    assert make().separate_proposal
    assert_unbiased(make, z, n_particles=4, ess_threshold=0.5, seeds=150)


def test_another_lm_as_proposal_targets_the_prior(exact_lm):
    z, _ = exact_target(exact_lm, OPEN_PATTERN)
    other = ExactLM(("a", "b", " c"), max_len=4, seed=11)
    spec = Regex(OPEN_PATTERN)
    assert_unbiased(lambda: SpanProgram(exact_lm, spec, proposal_lm=other), z, n_particles=4,
                    ess_threshold=0.0, seeds=150)


# ----- masks, flags, copies --------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", " c"]), max_size=4),
       st.sampled_from([PATTERN, OPEN_PATTERN, r"a?b( c)+", r"(ab)*"]))
def test_cached_regex_masks_equal_a_check_of_every_token(text, pattern):
    import asyncio

    lm = ExactLM(("a", "b", " c"), max_len=4, seed=0)
    constraint = Regex(pattern).bind(lm.vocab)
    ids = lm.encode("".join(text))

    async def compare():
        walked = await constraint.allowed(ids)
        checked = [await constraint.viable(ids, t) for t in range(lm.vocab.size)]
        return walked.tolist(), checked

    walked, checked = asyncio.run(compare())
    assert walked == checked


def test_regex_masks_on_the_bundled_vocabulary_equal_a_check_of_every_token(lm):
    import asyncio

    constraint = Regex(r" ?[0-9]{1,3}(\.[0-9]+)? (cats|dogs)").bind(lm.vocab)

    async def compare(text):
        ids = lm.encode(text)
        walked = await constraint.allowed(ids)
        checked = np.array([await constraint.viable(ids, t) for t in range(lm.vocab.size)])
        return walked, checked

    for text in ["", " 12", " 3.5 d"]:
        walked, checked = asyncio.run(compare(text))
        assert walked.sum() > 0 and np.array_equal(walked, checked), text


def test_span_flags_and_exhaustion(exact_lm):
    import asyncio

    async def run():
        ctx = LMContext(exact_lm, "a")
        span = ctx.constrain(Regex(r"a c"))
        model = Model()
        for expected in ["a", "a c"]:
            await model.sample(span.next_token())
            assert span.text == expected
        return span, ctx

    span, ctx = asyncio.run(run())
    assert span.complete and span.done and not span.ended and not ctx.ended


def test_copies_share_the_compiled_constraint(exact_lm):
    model = SpanProgram(exact_lm, Regex(PATTERN))
    twin = model.clone()
    assert twin.span.constraint is model.span.constraint
    assert twin.span.ctx is twin.ctx and twin.ctx is not model.ctx
    assert copy.deepcopy(model.span.spec) is model.span.spec


def test_auto_routes(exact_lm):
    ctx = LMContext(exact_lm, "a")
    assert ctx.constrain(Regex("a+")).sampler == "per-state"
    assert ctx.constrain(Grammar('start: "a"+')).sampler == "mask"  # few tokens qualify
    assert ctx.constrain(Regex("a+", method="awrs")).sampler == "awrs"


def test_specs_compare_by_value():
    assert Regex("a+") == Regex("a+") and hash(Regex("a+")) == hash(Regex("a+"))
    assert Regex("a+") != Regex("a+", method="awrs") and Regex("a+") != Grammar('start: "a"')
    assert JsonSchema({"type": "integer"}) == JsonSchema({"type": "integer"})


# ----- the bundled model -----------------------------------------------------------------------

def finished_outputs(result):
    return [p.output for p in result.particles if p.alive and p.finished]


def test_bundled_model_regex_outputs_match(lm):
    pattern = r"[0-2][0-9]:[0-5][0-9]"
    result = smc(ConstrainedText(lm, Regex(pattern), prior="What time is it?"), 4, seed=0)
    outputs = finished_outputs(result)
    assert outputs and all(re.fullmatch(pattern, o) for o in outputs), outputs


def test_bundled_model_json_outputs_validate(lm):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    prompt = 'Answer in JSON, like {"age": 30}. How old is Bob?'
    result = smc(ConstrainedText(lm, JsonSchema(schema), prior=prompt, max_tokens=24), 4, seed=0)
    assert result.particles[0]._span.sampler == "awrs"
    outputs = finished_outputs(result)
    assert outputs, "every particle died"
    for o in outputs:
        jsonschema.validate(json.loads(o), schema)


def test_bundled_model_grammar_outputs_parse(lm):
    grammar = 'start: NAME " is " MOOD "."\nNAME: "Alice" | "Bob"\nMOOD: "happy" | "sad" | "tired"'
    result = smc(ConstrainedText(lm, Grammar(grammar), prior="Say how Alice feels."), 4, seed=0)
    outputs = finished_outputs(result)
    parser = lark.Lark(grammar)
    assert outputs
    for o in outputs:
        parser.parse(o)


# ----- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: Regex("(a"), "invalid regex"),
    (lambda: Regex(r"(a)\1"), "invalid regex"),
    (lambda: Grammar("start: undefined_rule"), "invalid Lark grammar"),
    (lambda: Grammar("no colon here"), "invalid Lark grammar"),
    (lambda: JsonSchema({"type": "no-such-type"}), "invalid JSON schema"),
    (lambda: JsonSchema({"properties": 3}), "invalid JSON schema"),
    (lambda: Regex("a", method="fast"), "method must be one of"),
])
def test_bad_specs_fail_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_wrong_types_fail_clearly(exact_lm):
    with pytest.raises(TypeError, match="schema dict"):
        JsonSchema('{"type": "integer"}')
    with pytest.raises(TypeError, match="Regex, Grammar or JsonSchema"):
        LMContext(exact_lm, "a").constrain(r"a+")


def test_span_misuse_fails_clearly(exact_lm):
    ctx = LMContext(exact_lm, "a")
    span = ctx.constrain(Regex(PATTERN))
    ctx.append_token(0)
    with pytest.raises(ValueError, match="grew outside this span"):
        span.next_token()


def test_an_empty_language_kills_the_particle_not_the_run(exact_lm):
    result = smc(SpanProgram(exact_lm, Regex("zzz")), 4, seed=0)
    assert str(result.status) == "all_dead" or all(not p.alive for p in result.particles)


def test_no_viable_token_raises_zero_probability(exact_lm):
    import asyncio

    span = LMContext(exact_lm, "a").constrain(Regex("zzz", method="awrs"))
    with pytest.raises(ZeroProbability):
        asyncio.run(span.next_token().propose(np.random.default_rng(0)))
