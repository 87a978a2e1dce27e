"""The objective registry: each name maps to its parameter dataclass and a builder.

RL recipes (`Recipe`, run by `RLObjective`): ``grpo``, ``dr_grpo``, ``rloo``, ``reinforce``,
``rlcr``, ``lens``, ``exploration``, ``thinkprune``, ``asymre``. Other objectives: ``meta_prompt``
(gradient steps that emulate prompting) and ``pilaf`` (online DPO on interpolated-policy pairs).
Rollout programs are registered in ``PROGRAMS`` (``free``, ``line``, ``confidence``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..rollout import LineRollout, Rollout
from ..schema import ConfigError
from . import asymre, exploration, grpo, lens, meta_prompt, pilaf, rlcr, thinkprune
from .contract import Objective
from .recipe import Recipe


@dataclass(frozen=True)
class ObjectiveSpec:
    params: type
    build: Callable | None  # (params, config, task) -> Recipe; None for non-RL objectives
    summary: str
    needs_reference: bool = False


OBJECTIVES: dict[str, ObjectiveSpec] = {
    "grpo": ObjectiveSpec(grpo.GRPOParams, grpo.build_grpo, "GRPO: z-scored group advantages, clipped ratio"),
    "dr_grpo": ObjectiveSpec(grpo.NoParams, grpo.build_dr_grpo, "Dr.GRPO: no std scaling, constant normaliser"),
    "rloo": ObjectiveSpec(grpo.NoParams, grpo.build_rloo, "RLOO: leave-one-out baseline"),
    "reinforce": ObjectiveSpec(grpo.ReinforceParams, grpo.build_reinforce, "ratio-free REINFORCE"),
    "rlcr": ObjectiveSpec(rlcr.RLCRParams, rlcr.build, "RLCR: correctness + Brier calibration, format gate"),
    "lens": ObjectiveSpec(lens.LensParams, lens.build, "LENS: confidence-weighted negative rewards"),
    "exploration": ObjectiveSpec(exploration.ExplorationParams, exploration.build,
                                 "outcome-based exploration: UCB / batch answer bonuses"),
    "thinkprune": ObjectiveSpec(thinkprune.ThinkPruneParams, thinkprune.build,
                                "ThinkPrune: hard token limit, truncated = 0, decreasing schedule"),
    "asymre": ObjectiveSpec(asymre.AsymREParams, asymre.build, "AsymRE: REINFORCE with baseline mean + delta"),
    "meta_prompt": ObjectiveSpec(meta_prompt.MetaPromptParams, None,
                                 "meta-learning: one inner step on a context emulates prompting with it", True),
    "pilaf": ObjectiveSpec(pilaf.PilafParams, None, "PILAF: online DPO on interpolated-policy pairs", True),
}

PROGRAMS: dict[str, type[Rollout]] = {"free": Rollout, "line": LineRollout, "confidence": rlcr.ConfidenceRollout}


def objective_params_class(name: str) -> type:
    """The parameter dataclass of objective ``name`` (the error lists the valid names)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"objective.name: unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name].params


def needs_reference(config) -> bool:
    """Whether the run needs a frozen copy of the starting model."""
    return OBJECTIVES[config.objective.name].needs_reference or config.loss.kl_coef > 0


def build_recipe(config, task) -> Recipe:
    """The `Recipe` of an RL objective."""
    spec = OBJECTIVES[config.objective.name]
    if spec.build is None:
        raise ValueError(f"{config.objective.name} is not a group-RL recipe")
    return spec.build(config.objective.params, config, task)


def build_objective(config, task, policy, *, states: dict[str, dict] | None = None) -> Objective:
    """The `Objective` for ``config`` around ``policy`` (``states``: per-question persistent state)."""
    name = config.objective.name
    params = config.objective.params
    if name == "meta_prompt":
        return meta_prompt.MetaPromptObjective(params, policy, task, prompt=config.sampling.prompt)
    if name == "pilaf":
        return pilaf.PilafObjective(params, policy, task, sampling=config.sampling, loss=config.loss,
                                          seed=config.seed)
    from ..rl import RLObjective

    recipe = build_recipe(config, task)
    program = None
    if config.sampling.program is not None:
        if config.sampling.program not in PROGRAMS:
            raise ConfigError(f"sampling.program: unknown program {config.sampling.program!r}; choose one of {sorted(PROGRAMS)}")
        program = PROGRAMS[config.sampling.program]
    return RLObjective(recipe, policy, task, sampling=config.sampling, loss=config.loss, seed=config.seed,
                       program=program, states=states)
