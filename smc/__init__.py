"""selfsteer.smc: inference programs, distributions, SMC, and the LM layer.

Write a program by subclassing `Model` (or `TextModel` for text with a prior and a proposal),
then run it with `smc` (or `smc_steer`) and read the `Result`.
"""

from .constraints import ConstrainedSpan, Grammar, JsonSchema, Regex
from .distributions import Bernoulli, Categorical, Distribution, Geometric, ZeroProbability
from .inference import ProgramError, smc, smc_async
from .lm import Chunk, ExactLM, LanguageModel, LMContext, Token, TokenMask, load_lm
from .model import Model
from .resampling import RESAMPLERS
from .result import Result, Status
from .steer import smc_steer, smc_steer_async
from .text_model import TextModel
from .trace import Trace

__all__ = [
    "RESAMPLERS", "Bernoulli", "Categorical", "Chunk", "ConstrainedSpan", "Distribution", "ExactLM",
    "Geometric", "Grammar", "JsonSchema", "LMContext", "LanguageModel", "Model", "ProgramError",
    "Regex", "Result", "Status", "Token",
    "TextModel", "TokenMask", "Trace", "ZeroProbability", "load_lm", "smc", "smc_async", "smc_steer",
    "smc_steer_async",
]
