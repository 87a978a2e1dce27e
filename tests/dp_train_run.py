"""One GRPO run of the tiny random Llama on the coin task, for the data-parallel tests.

    python tests/dp_train_run.py OUT_DIR STEPS [--resume]                      # one process
    torchrun --nproc_per_node 2 tests/dp_train_run.py OUT_DIR STEPS [--resume]  # two (gloo, CPU)

Four questions of four samples per step, two micro-batches per process-step.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_lm import coin_task, tiny_lm  # noqa: E402

from selfsteer.training import config_from_dict, train, wrap_policy  # noqa: E402


def main(out_dir: str, steps: int, resume: bool) -> None:
    torch.set_num_threads(1)
    config = config_from_dict({
        "out_dir": out_dir, "seed": 1, "objective": {"name": "grpo"},
        "sampling": {"group_size": 4, "questions_per_step": 4, "max_tokens": 6, "prompt": "qa"},
        "optim": {"steps": steps, "lr": 1e-2, "grad_accum": 2},
        "log": {"eval_questions": 2, "eval_samples": 2, "progress": False, "tensorboard": False,
                "checkpoint_every": 1, "save_model": False},
    })
    train(config, resume=resume, policy=wrap_policy(tiny_lm()), task=coin_task())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), "--resume" in sys.argv[3:])
