"""Test-time scaling on the particle machinery.

- `aggregate`: answers of a population and four votes (majority, confidence-weighted,
  max-confidence, likelihood); ``result.vote(method)``.
- `confidence`: RLCR's answer/confidence tags and confidence as a particle weight.
- `explore`: `Exploration`, a ``reweight`` policy for `smc` that keeps rare answers alive.
- `isotropy`, `failed_steps`, `trust`: per-result trust scores; ``result.trust()``.
- `metrics`: distinct answers, pass@k, Brier, ECE, AUROC.
- `embed`: the bundled all-MiniLM-L6-v2 sentence embedder.
- `lag_store`, `lag_kv`, `lag_retrieve`: log-augmented generation (a log store on disk, KV reuse
  on the transformers backend, retrieval by similarity); `LogMemory` ties them together.
"""

from .aggregate import AGGREGATORS, Vote, canonical_answer, revealed_answer, stated_confidence, vote
from .confidence import confidence_log_weight, parse_tagged
from .embed import EmbedderUnavailable, load_embedder
from .explore import Exploration
from .failed_steps import failed_step_fraction
from .isotropy import isotropy_trust, semantic_isotropy
from .lag_retrieve import LogMemory, Recall, nearest_logs
from .lag_store import CorruptLogWarning, LogEntry, LogKV, LogStore
from .metrics import auroc, brier, distinct_answers, ece, pass_at_k
from .trust import TrustReport, trust_of_texts, trust_report

__all__ = [
    "AGGREGATORS", "CorruptLogWarning", "EmbedderUnavailable", "Exploration", "LogEntry", "LogKV",
    "LogMemory", "LogStore", "Recall", "TrustReport", "Vote", "auroc", "brier", "canonical_answer",
    "confidence_log_weight", "distinct_answers", "ece", "failed_step_fraction", "isotropy_trust",
    "load_embedder", "nearest_logs", "parse_tagged", "pass_at_k", "revealed_answer",
    "semantic_isotropy", "stated_confidence", "trust_of_texts", "trust_report", "vote",
]
