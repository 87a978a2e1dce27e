"""The systems under test, by name: each a `Runner` bound to the shared model.

``selfsteer`` (token-level SMC), ``selfsteer-chunk`` (the free task as one fused chunk),
``selfsteer-unpacked`` (the constrained tasks without the CPU backend's packed linears: an
ablation), ``genlm-control`` (AWRS SMC), ``llamppl`` (its standard SMC) and ``generate`` (plain
batched Hugging Face sampling). `make_runners` builds the requested ones; a system
whose package is missing is reported with the reason instead of failing the run.
"""

from __future__ import annotations

import importlib.util

from ..environment import SharedModel
from .base import Outcome, Runner
from .generate_runner import GenerateRunner
from .genlm_runner import GenlmRunner
from .llamppl_runner import LlampplRunner
from .selfsteer_runner import SelfsteerChunkRunner, SelfsteerRunner, SelfsteerUnpackedRunner

RUNNERS: dict[str, type[Runner]] = {
    r.name: r for r in (
        SelfsteerRunner, SelfsteerChunkRunner, SelfsteerUnpackedRunner, GenlmRunner, LlampplRunner, GenerateRunner
    )
}
NEEDS = {"genlm-control": "genlm.control", "llamppl": "llamppl"}
INSTALL = {"genlm-control": "pip install 'genlm-control>=0.4,<0.5'", "llamppl": "pip install llamppl==0.2.3"}


def unavailable_reason(name: str) -> str | None:
    """Why system ``name`` cannot run here (None if it can)."""
    if name not in RUNNERS:
        raise ValueError(f"unknown system {name!r}; choose from {sorted(RUNNERS)}")
    module = NEEDS.get(name)
    if module and importlib.util.find_spec(module.split(".")[0]) is None:
        return f"{module} is not installed: {INSTALL[name]}"
    return None


def make_runners(names: list[str], shared: SharedModel) -> tuple[list[Runner], dict[str, str]]:
    """Runners for ``names`` that can run, and ``{name: reason}`` for those that cannot."""
    runners, missing = [], {}
    for name in names:
        reason = unavailable_reason(name)
        if reason is not None:
            missing[name] = reason
            continue
        try:
            runners.append(RUNNERS[name](shared))
        except Exception as e:  # a system that fails to set up is reported, not fatal
            missing[name] = f"setup failed: {type(e).__name__}: {e}"
    return runners, missing


__all__ = ["RUNNERS", "Outcome", "Runner", "make_runners", "unavailable_reason"]
