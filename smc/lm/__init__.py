"""The LM layer: the LM contract, batching, vocabularies and token masks, contexts, the exact LM,
loading, and the backends (`transformers/`, `vllm`)."""

from .base import FeedResult, GenerateResult, LanguageModel
from .context import Chunk, ChunkDist, LMContext, MaskEvent, NextToken, Token
from .exact import ExactLM
from .loading import load_lm
from .vocab import TokenMask, TokenMasks, Vocabulary

__all__ = [
    "Chunk", "ChunkDist", "ExactLM", "FeedResult", "GenerateResult", "LMContext", "LanguageModel",
    "MaskEvent", "NextToken", "Token", "TokenMask", "TokenMasks", "Vocabulary", "load_lm",
]
