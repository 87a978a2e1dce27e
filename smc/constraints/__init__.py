"""Constrained generation: `Regex`, `Grammar` and `JsonSchema` specs (`specs`), their lift to
token-level masks (`token_constraint`), spans that keep a context's text inside a language
(`span`), adaptive weighted rejection sampling (`awrs`), and `genlm_adapter`, the one module that calls
into genlm-control."""

from .span import ConstrainedSpan, ConstrainedToken
from .specs import ConstraintSpec, Grammar, JsonSchema, Regex

__all__ = ["ConstrainedSpan", "ConstrainedToken", "ConstraintSpec", "Grammar", "JsonSchema", "Regex"]
