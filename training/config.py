"""Training configuration: typed, frozen dataclasses grouped by concern, loaded from YAML.

A run is described by one `TrainConfig`:

```yaml
seed: 0
out_dir: runs/addition-grpo
model:     {name: null, lora: {r: 8, alpha: 16}}        # null: the bundled SmolLM2-135M-Instruct
task:      {name: addition, n_train: 256, n_eval: 64}
objective: {name: rlcr}                                  # plus that objective's own settings
sampling:  {group_size: 8, questions_per_step: 4, max_tokens: 32, temperature: 1.0}
optim:     {steps: 50, lr: 1.0e-5, grad_accum: 2}
loss:      {agg: token, kl_coef: 0.0}
log:       {checkpoint_every: 10, eval_every: 25}
```

Every field is documented once, on its dataclass. `load_config` checks names, types and ranges
and reports each problem with its dotted path (``optim.lr: expected a number, got 'fast'``); an
unknown name gets the closest valid one. The objective's own settings (``objective.alpha`` for
LENS, ...) are checked against that objective's parameter dataclass, found in the registry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .schema import ConfigError, build


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters (needs ``pip install peft``); only the adapters are trained."""

    r: int = 8  # rank of each adapter
    alpha: int = 16  # scaling numerator: the update is (alpha / r) * B @ A
    dropout: float = 0.0  # dropout on the adapter input (keep 0 for bit-exact resume)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # module names to adapt
    layers: tuple[int, ...] | None = None  # adapt only these layer indices (e.g. the top ones: cheaper backward)


@dataclass(frozen=True)
class ModelSettings:
    """The follower (proposal) model that is trained."""

    name: str | None = None  # None: bundled SmolLM2-135M-Instruct; else a directory, .gguf file or hub id
    dtype: Literal["float32", "bfloat16"] = "float32"  # training dtype (float32 on CPU)
    device: str | None = None  # "cpu", "cuda", ...; None: CUDA when available
    lora: LoraSettings | None = None  # None: full-parameter training


@dataclass(frozen=True)
class TaskSettings:
    """Where questions come from (see `selfsteer.training.questions`)."""

    name: str = "addition"  # a built-in task: addition, counting, facts; or "jsonl" with `path`
    path: str | None = None  # a JSONL file of {"prompt", "answer"[, "id", "context"]} rows (name: jsonl)
    n_train: int = 256  # training questions generated (built-in tasks) or read (first n of the file)
    n_eval: int = 64  # held-out questions for evaluation
    max_operand: int = 20  # built-in addition/counting: the largest number involved


@dataclass(frozen=True)
class SamplingSettings:
    """Rollouts: each question gets a group of ``group_size`` particles from the follower."""

    group_size: int = 8  # G: completions per question (particles of one SMC run)
    questions_per_step: int = 4  # B: questions per training step (B*G completions)
    max_tokens: int = 64  # L: a completion that reaches L sampled tokens is truncated
    temperature: float = 1.0  # sampling temperature; training log-probs use the same tempering
    prompt: Literal["chat", "qa"] = "chat"  # chat: a user message (chat template); qa: plain "Q: ...\nA:"
    program: str | None = None  # rollout program (see objectives.PROGRAMS); None: the objective's default


@dataclass(frozen=True)
class OptimSettings:
    """AdamW with a learning-rate schedule; one step = one batch of rollouts."""

    steps: int = 100  # number of training steps (rollout batches)
    lr: float = 1e-6  # peak learning rate
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # decay after warmup
    warmup_steps: int = 0  # linear warmup from 0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = 1.0  # gradient clipping; None: off
    grad_accum: int = 1  # micro-batches per optimiser step (memory only: the gradient is the same)
    iterations_per_batch: int = 1  # optimiser updates per rollout batch (>1 makes the ratio matter)


@dataclass(frozen=True)
class LossSettings:
    """Policy-gradient loss; ``None`` fields take the objective's default."""

    kind: Literal["clipped", "reinforce"] | None = None  # clipped ratio (GRPO/PPO) or ratio-free REINFORCE
    agg: Literal["token", "sequence", "constant"] | None = None  # see `losses.aggregate`
    clip_low: float = 0.2  # ratio clipped below at 1 - clip_low
    clip_high: float | None = None  # ratio clipped above at 1 + clip_high (None: clip_low; DAPO: 0.28)
    kl_coef: float = 0.0  # beta: weight of the k3 KL to the frozen starting model (0: no reference)
    mask_truncated: bool = False  # drop truncated completions from the loss (DAPO; TRL mask_truncated_completions)


@dataclass(frozen=True)
class LogSettings:
    """What is written under ``out_dir`` and how often."""

    every: int = 1  # write metrics every this many steps
    checkpoint_every: int = 10  # save a resumable checkpoint every this many steps (0: only at the end)
    keep_checkpoints: int = 2  # how many recent checkpoints to keep
    eval_every: int = 0  # evaluate on held-out questions every this many steps (0: before and after only)
    eval_questions: int = 32  # held-out questions per evaluation (0: never evaluate)
    eval_samples: int = 4  # completions per held-out question
    tensorboard: bool = True  # also write TensorBoard events (needs `pip install tensorboard`)
    progress: bool = True  # show a progress bar
    save_model: bool = True  # export the trained model (or LoRA adapter) to out_dir/final


@dataclass(frozen=True)
class ObjectiveSettings:
    """Which objective, and its own parameters (a frozen dataclass from the objective registry)."""

    name: str = "grpo"
    params: Any = None  # the objective's parameter dataclass, filled in by `load_config`


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    out_dir: str = "runs/train"  # metrics, checkpoints and the final model go here
    seed: int = 0  # fixes question order, rollouts and initialisation of adapters
    model: ModelSettings = field(default_factory=ModelSettings)
    task: TaskSettings = field(default_factory=TaskSettings)
    objective: ObjectiveSettings = field(default_factory=ObjectiveSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    loss: LossSettings = field(default_factory=LossSettings)
    log: LogSettings = field(default_factory=LogSettings)

    def to_dict(self) -> dict:
        """Plain nested dict (round-trips through `config_from_dict`)."""
        out = dataclasses.asdict(self)
        params = out["objective"].pop("params") or {}
        out["objective"].update(params)
        return out


def config_from_dict(data: dict) -> TrainConfig:
    """A validated `TrainConfig` from a nested dict (as read from YAML)."""
    from .objectives import objective_params_class

    if not isinstance(data, dict):
        raise ConfigError(f"a training config is a mapping of settings, got {type(data).__name__}")
    data = dict(data)
    objective = data.pop("objective", None) or {}
    if not isinstance(objective, dict):
        raise ConfigError(f"objective: expected a mapping like {{name: grpo}}, got {objective!r}")
    objective = dict(objective)
    name = objective.pop("name", "grpo")
    params_cls = objective_params_class(name)
    params = build(params_cls, objective, f"objective ({name})")
    config = build(TrainConfig, data)
    config = dataclasses.replace(config, objective=ObjectiveSettings(name=name, params=params))
    validate(config)
    return config


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML file, apply ``key.sub=value`` overrides, and validate."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    for item in overrides:
        apply_override(data, item)
    return config_from_dict(data)


def apply_override(data: dict, item: str) -> None:
    """Set ``a.b.c=value`` in nested ``data``; the value is parsed as YAML (numbers, lists, null)."""
    import yaml

    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value, e.g. optim.lr=1.0e-5")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(config: TrainConfig) -> None:
    """Range checks across sections (types were checked while building)."""
    s, o, lo, lg = config.sampling, config.optim, config.loss, config.log
    _check(s.group_size >= 2, f"sampling.group_size must be >= 2 (group advantages need two samples), got {s.group_size}")
    _check(s.questions_per_step >= 1, f"sampling.questions_per_step must be >= 1, got {s.questions_per_step}")
    _check(s.max_tokens >= 1, f"sampling.max_tokens must be >= 1, got {s.max_tokens}")
    _check(s.temperature > 0, f"sampling.temperature must be > 0, got {s.temperature}")
    _check(o.steps >= 1, f"optim.steps must be >= 1, got {o.steps}")
    _check(o.lr > 0, f"optim.lr must be > 0, got {o.lr}")
    _check(0 <= o.warmup_steps <= o.steps, f"optim.warmup_steps must lie in [0, optim.steps={o.steps}], got {o.warmup_steps}")
    _check(o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}")
    _check(all(0 <= b < 1 for b in o.betas), f"optim.betas must lie in [0, 1), got {list(o.betas)}")
    _check(o.max_grad_norm is None or o.max_grad_norm > 0, f"optim.max_grad_norm must be > 0 or null, got {o.max_grad_norm}")
    n_seq = s.questions_per_step * s.group_size
    _check(1 <= o.grad_accum <= n_seq,
           f"optim.grad_accum must lie in [1, questions_per_step * group_size = {n_seq}], got {o.grad_accum}")
    _check(o.iterations_per_batch >= 1, f"optim.iterations_per_batch must be >= 1, got {o.iterations_per_batch}")
    _check(0 <= lo.clip_low < 1, f"loss.clip_low must lie in [0, 1), got {lo.clip_low}")
    _check(lo.clip_high is None or lo.clip_high >= 0, f"loss.clip_high must be >= 0 or null, got {lo.clip_high}")
    _check(lo.kl_coef >= 0, f"loss.kl_coef must be >= 0, got {lo.kl_coef}")
    _check(lg.every >= 1, f"log.every must be >= 1, got {lg.every}")
    _check(lg.checkpoint_every >= 0, f"log.checkpoint_every must be >= 0, got {lg.checkpoint_every}")
    _check(lg.keep_checkpoints >= 1, f"log.keep_checkpoints must be >= 1, got {lg.keep_checkpoints}")
    _check(lg.eval_every >= 0, f"log.eval_every must be >= 0, got {lg.eval_every}")
    _check(lg.eval_questions >= 0 and lg.eval_samples >= 1,
           "log.eval_questions must be >= 0 (0: no evaluation) and log.eval_samples >= 1")
    t = config.task
    _check(t.n_train >= 1 and t.n_eval >= 0, f"task.n_train must be >= 1 and task.n_eval >= 0, got {t.n_train}, {t.n_eval}")
    _check(t.name != "jsonl" or t.path is not None, "task.name is 'jsonl' but task.path is not set; give the JSONL file")
    if config.model.lora is not None:
        lr_ = config.model.lora
        _check(lr_.r >= 1 and lr_.alpha >= 1, f"model.lora.r and model.lora.alpha must be >= 1, got {lr_.r}, {lr_.alpha}")
        _check(0 <= lr_.dropout < 1, f"model.lora.dropout must lie in [0, 1), got {lr_.dropout}")
    params = config.objective.params
    check = getattr(params, "check", None)
    if check is not None:
        check(config)
