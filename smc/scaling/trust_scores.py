"""Per-result trust scores: semantic isotropy of the responses and the failed-step fraction.

``trust(result)`` embeds the text of every finished, live particle (``text_fn``, default:
the particle's generated ``text`` or its description), computes the semantic isotropy of those
embeddings (`isotropy`) and, when the run was recorded, the failed-step fraction of its search
tree (`failed_steps`). High isotropy (low ``trust``) and a high failed-step fraction both flag
answers that are more likely wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .embed import Embedder, load_embedder
from .failed_steps import failed_step_fraction
from .isotropy import isotropy_trust, semantic_isotropy

if TYPE_CHECKING:
    from ..model import Model
    from ..result import Result


def response_text(particle: Model) -> str:
    """The particle's generated ``text`` if it has one, else its description."""
    text = getattr(particle, "text", None)
    return text if isinstance(text, str) else particle.describe()


@dataclass(frozen=True)
class TrustReport:
    """Trust scores of one run.

    Attributes:
        isotropy: von Neumann entropy of the responses' cosine kernel (nan for < 2 responses).
        trust: ``1 - isotropy / log n`` in [0, 1]; higher = more agreement.
        n_responses: how many finished, live particles were embedded.
        failed_step_fraction: share of particle-steps in abandoned branches (None: run not recorded).
    """

    isotropy: float
    trust: float
    n_responses: int
    failed_step_fraction: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def trust(
    result: Result,
    embedder: Embedder | None = None,
    *,
    text_fn: Callable[[Model], str] | None = None,
    weighted: bool = False,
) -> TrustReport:
    """Trust scores of ``result`` (see the module docstring).

    Args:
        embedder: texts -> ``(N, d)`` embeddings; default: the bundled all-MiniLM-L6-v2.
        text_fn: the response text of a particle (default `response_text`).
        weighted: weight each response by its normalised importance weight instead of uniformly.
    """
    keep = [i for i, p in enumerate(result.particles) if p.finished and p.alive]
    fsf = failed_step_fraction(result.trace) if result.trace is not None and result.algorithm == "smc" else None
    texts = [(text_fn or response_text)(result.particles[i]) for i in keep]
    weights = np.asarray(result.weights)[keep] if weighted else None
    return trust_of_texts(texts, fsf, embedder, weights=weights)


def trust_of_texts(
    texts: list[str],
    failed_step_fraction: float | None = None,
    embedder: Embedder | None = None,
    *,
    weights: np.ndarray | None = None,
) -> TrustReport:
    """Trust scores from the responses' texts (and a failed-step fraction computed elsewhere)."""
    if len(texts) < 2:
        return TrustReport(math.nan, math.nan, len(texts), failed_step_fraction)
    iso = semantic_isotropy((embedder or load_embedder())(texts), weights)
    return TrustReport(iso, isotropy_trust(iso, len(texts)), len(texts), failed_step_fraction)
