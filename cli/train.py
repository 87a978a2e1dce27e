"""``selfsteer train CONFIG.yaml``: post-train the follower model with an RL or meta-learning objective.

Writes under the config's ``out_dir``: ``metrics.jsonl``, ``tensorboard/``, ``checkpoints/`` (resume
with ``--resume``), ``final/`` (the trained model, loadable with ``load_lm``; LoRA runs save only ``final/adapter`` unless
``model.lora.merge`` is true).
``--set section.key=value`` overrides a setting; ``--check`` only validates the config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .threads import add_threads, apply_threads


def register(sub) -> None:
    p = sub.add_parser("train", help="train the follower model with an RL or meta-learning objective")
    p.add_argument("config", type=Path, help="a YAML training config (see selfsteer.training.TrainConfig)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in out_dir")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set optim.lr=1.0e-5 (repeatable)")
    p.add_argument("--out-dir", default=None, help="write here instead of the config's out_dir")
    add_threads(p)
    p.add_argument("--check", action="store_true", help="validate the config, print it and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from selfsteer.training import ConfigError, load_config, train
    from selfsteer.training.policy import MissingPackage

    overrides = list(args.overrides) + ([f"out_dir={args.out_dir}"] if args.out_dir else [])
    try:
        config = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"error: {args.config}: {e}", file=sys.stderr)
        return 2
    if args.check:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    apply_threads(args)
    try:
        result = train(config, resume=args.resume)
    except (ConfigError, MissingPackage) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    last = result.evals[-1] if result.evals else {}
    summary = ", ".join(f"{k} {v:.3g}" for k, v in last.items() if k != "step" and isinstance(v, float))
    print(f"trained {result.steps} steps; outputs in {result.out_dir}" + (f"; held-out: {summary}" if summary else ""))
    return 0
