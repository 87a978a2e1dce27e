"""Vocabularies and token masks, computed once per vocabulary.

A `TokenMask` is a set of token ids (a boolean array over the vocabulary). Text masks look at a
token's decoded text and never contain special tokens (EOS, chat markers); add ``masks.eos``
explicitly where a program allows the sequence to end, e.g. ``masks.without("e") | masks.eos``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property

import numpy as np

from ..weights import logsumexp

PUNCTUATION_CHARS = set(string.punctuation) | {"…", "“", "”", "‘", "’", "—", "–"}


class TokenMask:
    """An immutable set of token ids over a vocabulary of ``size`` tokens."""

    __slots__ = ("name", "array", "_ids", "_weights", "_log_weights", "_excluded", "_inverse")

    def __init__(self, name: str, array: np.ndarray):
        self.name = name
        self.array = np.asarray(array, dtype=bool)
        self.array.flags.writeable = False
        self._ids: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._log_weights: np.ndarray | None = None
        self._excluded: np.ndarray | None = None
        self._inverse: TokenMask | None = None

    @property
    def excluded(self) -> np.ndarray:
        """True off the mask's ids (read-only, computed once): the ``disallowed`` array of a draw."""
        if self._excluded is None:
            self._excluded = ~self.array
            self._excluded.flags.writeable = False
        return self._excluded

    @property
    def weights(self) -> np.ndarray:
        """1.0 on the mask's ids, 0.0 elsewhere (float32, computed once)."""
        if self._weights is None:
            self._weights = self.array.astype(np.float32)
            self._weights.flags.writeable = False
        return self._weights

    @property
    def log_weights(self) -> np.ndarray:
        """0.0 on the mask's ids, -inf elsewhere (float32, computed once): ``log_p + log_weights``
        restricts a log-distribution to the mask in one vectorised pass."""
        if self._log_weights is None:
            self._log_weights = log_indicator(self.array)
            self._log_weights.flags.writeable = False
        return self._log_weights

    @property
    def ids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = np.flatnonzero(self.array)
        return self._ids

    def __contains__(self, token_id: int) -> bool:
        return bool(self.array[int(token_id)])

    def __len__(self) -> int:
        return int(self.array.sum())

    def __and__(self, other: TokenMask) -> TokenMask:
        return TokenMask(f"({self.name} & {other.name})", self.array & other.array)

    def __or__(self, other: TokenMask) -> TokenMask:
        return TokenMask(f"({self.name} | {other.name})", self.array | other.array)

    def __invert__(self) -> TokenMask:
        """The complement, made once: ``~m`` is the same object on every call (and ``~~m is m``),
        so a mask written ``~lm.masks.eos`` inside ``step`` keeps its cached arrays and the
        backend's device copy from step to step."""
        if self._inverse is None:
            self._inverse = TokenMask(f"~{self.name}", ~self.array)
            self._inverse._inverse = self
        return self._inverse

    def __repr__(self) -> str:
        return f"TokenMask({self.name}, {len(self)} tokens)"

    def __deepcopy__(self, memo):
        return self


def log_indicator(allowed: np.ndarray) -> np.ndarray:
    """0.0 where the boolean ``allowed`` is True, -inf elsewhere (float32)."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(allowed, dtype=np.float32))


def restrict_log_probs(log_p: np.ndarray, allowed: TokenMask | np.ndarray) -> np.ndarray:
    """``log_p`` with ``-inf`` outside ``allowed`` (a `TokenMask` or a boolean array), unnormalised."""
    if isinstance(allowed, TokenMask):
        return log_p + allowed.log_weights
    return log_p + log_indicator(allowed)


def log_mass(log_p: np.ndarray, allowed: TokenMask) -> float:
    """``log sum(exp(log_p[allowed]))``: the log-probability of the set ``allowed``.

    One vectorised pass (exponentials in the row's dtype, summed in float64); a mass below 1e-30
    of the top token's, where float32 exponentials lose precision, is summed exactly instead.
    """
    m = float(np.max(log_p))
    if m == -math.inf:
        return -math.inf
    s = float(np.sum(np.exp(log_p - m) * allowed.weights, dtype=np.float64))
    if s > 1e-30:
        return m + math.log(s)
    return logsumexp(np.asarray(log_p, dtype=np.float64)[allowed.array])


class Vocabulary:
    """Token ids to bytes and text, plus which ids are EOS and which are special."""

    def __init__(self, token_bytes: Sequence[bytes], eos_ids: Iterable[int], special_ids: Iterable[int] = ()):
        self.token_bytes = list(token_bytes)
        self.eos_ids = frozenset(int(i) for i in eos_ids)
        if not self.eos_ids:
            raise ValueError("a vocabulary needs at least one end-of-sequence token")
        self.special_ids = frozenset(int(i) for i in special_ids) | self.eos_ids
        self.texts = [b.decode("utf-8", errors="replace") for b in self.token_bytes]

    @property
    def size(self) -> int:
        return len(self.token_bytes)

    @property
    def eos_id(self) -> int:
        return min(self.eos_ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ordinary tokens (special tokens are left out)."""
        return b"".join(self.token_bytes[i] for i in ids if i not in self.special_ids).decode(
            "utf-8", errors="replace"
        )

    def __deepcopy__(self, memo):
        return self


class TokenMasks:
    """Masks over one vocabulary, each computed once on first use and then reused.

    Attributes: ``eos``, ``special``, ``word_start`` (whitespace then a letter or digit: starts a
    new word), ``word_continuation`` (begins with a letter, digit or apostrophe: continues the
    current word), ``punctuation`` (punctuation only, optional leading space), ``newline``,
    ``whitespace`` (only whitespace), ``alphabetic``. Methods: ``containing(chars)``,
    ``without(chars)``, ``length(min_chars, max_chars)``, ``where(name, predicate)``.
    """

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self._special = np.zeros(vocab.size, dtype=bool)
        self._special[list(vocab.special_ids)] = True
        self._cache: dict[str, TokenMask] = {}

    def __deepcopy__(self, memo):
        return self

    def where(self, name: str, predicate: Callable[[str], bool]) -> TokenMask:
        """Ordinary tokens whose text satisfies ``predicate``; memoised under ``name``."""
        if name not in self._cache:
            arr = np.fromiter((predicate(t) for t in self.vocab.texts), dtype=bool, count=self.vocab.size)
            self._cache[name] = TokenMask(name, arr & ~self._special)
        return self._cache[name]

    @cached_property
    def eos(self) -> TokenMask:
        arr = np.zeros(self.vocab.size, dtype=bool)
        arr[list(self.vocab.eos_ids)] = True
        return TokenMask("eos", arr)

    @cached_property
    def special(self) -> TokenMask:
        return TokenMask("special", self._special.copy())

    @property
    def word_start(self) -> TokenMask:
        return self.where("word_start", lambda t: len(t) > 1 and t[0].isspace() and t.lstrip()[:1].isalnum())

    @property
    def word_continuation(self) -> TokenMask:
        return self.where("word_continuation", lambda t: t[:1].isalnum() or t[:1] in "'’")

    @property
    def punctuation(self) -> TokenMask:
        return self.where(
            "punctuation", lambda t: bool(t.strip()) and t.lstrip(" ") == t.strip() and all(c in PUNCTUATION_CHARS for c in t.strip())
        )

    @property
    def newline(self) -> TokenMask:
        return self.where("newline", lambda t: "\n" in t)

    @property
    def whitespace(self) -> TokenMask:
        return self.where("whitespace", lambda t: bool(t) and t.isspace())

    @property
    def alphabetic(self) -> TokenMask:
        return self.where("alphabetic", lambda t: bool(t.strip()) and t.strip().isalpha())

    def containing(self, chars: str, *, case_sensitive: bool = True) -> TokenMask:
        """Ordinary tokens whose text contains at least one of ``chars``."""
        key = chars if case_sensitive else chars.lower()
        if case_sensitive:
            return self.where(f"containing({chars!r})", lambda t: any(c in t for c in key))
        return self.where(f"containing_ci({key!r})", lambda t: any(c in t.lower() for c in key))

    def without(self, chars: str, *, case_sensitive: bool = True) -> TokenMask:
        """Ordinary tokens whose text contains none of ``chars`` (special tokens excluded)."""
        key = chars if case_sensitive else chars.lower()
        if case_sensitive:
            return self.where(f"without({chars!r})", lambda t: not any(c in t for c in key))
        return self.where(f"without_ci({key!r})", lambda t: not any(c in t.lower() for c in key))

    def length(self, min_chars: int = 0, max_chars: int | None = None) -> TokenMask:
        """Ordinary tokens with ``min_chars <= len(text) <= max_chars``."""
        hi = max_chars if max_chars is not None else 1 << 30
        return self.where(f"length({min_chars},{max_chars})", lambda t: min_chars <= len(t) <= hi)
