"""selfsteer.planners: from a task in plain language to a verified answer.

``solve(task)`` asks a planner for an inference program, validates it, runs it with SMC on the
follower (planner-written programs only in the sandbox), verifies the answer with the program's
``check`` and retries with the error as feedback. ``plan(task)`` returns the program alone.
Planners: the offline library planner, any OpenAI-compatible endpoint, or a local model
(`load_planner`).
"""

from .cache import AttemptRecord, ProgramCache
from .errors import PlannerError
from .evaluate import EvalReport, evaluate
from .jail import jail_layers
from .lm_planner import LMPlanner
from .load import load_planner
from .openai_client import OpenAIChat
from .plan import NoProgramFits, Plan, Planner
from .sandbox import Limits, SandboxError, SandboxUnavailable
from .solve import SolveResult, plan, solve, solve_async
from .validate import ValidationError, validate_program

__all__ = [
    "AttemptRecord", "EvalReport", "LMPlanner", "Limits", "NoProgramFits", "OpenAIChat", "Plan", "Planner",
    "PlannerError", "ProgramCache", "SandboxError", "SandboxUnavailable", "SolveResult", "ValidationError", "evaluate",
    "jail_layers", "load_planner",
    "plan", "solve", "solve_async", "validate_program",
]
