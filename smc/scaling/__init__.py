"""Test-time scaling on the particle machinery. It takes results; the core never imports it.

- `answers`: RLCR's answer/confidence tags, the canonical form of an answer and four votes
  (majority, confidence-weighted, max-confidence, likelihood): ``vote(result, method)``. One
  module for programs, scaling and training.
- `confidence`: stated confidence as a particle weight.
- `explore`: `Exploration`, a ``reweight`` policy for `smc` that keeps rare answers alive.
- `isotropy`, `failed_steps`, `trust_scores`: per-result trust scores, ``trust(result)``.
- `metrics`: distinct answers, pass@k, Brier, ECE, AUROC.
- `options`: `ScalingOptions`, the explore / vote / trust settings of one run (JSON round trip).
- `embed`: the bundled all-MiniLM-L6-v2 sentence embedder.
- `lag_store`, `lag_kv`, `lag_retrieve`: log-augmented generation (a log store on disk, KV reuse
  on the transformers backend, retrieval by similarity); `LogMemory` ties them together.
"""

from .answers import (
    AGGREGATORS,
    Tagged,
    Vote,
    canonical_answer,
    final_answers,
    last_number,
    parse_confidence,
    parse_tagged,
    revealed_answer,
    stated_confidence,
    vote,
    vote_answers,
)
from .confidence import confidence_log_weight
from .embed import EmbedderUnavailable, load_embedder
from .explore import Exploration
from .failed_steps import failed_step_fraction
from .isotropy import isotropy_trust, semantic_isotropy
from .lag_retrieve import LogMemory, Recall, nearest_logs
from .lag_store import CorruptLogWarning, LogEntry, LogKV, LogStore
from .metrics import auroc, brier, distinct_answers, ece, mean_distinct_answers, pass_at_k
from .options import ScalingOptions
from .trust_scores import TrustReport, trust, trust_of_texts

__all__ = [
    "AGGREGATORS", "CorruptLogWarning", "EmbedderUnavailable", "Exploration", "LogEntry", "LogKV",
    "LogMemory", "LogStore", "Recall", "ScalingOptions", "Tagged", "TrustReport", "Vote", "auroc", "brier",
    "canonical_answer", "confidence_log_weight", "distinct_answers", "ece", "failed_step_fraction",
    "final_answers", "isotropy_trust", "last_number", "load_embedder", "mean_distinct_answers", "nearest_logs",
    "parse_confidence", "parse_tagged", "pass_at_k", "revealed_answer", "semantic_isotropy", "stated_confidence",
    "trust", "trust_of_texts", "vote", "vote_answers",
]
