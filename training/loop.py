"""`train`: the training loop, one function that reads top to bottom.

    for each step:
        questions  <- a pure function of (seed, step)
        batch      <- objective.collect(questions)     rollout -> reward -> advantage (no gradients)
        repeat iterations_per_batch times:
            for each micro-batch: loss.backward()     contributions normalised over the whole step
            clip, optimiser step, drop cached prompt KV (the weights changed)
        log, evaluate, checkpoint

Everything random is derived from (seed, step), and the checkpoint holds weights, optimiser, RNG
states and per-question state, so a run killed and resumed ends exactly where an uninterrupted
run ends. ``observers`` are called as ``fn(event, payload)`` for "step", "eval", "stage" and
"checkpoint" events (the loop itself writes only to ``out_dir``).
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import OptimSettings, TrainConfig
from .distributed import DataParallel, SilentLog
from .evaluate import evaluate
from .metrics_log import MetricsLog
from .objectives import build_objective, needs_reference
from .policy import Policy, load_policy
from .questions import Question, Task, load_task
from .schema import ConfigError

Observer = Callable[[str, dict], None]
RESUMABLE_DIFFERENCES = ("log", "optim.steps", "out_dir")  # settings a resumed run may change


@dataclass
class TrainResult:
    """What a run did: its final step, the training and evaluation records, where it wrote."""

    out_dir: Path
    steps: int
    history: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    states: dict[str, dict] = field(default_factory=dict)


def lr_at(step: int, optim: OptimSettings) -> float:
    """Learning rate of ``step``: linear warmup, then constant, linear or cosine decay to 0."""
    if optim.warmup_steps and step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return optim.lr
    span = max(optim.steps - optim.warmup_steps, 1)
    done = min(max(step - optim.warmup_steps, 0) / span, 1.0)
    if optim.schedule == "linear":
        return optim.lr * (1.0 - done)
    return optim.lr * 0.5 * (1.0 + math.cos(math.pi * done))


def questions_for(step: int, train: Sequence[Question], per_step: int, seed: int) -> list[Question]:
    """The step's questions: epoch-wise shuffles of the training set, a pure function of (seed, step)."""
    n = len(train)
    out = []
    for k in range(step * per_step, (step + 1) * per_step):
        epoch, i = divmod(k, n)
        order = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(train[int(order[i])])
    return out


def make_optimizer(policy: Policy, optim: OptimSettings) -> torch.optim.Optimizer:
    params = list(policy.trainable().values())
    if not params:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(params, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted names whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b, name = saved.get(key), current.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, name + ".")
        elif a != b:
            out.append(name)
    return out


def check_resumable(saved: dict, current: TrainConfig) -> None:
    now = yaml.safe_load(yaml.safe_dump(current.to_dict()))  # tuples -> lists, as saved
    diffs = [d for d in config_differences(saved, now)
             if not any(d == r or d.startswith(r + ".") for r in RESUMABLE_DIFFERENCES)]
    if diffs:
        raise ConfigError(f"cannot resume: the config differs from the checkpoint's in {diffs}; "
                          "restore those settings or start a fresh run in a new out_dir")


def add_stats(total: dict[str, float], part: dict[str, float]) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0.0) + v


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    policy: Policy | None = None,
    task: Task | None = None,
    observers: Sequence[Observer] = (),
) -> TrainResult:
    """Run ``config`` (see `TrainConfig`); ``resume=True`` continues from ``out_dir``'s latest checkpoint."""
    out = Path(config.out_dir)
    dp = DataParallel.from_env()  # under torchrun: this rank's share of each update (see .distributed)
    latest = latest_checkpoint(out)
    if latest is not None and not resume:
        raise ConfigError(f"{out} already holds checkpoints of a run; pass resume=True (selfsteer train --resume) "
                          "to continue it, or choose a new out_dir")
    if resume and latest is None:
        raise ConfigError(f"nothing to resume: {out} holds no checkpoint")
    out.mkdir(parents=True, exist_ok=True)
    if dp.main:
        (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    def notify(event: str, payload: dict) -> None:
        for fn in observers:
            fn(event, payload)

    task = task or load_task(config.task, config.seed)
    policy = policy or load_policy(config.model, need_reference=needs_reference(config),
                                   temperature=config.sampling.temperature, seed=config.seed)
    states: dict[str, dict] = {}  # per-question state (exploration counts), checkpointed
    objective = build_objective(config, task, policy, states=states)
    dp.broadcast_weights(list(policy.trainable().values()))
    optimizer = make_optimizer(policy, config.optim)
    start, ckpt = 0, None
    if latest is not None:
        ckpt = load_checkpoint(latest, trainable=policy.trainable(), optimizer=optimizer)
        check_resumable(ckpt.config, config)
        start = ckpt.step
        states.update(ckpt.states)
        policy.after_update()
    o, lg = config.optim, config.log
    log = MetricsLog(out, start_step=start, tensorboard=lg.tensorboard) if dp.main else SilentLog()
    if ckpt is not None:
        ckpt.restore_rng()  # last: nothing set up after this may draw from the restored streams
    else:
        torch.manual_seed(config.seed)  # a fresh run's streams depend only on the seed, not on start-up
        random.seed(config.seed)
    eval_questions = task.eval[: lg.eval_questions]
    result = TrainResult(out, start, states=states)

    def run_eval(step: int) -> None:
        values = evaluate(objective, eval_questions, step=step, samples=lg.eval_samples, seed=config.seed)
        policy.after_update()  # keep the prompt cache exactly as an evaluation-free run would
        if values:
            log.write(step, "eval", values)
            result.evals.append({"step": step, **values})
            notify("eval", {"step": step, **values})

    if start == 0:
        run_eval(0)
    bar = tqdm(range(start, o.steps), initial=start, total=o.steps, desc=f"train {objective.name}",
               unit="step", disable=not (lg.progress and dp.main))
    for step in bar:
        # A new stage (ThinkPrune) starts from the last stage's weights with a fresh optimiser.
        if step > 0 and objective.stage(step) != objective.stage(step - 1):
            finished = objective.stage(step - 1)
            if lg.save_model and dp.main:
                policy.export(out / "stages" / f"stage-{finished}")
            optimizer = make_optimizer(policy, o)
            notify("stage", {"step": step, "stage": objective.stage(step), "finished": finished})
        lr = lr_at(step, o)
        for group in optimizer.param_groups:
            group["lr"] = lr

        t0 = time.perf_counter()
        questions = questions_for(step, task.train, config.sampling.questions_per_step, config.seed)
        batch = objective.collect(questions, step=step)  # rollout -> reward -> advantage
        t1 = time.perf_counter()
        stats: dict[str, float] = {}
        for _ in range(o.iterations_per_batch):
            for part in dp.parts(batch.items, o.grad_accum):
                loss, part_stats = objective.loss(part, batch.norm)  # already normalised for the whole step
                loss.backward()
                add_stats(stats, part_stats)
            params = list(policy.trainable().values())
            dp.sum_gradients(params)
            if o.max_grad_norm is not None:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, o.max_grad_norm)
            else:
                grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            policy.after_update()  # cached prompt KV was computed with the old weights
        t2 = time.perf_counter()

        record = dict(batch.metrics)
        record |= {k: v / o.iterations_per_batch for k, v in dp.sum_stats(stats).items()}
        record |= {"lr": lr, "grad_norm": float(grad_norm), "stage": float(objective.stage(step)),
                   "time_collect_s": t1 - t0, "time_update_s": t2 - t1}
        done = step + 1
        result.steps = done
        result.history.append({"step": done, **record})
        if done % lg.every == 0 or done == o.steps:
            log.write(done, "train", record)
        notify("step", {"step": done, **record})
        bar.set_postfix({k: f"{record[k]:.3g}" for k in ("reward", "accuracy", "completion_tokens") if k in record})
        if lg.eval_every and done % lg.eval_every == 0 and done != o.steps:
            run_eval(done)
        if dp.main and ((lg.checkpoint_every and done % lg.checkpoint_every == 0) or done == o.steps):
            path = save_checkpoint(out, step=done, trainable=policy.trainable(), optimizer=optimizer, states=states,
                                   config=yaml.safe_load(yaml.safe_dump(config.to_dict())), keep=lg.keep_checkpoints)
            notify("checkpoint", {"step": done, "path": str(path)})
    bar.close()
    if start < o.steps or not result.evals:
        run_eval(o.steps)
    if lg.save_model and dp.main:
        final = out / "final"
        shutil.rmtree(final, ignore_errors=True)
        policy.export(final)
    log.close()
    return result
