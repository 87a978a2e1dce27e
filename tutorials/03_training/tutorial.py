# %% [markdown]
# # Training the follower model
#
# SMC samples from a *follower* (proposal) model. The better the follower already proposes what the
# target wants, the fewer particles a program needs. `selfsteer.training` improves the follower
# with the objectives of the seed papers (GRPO and friends, RLCR, LENS, outcome-based exploration,
# ThinkPrune, AsymRE, prompt-emulating meta-learning, PILAF) as gradient steps on the Hugging Face
# model behind `load_lm()`, full-parameter or LoRA.
#
# Three ideas carry the whole module:
#
# 1. **A GRPO group is a set of particles.** Rollouts are inference programs run by `smc` with
#    `ess_threshold=0`: G particles per question, their LM calls batched.
# 2. **An objective is a recipe, not a trainer**: reward functions, an *advantage hook* and a
#    loss, each a small function you can test and swap.
# 3. **Runs are reproducible and resumable**: everything random follows from `(seed, step)`, and a
#    checkpoint holds weights, optimiser, RNG and per-question state.
#
# Run it with `python tutorials/03_training/tutorial.py` (a few minutes on a CPU).

# %%
import asyncio
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from selfsteer.smc import load_lm
from selfsteer.training import config_from_dict, load_task, train, wrap_policy
from selfsteer.training.advantages import group_z
from selfsteer.training.config import TaskSettings
from selfsteer.training.objectives.recipe import Recipe
from selfsteer.training.rewards import correctness
from selfsteer.training.rollout import qa_prompt, sample_groups_async

FAST = os.environ.get("SELFSTEER_FAST") == "1"  # the test suite runs this tutorial at tiny scale
torch.set_num_threads(1)  # small matrices on a shared CPU: one thread avoids contention
OUT = Path(tempfile.mkdtemp(prefix="selfsteer-tutorial-03-"))

lm = load_lm()  # the bundled SmolLM2-135M-Instruct on the transformers backend

# %% [markdown]
# ## 1. A verifiable task
#
# Training needs questions whose answers can be checked. The built-in `addition` task asks for
# small sums; `task.extract` reads an answer from a completion (an `<answer>` tag, else the last
# number) and `task.is_correct` checks it.

# %%
task = load_task(TaskSettings(name="addition", max_operand=5, n_train=24, n_eval=4), seed=0)
question = task.train[0]
print(question)
print(task.extract("Let me see... 3 + 4 = 7."), task.is_correct("7", question))

# %% [markdown]
# ## 2. Rollouts are particles
#
# `sample_groups` (`await sample_groups_async(...)` inside an event loop) runs one SMC population
# per question (all questions concurrently, so their
# forward passes batch together). Each `Sample` records the completion's token ids, each token's
# log-probability under the sampling policy, and whether the completion was truncated at the
# token limit L. These are exactly what the reward and advantage hooks may read.

# %%
G, L = (4, 6) if FAST else (8, 10)
groups = await sample_groups_async(lm, task.train[:2], group_size=G, max_tokens=L, temperature=1.0, seed=0, prompt=qa_prompt)
for s in groups[0][:4]:
    s.answer = task.extract(s.text)
    s.correct = task.is_correct(s.answer, s.question)
    print(f"{s.text!r:40} answer={s.answer} correct={s.correct} truncated={s.truncated} "
          f"mean log p={s.mean_logprob:.2f}")

# %% [markdown]
# ## 3. A recipe of your own
#
# A reward function is any `fn(sample) -> float`. Here: correctness, plus a small bonus for short
# answers. An advantage hook maps the `(B, G)` rewards and the groups to `(B, G)` advantages; this
# one is GRPO's z-score with a penalty on answers the group repeats (a home-made cousin of the
# outcome-based exploration bonus). TRL has no public hook for this; here it is one function.

# %%
def brevity(sample):
    return 0.1 * (1 - sample.n_sampled / L)


def z_score_minus_repeats(rewards, groups):
    adv = group_z(rewards)
    for b, group in enumerate(groups):
        answers = [s.answer for s in group]
        adv[b] -= 0.1 * np.array([answers.count(a) - 1 for a in answers]) / len(group)
    return adv


recipe = Recipe("my_recipe", (("correct", correctness, 1.0), ("brevity", brevity, 1.0)), z_score_minus_repeats)

# %% [markdown]
# ## 4. Train
#
# A run is a frozen `TrainConfig` (the same fields as the YAML file that `selfsteer train` reads).
# We train LoRA adapters on the top layers only: backpropagation then stops early, which keeps a
# CPU step affordable. The policy wraps the already loaded LM, so the engine samples from the
# weights being trained; after each optimiser step the loop drops the backend's cached prompt
# keys/values, which were computed with the old weights.

# %%
config = config_from_dict({
    "out_dir": str(OUT / "rlcr"), "seed": 0,
    "objective": {"name": "rlcr"},  # correctness + Brier calibration, tagged answers with a confidence
    "task": {"name": "addition", "max_operand": 5, "n_train": 24, "n_eval": 4},
    "sampling": {"group_size": G, "questions_per_step": 2 if FAST else 4, "max_tokens": L, "prompt": "qa"},
    "optim": {"steps": 1 if FAST else 6, "lr": 5.0e-4, "grad_accum": 2},
    "model": {"lora": {"r": 8, "alpha": 16, "layers": [-2, -1]}},  # adapters on the top two layers
    "log": {"eval_questions": 2 if FAST else 4, "eval_samples": 2 if FAST else 4, "tensorboard": False},
})
policy = wrap_policy(lm, lora=config.model.lora)
print(len(policy.trainable()), "trainable tensors (LoRA adapters)")

# `train` drives its own event loop, so inside a notebook it runs in a worker thread
result = await asyncio.to_thread(train, config, policy=policy, task=task)
for row in result.history:
    print({k: round(v, 3) for k, v in row.items() if k in ("step", "reward", "accuracy", "rewards/brier", "policy_loss")})
print("held-out before/after:", [{k: round(v, 3) for k, v in e.items() if k in ("accuracy", "formatted", "ece")}
                                 for e in result.evals])

# %% [markdown]
# Everything the run wrote is in `out_dir`: `metrics.jsonl`, `checkpoints/` and `final/` (the
# adapter, loadable with peft). The same run from the command line is
#
# ```
# selfsteer train rlcr.yaml            # add --resume to continue a killed run
# ```
#
# A killed run resumed from its checkpoint ends bit for bit where an uninterrupted run ends (the
# test suite checks this with a real `SIGKILL`).

# %%
import yaml  # noqa: E402

(OUT / "rlcr.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
print((OUT / "rlcr.yaml").read_text()[:400])
print(sorted(p.name for p in (OUT / "rlcr").iterdir()))

# %% [markdown]
# ## 5. The custom recipe through the same loop
#
# `build_objective` turns a config into an objective; to train your own recipe, hand it to
# `RLObjective` and call its two methods, the same ones `train` calls: `collect` (rollout ->
# reward -> advantage hook, no gradients) and `loss` (teacher-forced log-probabilities, the loss
# with its aggregation). Micro-batches share the step's normaliser, so accumulation never changes
# the gradient.

# %%
from selfsteer.training.rl import RLObjective  # noqa: E402

mine = RLObjective(recipe, policy, task, sampling=config.sampling, loss=config.loss, seed=1)
batch = await asyncio.to_thread(mine.collect, list(task.train[:2]), step=0)  # collect runs its own loop too
print({k: round(v, 3) for k, v in batch.metrics.items() if k in ("reward", "accuracy", "distinct_answers")})
optimizer = torch.optim.AdamW(policy.trainable().values(), lr=5e-4)
for part in batch.parts(2):
    loss, stats = mine.loss(part, batch.norm)
    loss.backward()
optimizer.step()
optimizer.zero_grad()
policy.after_update()  # the follower changed: forget cached prompt KV
print("one step of my_recipe done; loss contributions:", {k: round(v, 4) for k, v in stats.items()})

# %% [markdown]
# ## 6. The trained follower serves SMC programs
#
# The policy *is* the follower: the same `lm` object, now with trained adapters, runs any
# inference program.

# %%
from selfsteer.training.objectives.rlcr import ConfidenceRollout  # noqa: E402

after = await sample_groups_async(lm, task.eval[:1], group_size=G, max_tokens=L, temperature=1.0, seed=3,
                                  program=ConfidenceRollout, prompt=qa_prompt)
for s in after[0][:3]:
    print(repr(s.text))

# %% [markdown]
# ## What next
#
# - `benchmarks/training/demo.py` trains for longer and compares RLCR with a correctness-only
#   reward (calibration), outcome-based exploration with GRPO (answer diversity) and ThinkPrune
#   with the untrained model (length), with plots in `benchmarks/results/training/`.
# - `selfsteer.training.OBJECTIVES` lists every objective and its settings; each one's module
#   docstring states its formula.
