"""The LM layer: backends, contexts, token masks, constraints."""

from .base import FeedResult, GenerateResult, LanguageModel
from .constraints import ConstraintSpec, Grammar, JsonSchema, Regex
from .context import Chunk, ChunkDist, LMContext, MaskEvent, NextToken, Token
from .exact import ExactLM
from .loading import load_lm
from .span import ConstrainedSpan, ConstrainedToken
from .vocab import TokenMask, TokenMasks, Vocabulary

__all__ = [
    "Chunk", "ChunkDist", "ConstrainedSpan", "ConstrainedToken", "ConstraintSpec", "ExactLM",
    "FeedResult", "GenerateResult", "Grammar", "JsonSchema", "LMContext", "LanguageModel",
    "MaskEvent", "NextToken", "Regex", "Token", "TokenMask", "TokenMasks", "Vocabulary", "load_lm",
]
