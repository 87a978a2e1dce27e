"""The content of a task, without its constraints: what the target asks the follower to write.

`content_instruction(task, default)` keeps what a task says to write about (and the genre when
it names one) and drops the constraint phrasing: "Write a 9-word sentence about a bicycle
without the letter e" becomes "Write a sentence about a bicycle." A task that names no topic
gets ``default`` (e.g. "Write a sentence."), the prior of a task that names no topic.
"""

from __future__ import annotations

import re

GENRES = (
    ("acrostic poem", "a poem"), ("poem", "a poem"), ("short story", "a short story"), ("story", "a short story"),
    ("paragraph", "a paragraph"), ("sentences", "a paragraph"), ("sentence", "a sentence"),
)
TOPIC_CUE = re.compile(
    r"\b(?:about|on the (?:topic|subject|theme) of|on the theme|regarding|concerning|describing|that describes|"
    r"(?:^|\.\s+)describe|for|on)\s+(?P<topic>.+)",
    re.I,
)
TOPIC_END = re.compile(
    r"[.;:!?()\"“”]|,|\s(?:with|without|that|which|where|whose|in which|using|containing|including|includes?|"
    r"mentioning|made|consisting|composed|long|each|every|of exactly|exactly|having|has|so that|but|and\s+(?:with|without|includ\w*|us\w*|end\w*|"
    r"start\w*|begin\w*|avoid\w*|no|has|have|contain\w*|mention\w*|make|do|don't|never|every|each|the|exactly|at)|"
    r"ending|starting|beginning|in\s+(?:one|a|an|\d+|exactly|at|no|under|fewer|less)\b|of\s+(?:at|\d+|one|two|three|"
    r"four|five|six|seven|eight|nine|ten|exactly)\b|where|no\s+more|at\s+(?:most|least)|under\s+\d|"
    r"one\s+line|as\s+(?:an?\s+)?acrostic|spelling)\b",
    re.I,
)
NOT_TOPICS = re.compile(r"^(?:each|every|the\s+letter|the\s+words?|a\s+total|me|you|it|one\s+line|line|letters?)\b", re.I)


def topic_of(task: str) -> str | None:
    """What ``task`` asks to write about ("a bicycle"), or None when it names no topic."""
    for m in TOPIC_CUE.finditer(task):
        topic = m.group("topic")
        end = TOPIC_END.search(topic)
        topic = (topic[: end.start()] if end else topic).strip(" ,'\"")
        if topic and not NOT_TOPICS.match(topic) and len(topic.split()) <= 8 and not re.search(r"\d|\$", topic):
            return topic
    return None


def genre_of(task: str, default: str) -> str:
    """The kind of text the task asks for ("a poem"), else the one ``default`` names."""
    for name, genre in GENRES:
        if re.search(rf"\b{name}\b", task, re.I):
            return genre
    m = re.match(r"\s*Write\s+(.+?)\.?\s*$", default)
    return m.group(1) if m else "a text"


def content_instruction(task: str, default: str) -> str:
    """``default``'s genre (or the task's) about the task's topic; ``default`` without a topic."""
    topic = topic_of(task)
    if topic is None or not default.startswith(("Write a ", "Write an ")):
        return default
    return f"Write {genre_of(task, default)} about {topic}."
