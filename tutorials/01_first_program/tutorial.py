# %% [markdown]
# # Your first selfsteer programs
#
# An *inference program* describes what text you want; selfsteer's sequential Monte Carlo (SMC)
# engine finds it. You write a `Model` subclass whose `async def step(self)` does one unit of
# work for one *particle* (one candidate text). The engine runs many particles at once, batches
# their language-model calls into single forward passes, and repeatedly:
#
# 1. steps every particle (sample a token, observe a constraint...),
# 2. updates each particle's **weight** (how much probability the target gives its choices),
# 3. **resamples** when the weights become uneven: particles in dead ends are dropped, promising
#    ones are copied (their KV caches are shared, not recomputed).
#
# This tutorial writes two programs for the bundled SmolLM2-135M-Instruct model:
# a sentence with no letter "e", and a sentence of exactly N words with given words at given
# positions. Open it in Jupyter or VS Code (each `# %%` is a cell), or run it from a shell with
# `python tutorials/run.py tutorials/01_first_program/tutorial.py`. Inside a notebook's running
# event loop a run is `await smc_async(...)` (a script outside one calls `smc(...)`, same arguments).

# %%
import os

from selfsteer.smc import LMContext, Model, TextModel, load_lm, smc_async

FAST = os.environ.get("SELFSTEER_FAST") == "1"  # the test suite runs this tutorial at tiny scale
N_PARTICLES = 4 if FAST else 12

# The bundled model; the first call converts its weights once (~20 s). `load_lm()` picks CUDA
# when present (bfloat16) and vLLM when it is installed there; to choose yourself, pass
# `backend=` ("transformers" or "vllm"), `device=`, `dtype=`, and for vLLM
# `tensor_parallel_size=` to split a large follower over GPUs; on CUDA the transformers backend's
# `copy_prefix_bytes=` (default 32 MiB per layer) sets how long a shared prompt may be and still be
# copied into each particle's attention rather than attended to once; on the CPU in float32 its
# linear layers run through oneDNN with weights packed once (`pack_linear=False` turns that off, to
# save one copy of those weights in memory). `selfsteer run program.py`
# takes the same choices as --model, --backend, --device, --dtype and --tensor-parallel-size.
lm = load_lm(backend="transformers", device="cpu", dtype="float32")
print(lm.name, "with", lm.vocab.size, "tokens")

# %% [markdown]
# ## 1. A sentence without the letter "e" (token level)
#
# Token masks are sets of token ids computed once per vocabulary. `lm.masks.without("eE")` holds
# every token whose text has no "e" or "E"; special tokens such as end-of-sequence are in no text
# mask, so we add `lm.masks.eos` to allow the sentence to end.
#
# Each step observes the event "the next token is in the mask": this multiplies the particle's
# weight by the probability the LM gives to allowed tokens, and restricts the next token to them.
# Then it samples that token (section 1b does both in one call). A particle whose LM badly wants
# an "e" gets a small weight and tends to be dropped at the next resampling: that is SMC steering
# the text.

# %%
class NoE(Model):
    def __init__(self, lm, prompt):
        super().__init__()
        self.ctx = LMContext(lm, prompt)  # a chat prompt: the template is applied for us
        self.allowed = lm.masks.without("eE") | lm.masks.eos

    async def step(self):
        await self.observe(self.ctx.mask_dist(self.allowed), True)  # weight *= P(allowed)
        token = await self.sample(self.ctx.next_token())  # drawn from the restricted LM
        if token.is_eos or self.ctx.text.rstrip().endswith((".", "!", "?")):
            self.finish(self.ctx.text.strip())

    def check(self, text):  # a verifier applied to finished particles
        return "e" not in text.lower()


prompt = [{"role": "user", "content": "Write one short sentence about a dog."}]
result = await smc_async(NoE(lm, prompt), N_PARTICLES, seed=0, record=True)
print(result.summary())

# %% [markdown]
# The `Result` holds the **posterior** (distinct outputs and their probabilities), the final
# particles and weights, `log_ml` (the log of an unbiased estimate of the probability, under the
# LM, of writing an e-free sentence here), the ESS history and the number of resampling events.

# %%
best = result.best
assert best is not None and "e" not in best.lower()
print("answer:", best)
print("effective sample size per step:", [round(e, 1) for e in result.ess_history])
print("resampled", result.n_resamples, "times; log_ml =", round(result.log_ml, 2))

# %% [markdown]
# ### 1b. The same step in one call
#
# `ctx.next_token(mask)` is the next token restricted to `mask`: sampling it draws inside the mask
# and multiplies the weight by `P(allowed)`, exactly what the observe-then-sample pair above does.
# Only the token comes back from the model, so on a GPU the draw stays on the device instead of
# copying a vocabulary of probabilities to the host for every particle and token.

# %%
class NoEOneCall(NoE):
    async def step(self):
        token = await self.sample(self.ctx.next_token(self.allowed))  # weight *= P(allowed)
        if token.is_eos or self.ctx.text.rstrip().endswith((".", "!", "?")):
            self.finish(self.ctx.text.strip())


one_call = await smc_async(NoEOneCall(lm, prompt), N_PARTICLES, seed=0)
assert one_call.best is not None and "e" not in one_call.best.lower()
print("one call:", one_call.best, "| log_ml =", round(one_call.log_ml, 2))

# %% [markdown]
# `record=True` kept a trace of every step. Save it and open it as an HTML page with
# `selfsteer view trace.json` to watch the particles evolve and see who descends from whom.

# %%
result.trace.save("no_e_trace.json")

# %% [markdown]
# ## 2. Exactly N words with given words at given positions (word level)
#
# `TextModel` is the base class for text-writing programs. It keeps two contexts: the **prior**
# ("Write a sentence.") defines the target distribution, and the **proposal** (the full task)
# steers sampling. Every helper corrects the weight back to the prior, so a helpful proposal
# speeds up the search without changing what is being searched for.
#
# Here each step writes one word. At the positions where the task fixes a word we *force* it
# with `extend_with`: the weight is multiplied by the prior's probability of that word after the
# text so far, so particles where the forced word fits naturally win at resampling. After N words
# `end()` forces the end of the sequence (also scored under the prior).

# %%
class WordsAt(TextModel):
    def __init__(self, lm, n_words, fixed):
        words = ", ".join(f'"{w}" as word {i + 1}' for i, w in sorted(fixed.items()))
        task = f"Write one sentence of exactly {n_words} words, with {words}."
        super().__init__(lm, prior="Write a sentence.", proposal=task, max_tokens=4 * n_words + 8)
        self.n_words, self.fixed, self.words = n_words, fixed, []

    async def step(self):
        i = len(self.words)
        if i in self.fixed:
            await self.extend_with(("" if i == 0 else " ") + self.fixed[i])
            self.words.append(self.fixed[i])
        else:
            self.words.append(await self.next_word(max_chars=12))
        if len(self.words) == self.n_words:
            await self.end()

    def check(self, text):
        words = text.split()
        return len(words) == self.n_words and all(words[i].strip(".,!?") == w for i, w in self.fixed.items())


program = WordsAt(lm, n_words=6, fixed={0: "The", 3: "river"})
result = await smc_async(program, N_PARTICLES, seed=1)
print(result.summary())
assert result.best is not None and program.check(result.best)

# %% [markdown]
# ## What resampling bought us
#
# Run the same program as plain importance sampling (`ess_threshold=0`: no resampling). Every
# particle then runs to the end on its own, and the weights at the end are usually very uneven:
# a few particles carry all the mass. With resampling, effort moves to the promising particles as
# soon as the weights diverge.

# %%
plain = await smc_async(WordsAt(lm, 6, {0: "The", 3: "river"}), N_PARTICLES, seed=1, ess_threshold=0.0)
print("importance sampling: final ESS", round(plain.ess_history[-1], 2), "of", N_PARTICLES)
print("SMC:                 final ESS", round(result.ess_history[-1], 2), "of", N_PARTICLES,
      f"after {result.n_resamples} resampling steps")
