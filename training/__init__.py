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

from selfsteer.smc.scaling.metrics import auroc, brier, ece, mean_distinct_answers

from .advantages import ADVANTAGES
from .config import TrainConfig, config_from_dict, load_config
from .evaluate import evaluate
from .loop import TrainResult, train
from .losses import LOSSES
from .objectives import OBJECTIVES, PROGRAMS, build_objective
from .objectives.recipe import Recipe
from .policy import Policy, load_policy, wrap_policy
from .questions import Question, Task, load_task
from .rewards import correctness, from_trl, score
from .rollout import Rollout, Sample, sample_groups
from .schema import ConfigError

__all__ = [
    "ADVANTAGES", "LOSSES", "OBJECTIVES", "PROGRAMS", "ConfigError", "Policy", "Question", "Recipe", "Rollout",
    "Sample", "Task", "TrainConfig", "TrainResult", "auroc", "brier", "build_objective", "config_from_dict",
    "correctness", "ece", "evaluate", "from_trl", "load_config", "load_policy", "load_task",
    "mean_distinct_answers", "sample_groups", "score", "train", "wrap_policy",
]
