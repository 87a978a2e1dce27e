"""selfsteer.training: post-train the follower (proposal) model with RL and meta-learning objectives.

Rollouts come from the SMC engine (a GRPO group is the particle population of one run), the
gradient from a teacher-forced pass on the Hugging Face model. Objectives are small composable
pieces: reward functions (`rewards`), advantage functions and hooks (`advantages`,
`objectives`), losses with explicit aggregation (`losses`), put together by a `Recipe`.

    from selfsteer.training import load_config, train
    result = train(load_config("tutorials/03_training/configs/rlcr.yaml"))

or ``selfsteer train tutorials/03_training/configs/rlcr.yaml``. See `TrainConfig` for every setting and
``OBJECTIVES`` for the objectives (grpo, dr_grpo, rloo, reinforce, rlcr, lens, exploration,
thinkprune, asymre, meta_prompt, pilaf).
"""

from .advantages import ADVANTAGES
from .config import ConfigError, TrainConfig, config_from_dict, load_config
from .evaluate import evaluate
from .loop import TrainResult, train
from .losses import LOSSES
from .metrics import auroc, brier, distinct_answers, ece
from .objectives import OBJECTIVES, PROGRAMS, build_objective
from .objectives.recipe import Recipe
from .policy import Policy, load_policy, wrap_policy
from .rewards import correctness, from_trl, score
from .rollout import Rollout, Sample, sample_groups
from .tasks import Question, Task, load_task

__all__ = [
    "ADVANTAGES", "LOSSES", "OBJECTIVES", "PROGRAMS", "ConfigError", "Policy", "Question", "Recipe", "Rollout",
    "Sample", "Task", "TrainConfig", "TrainResult", "auroc", "brier", "build_objective", "config_from_dict",
    "correctness", "distinct_answers", "ece", "evaluate", "from_trl", "load_config", "load_policy", "load_task",
    "sample_groups", "score", "train", "wrap_policy",
]
