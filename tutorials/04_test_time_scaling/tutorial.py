# %% [markdown]
# # Test-time scaling with a population of answers
#
# An SMC run ends with a *population*: many particles, each a complete answer with a weight.
# Four test-time methods from the literature are features of that same population:
#
# 1. **confidence weighting** (RLCR): every particle states how sure it is; votes and weights use it;
# 2. **outcome-based exploration**: resampling that keeps rare final answers alive;
# 3. **trust scores**: how much the particles agree (semantic isotropy) and how much of the
#    search was abandoned (failed-step fraction), to flag answers that are probably wrong;
# 4. **log-augmented generation** (LAG): past runs are stored on disk and the most similar one is
#    put before a new task, its KV cache reused instead of re-encoded.
#
# Everything runs on the bundled SmolLM2-135M-Instruct, on arithmetic questions it only partly
# solves. Run it with `python tutorials/04_test_time_scaling/tutorial.py`.

# %%
import asyncio
import os
import tempfile
import time

import torch

from selfsteer.programs.answer_with_confidence import INSTRUCTION, AnswerWithConfidence
from selfsteer.smc import LMContext, load_lm, smc
from selfsteer.smc.scaling import (
    Exploration,
    LogMemory,
    distinct_answers,
    final_answers,
    pass_at_k,
    trust,
    vote,
)
from selfsteer.smc.scaling.lag_kv import install_logs, log_messages

FAST = os.environ.get("SELFSTEER_FAST") == "1"  # the test suite runs this tutorial at tiny scale
N = 4 if FAST else 12
BUDGET = dict(answer_type="number", max_reasoning_tokens=8 if FAST else 24,
              reasoning_line_tokens=8 if FAST else 24, temperature=0.7)
torch.set_num_threads(1)  # on a small shared CPU one thread is the fastest
lm = load_lm()

# %% [markdown]
# ## 1. Answers with a stated confidence
#
# `AnswerWithConfidence` is a program family: each particle writes a line or two of reasoning,
# then `<answer>A</answer>` and `<confidence>q</confidence>`. Token masks keep the answer a
# well-formed number and q a number in [0, 1], so every surviving particle parses.
# With `ess_threshold=0` the particles never resample: they are independent samples.

# %%
question, truth = "What is 6 + 3?", "9"
result = smc(AnswerWithConfidence(lm, question, **BUDGET), N, seed=0, ess_threshold=0.0, record=True)
for p in result.particles:
    print(f"answer {p.answer!s:>5}   confidence {p.confidence}   reasoning {p.reasoning[:50]!r}")

# %% [markdown]
# `vote(result, method)` aggregates the answers four ways:
# `majority` (one particle, one vote), `confidence` (votes weighted by stated confidence),
# `max_confidence` (the most confident particle) and `likelihood` (votes weighted by the
# importance weights: the answer marginal of the SMC posterior). With equal confidences the
# confidence vote *is* the majority vote.

# %%
for method in ("majority", "confidence", "max_confidence", "likelihood"):
    v = vote(result, method)
    print(f"{method:>15}: {v.answer!s:>5}  (share {v.share:.2f}, correct: {v.answer == truth})")

# %% [markdown]
# **Confidence as weight.** `confidence_power=1` multiplies each particle's target weight by its
# stated confidence q, so the SMC posterior itself becomes confidence-weighted (and resampling
# favours confident particles whenever it happens after they state q).

# %%
weighted = smc(AnswerWithConfidence(lm, question, confidence_power=1.0, **BUDGET), N, seed=0, ess_threshold=0.5)
print("posterior over answers:", vote(weighted, "likelihood").scores)

# %% [markdown]
# ## 2. Outcome-based exploration
#
# Resampling copies heavy particles and drops light ones, so a rare answer can vanish from the
# population. `Exploration` is a `reweight` policy for `smc`: once a particle's answer is known
# it gets a temporary log-potential, positive for answers seen rarely so far in the run (a UCB
# bonus) and negative for answers repeated in the current population. Resampling sees the
# potential; the final weights do not (it is removed like a twist), so the target, the posterior
# and the unbiased `log_ml` are those of plain SMC. With `weight=0` the run is bit-identical.

# %%
explored = smc(AnswerWithConfidence(lm, question, confidence_power=1.0, **BUDGET), N, seed=0, ess_threshold=0.5,
               reweight=Exploration(weight=1.0))
for name, r in (("plain SMC", weighted), ("with exploration", explored)):
    answers = final_answers(r)
    n_ok = sum(a == truth for a in answers)
    print(f"{name:>17}: distinct answers {distinct_answers(answers)}, "
          f"pass@1 {pass_at_k(N, n_ok, 1):.2f}, pass@{N // 2} {pass_at_k(N, n_ok, N // 2):.2f}, answers {answers}")
zero = smc(AnswerWithConfidence(lm, question, confidence_power=1.0, **BUDGET), N, seed=0, ess_threshold=0.5,
           reweight=Exploration(weight=0.0))
assert zero.outputs == weighted.outputs and (zero.log_weights == weighted.log_weights).all()

# %% [markdown]
# ## 3. Trust scores
#
# `trust(result)` embeds every finished particle's response with the bundled all-MiniLM-L6-v2
# and computes the **semantic isotropy**: the von Neumann entropy of the normalised cosine
# kernel, 0 when all responses say the same thing and log N when they are mutually orthogonal.
# `trust = 1 - isotropy / log N`. For a recorded run it also gives the **failed-step
# fraction**: the share of particle-steps in branches of the SMC search tree that no final
# answer descends from.

# %%
report = trust(result)
print(f"isotropy {report.isotropy:.3f}  trust {report.trust:.3f}  "
      f"failed-step fraction {report.failed_step_fraction:.3f}  ({report.n_responses} responses)")

# %% [markdown]
# ## 4. Log-augmented generation
#
# A `LogMemory` keeps past runs on disk (task, prompt, response, outcome, an embedding and the
# KV cache of the log's tokens). `record` stores a run; `recall` retrieves the most similar logs
# for a new task and installs their KV in the LM's prompt cache, so a program given
# `examples=recall.examples` starts from it instead of re-encoding the log.

# %%
store_dir = tempfile.mkdtemp(prefix="selfsteer-logs-")
memory = LogMemory(store_dir, k=1, outcomes=("correct",))
demo = "6 plus 3 makes 9.\n<answer>9</answer>\n<confidence>0.9</confidence>"
best = [p for p in result.particles if p.alive and p.answer == truth]
memory.record(lm, question, INSTRUCTION.format(question=question), best[0].text if best else demo, "correct")
memory.record(lm, "Name a colour.", "Name a colour.", "Blue.", "correct")

new_question, new_truth = "What is 5 + 3?", "8"
lm.prompt_cache.clear()
recall = memory.recall(lm, new_question)
print("retrieved:", [e.task for e in recall.logs], "similarity", [round(s, 3) for s in recall.similarities],
      "| KV reused for", recall.n_kv_reused, "log(s)")
with_log = smc(AnswerWithConfidence(lm, new_question, examples=recall.examples, **BUDGET), N, seed=0,
               ess_threshold=0.0)
print("answers with the log:", final_answers(with_log), "majority:", vote(with_log, "majority").answer,
      "truth:", new_truth)

# %% [markdown]
# Reusing the KV is exact for one log: the prompt's next-token distribution is the one a fresh
# encoding gives (the test suite checks it to 2e-4). What it saves is the encoding of the log:

# %%
log = recall.logs[0]
messages = [*log_messages(log.prompt, log.response), {"role": "user", "content": INSTRUCTION.format(question=new_question)}]
kv = memory.store.load_kv(log)


def encode_seconds(reuse: bool) -> float:
    lm.prompt_cache.clear()
    started = time.perf_counter()
    if reuse:
        install_logs(lm, [(log_messages(log.prompt, log.response), kv)])
    asyncio.run(LMContext(lm, messages).next_logprobs())
    return time.perf_counter() - started


print(f"prompt with the log: {encode_seconds(False):.2f} s re-encoded, {encode_seconds(True):.2f} s with its KV "
      f"({len(kv.token_ids)} log tokens)")

# %% [markdown]
# ## From the command line
#
# ```
# selfsteer run programs/examples/arithmetic_with_confidence.py -n 8 --vote confidence --trust
# selfsteer run programs/examples/arithmetic_with_confidence.py -n 8 --explore 1.0 --vote likelihood
# selfsteer run programs/examples/arithmetic_with_confidence.py -n 8 --lag-store ~/.cache/selfsteer/logs
# ```
#
# `benchmarks/bench_test_time_scaling.py` measures all of this on a set of questions.
