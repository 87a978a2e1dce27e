"""How the library programs read text: words, sentences and lines.

These definitions are the contract every program's ``check`` uses:

- A **word** is a whitespace-separated piece with its leading and trailing punctuation removed;
  pieces made only of punctuation are not words. ``"Hello, world!"`` has the words
  ``["Hello", "world"]``; ``"don't"`` is one word of five characters.
- A **sentence** ends at ``.``, ``!`` or ``?`` (runs like ``?!`` included) followed by whitespace
  or the end of the text.
- A **line** is a non-empty line of the text (surrounding whitespace removed).

Word comparisons ignore case (``same_word("The", "the")``).
"""

from __future__ import annotations

import re
import string

PUNCTUATION = string.punctuation + "“”‘’—–…"
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]”’]*\s+")


def words(text: str) -> list[str]:
    """The words of ``text`` (see the module docstring)."""
    out = []
    for piece in text.split():
        word = piece.strip(PUNCTUATION)
        if word:
            out.append(word)
    return out


def count_words(text: str) -> int:
    return len(words(text))


def same_word(a: str, b: str) -> bool:
    """Equal as words: punctuation around them and case ignored."""
    return a.strip(PUNCTUATION).lower() == b.strip(PUNCTUATION).lower()


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped; a trailing fragment without end punctuation counts too."""
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


def ends_sentence(text: str) -> bool:
    """True if ``text`` (stripped) ends with ``.``, ``!`` or ``?``."""
    return text.rstrip().rstrip("\"')]”’").endswith((".", "!", "?"))


def is_one_sentence(text: str) -> bool:
    """One line holding exactly one sentence that ends with ``.``, ``!`` or ``?``."""
    text = text.strip()
    return bool(text) and "\n" not in text and ends_sentence(text) and len(sentences(text)) == 1


def lines(text: str) -> list[str]:
    """The non-empty lines of ``text``, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]
