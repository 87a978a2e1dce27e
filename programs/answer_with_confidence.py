"""`AnswerWithConfidence`: each particle reasons, answers and states its confidence (RLCR's format).

A particle writes a few lines of reasoning, then ``<answer>A</answer>`` and
``<confidence>q</confidence>`` with q in [0, 1]. The population then supports every aggregator of
`selfsteer.smc.scaling` (majority, confidence-weighted, max-confidence, likelihood) and the
exploration and trust scores, through ``scaling.vote(result, ...)`` and ``scaling.trust(result)``.

Target: the follower prompted with the question (and any ``examples``, e.g. logs retrieved by
LAG), restricted to responses of that form whose answer is well formed (a decimal number when
``answer_type="number"``) and whose confidence is a number in [0, 1], times
``max(q, 0.01) ** confidence_power`` (the option that turns stated confidence into particle
weight; 0 leaves the follower's distribution unchanged).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from selfsteer.smc import LanguageModel, TextModel, TokenMask
from selfsteer.smc.scaling.answers import canonical_answer, parse_tagged
from selfsteer.smc.scaling.confidence import confidence_log_weight

INSTRUCTION = (
    "Answer the question. Think in a line or two, then write the final answer between <answer> "
    "and </answer>, then how likely it is that your answer is correct, a number from 0 to 1, "
    "between <confidence> and </confidence>.\n\n"
    "Example:\nQuestion: What is 2 + 3?\n2 plus 3 makes 5.\n<answer>5</answer>\n<confidence>0.9</confidence>\n\n"
    "Question: {question}"
)
OPEN_ANSWER, CLOSE_ANSWER = "<answer>", "</answer>"
OPEN_CONFIDENCE, CLOSE_CONFIDENCE = "<confidence>", "</confidence>"
NUMBER_CHARS = set("0123456789.-")
NUMBER_PREFIX = re.compile(r"-?(\d+(\.\d*)?)?")
NUMBER = re.compile(r"-?\d+(\.\d+)?")
CONFIDENCE_PREFIX = re.compile(r"|0|0\.\d{0,3}|1|1\.0{0,3}")
CONFIDENCE = re.compile(r"0|0\.\d{1,3}|1|1\.0{1,3}")


def continuation_mask(lm: LanguageModel, state: str, prefix: re.Pattern, max_chars: int, *,
                      complete: re.Pattern, lead_space: bool) -> TokenMask:
    """Tokens ``t`` of number characters such that ``state + t`` can still become a complete match
    within ``max_chars`` characters (a leading space is allowed at the start if ``lead_space``)."""
    shape = re.sub(r"[2-9]", "1", state) if prefix is CONFIDENCE_PREFIX else re.sub(r"\d", "0", state)

    def ok(t: str) -> bool:
        body = t[1:] if lead_space and not state and t.startswith(" ") else t
        if not body or not set(body) <= NUMBER_CHARS:
            return False
        s = shape + body
        return bool(prefix.fullmatch(s)) and (len(s) < max_chars or (len(s) == max_chars and bool(complete.fullmatch(s))))

    return lm.masks.where(f"number:{prefix.pattern}:{shape}:{max_chars}:{lead_space}", ok)


def closing_mask(lm: LanguageModel, tag: str) -> TokenMask:
    """Tokens that begin the closing ``tag`` (a non-empty prefix of it starting with "<")."""
    return lm.masks.where(f"closing:{tag}", lambda t: t.startswith("<") and tag.startswith(t))


class AnswerWithConfidence(TextModel):
    """Answer a question with reasoning, a tagged answer and a tagged confidence.

    Strategy: generate reasoning one line per step (up to ``max_reasoning_tokens`` tokens) until
    the model opens ``<answer>`` (forced once the budget is spent); write the answer (free text up
    to ``</answer>``, or a number token by token through a mask that keeps it well formed); force
    ``<confidence>`` and write q token by token through a mask that keeps it in [0, 1]; close it.
    Step granularity: one reasoning line, then one token.
    End conditions: ``</confidence>`` written. Output: the canonical answer (`canonical_answer`).
    Particle attributes: ``answer`` (canonical, set as soon as the answer is closed),
    ``answer_text``, ``confidence`` (float), ``reasoning``.

    Args:
        lm: the follower LM.
        task: the question.
        answer_type: "text" or "number".
        examples: ``(prompt, response)`` pairs shown before the question as earlier chat turns
            (e.g. `LogMemory.recall(...).examples`).
        max_reasoning_tokens: reasoning budget; reasoning_line_tokens: tokens per reasoning step.
        max_answer_tokens: budget of a text answer; max_number_chars: of a number answer.
        confidence_power: the target becomes the follower's probability times
            ``max(q, 0.01) ** confidence_power`` on the outputs the program can produce and that
            pass ``check`` (0 elsewhere); q is the stated confidence.
        temperature: temperature of the follower (the target is the tempered follower).
    """

    def __init__(self, lm: LanguageModel, task: str, *, answer_type: str = "text",
                 examples: Sequence[tuple[str, str]] = (), max_reasoning_tokens: int = 48,
                 reasoning_line_tokens: int = 24, max_answer_tokens: int = 16, max_number_chars: int = 10,
                 confidence_power: float = 0.0, temperature: float = 1.0):
        if not isinstance(task, str) or not task.strip():
            raise ValueError("AnswerWithConfidence needs the question as non-empty text")
        if answer_type not in ("text", "number"):
            raise ValueError(f"answer_type must be 'text' or 'number', got {answer_type!r}")
        if max_reasoning_tokens < 1 or reasoning_line_tokens < 1 or max_answer_tokens < 1 or max_number_chars < 2:
            raise ValueError("token budgets must be >= 1 and max_number_chars >= 2")
        if confidence_power < 0:
            raise ValueError(f"confidence_power must be >= 0, got {confidence_power}")
        self.user_prompt = INSTRUCTION.format(question=task.strip())
        if lm.has_chat_template:
            prompt: list[dict] | str = [
                m for u, a in examples for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})
            ] + [{"role": "user", "content": self.user_prompt}]
        else:
            prompt = "".join(f"{u}\n{a}\n\n" for u, a in examples) + self.user_prompt
        budget = max_reasoning_tokens + max_answer_tokens + max_number_chars + 32
        super().__init__(lm, prompt, max_tokens=budget, temperature=temperature)
        self.task, self.answer_type = task, answer_type
        self.max_reasoning_tokens, self.reasoning_line_tokens = max_reasoning_tokens, reasoning_line_tokens
        self.max_answer_tokens, self.max_number_chars = max_answer_tokens, max_number_chars
        self.confidence_power = confidence_power
        self.phase = "reason"
        self.reasoning_tokens = 0
        self.reasoning, self.answer_text, self.answer = "", "", None
        self.confidence: float | None = None
        self._written = ""  # the number being written (answer or confidence)

    async def step(self):
        if self.phase == "reason":
            await self._reason()
        elif self.phase == "answer" and self.answer_type == "text":
            await self._text_answer()
        elif self.phase == "answer":
            await self._number_token(NUMBER_PREFIX, NUMBER, self.max_number_chars, CLOSE_ANSWER)
        else:
            await self._number_token(CONFIDENCE_PREFIX, CONFIDENCE, 5, CLOSE_CONFIDENCE)

    async def _on_new_line(self, text: str) -> None:
        await self.extend_with(("" if self.text.endswith("\n") else "\n") + text)

    async def _reason(self) -> None:
        budget = self.max_reasoning_tokens - self.reasoning_tokens
        chunk = await self.extend(stop=[OPEN_ANSWER, "\n"], max_tokens=min(self.reasoning_line_tokens, budget),
                                  allow_eos=False)
        self.reasoning_tokens += len(chunk.token_ids)
        if OPEN_ANSWER not in self.text and self.reasoning_tokens >= self.max_reasoning_tokens:
            await self._on_new_line(OPEN_ANSWER)
        if OPEN_ANSWER in self.text:
            head, _, tail = self.text.rpartition(OPEN_ANSWER)
            self.reasoning, self.phase = head.strip(), "answer"
            self._written = tail.strip()  # text a token carried past the tag
            if self.answer_type == "number":
                self.condition(bool(NUMBER_PREFIX.fullmatch(self._written)))

    async def _text_answer(self) -> None:
        await self.extend(stop=[CLOSE_ANSWER, "\n"], max_tokens=self.max_answer_tokens, allow_eos=False)
        body = self.text.rpartition(OPEN_ANSWER)[2]
        if CLOSE_ANSWER not in body:
            await self.extend_with(CLOSE_ANSWER)
        self._close_answer(body.partition(CLOSE_ANSWER)[0].strip())
        await self._on_new_line(OPEN_CONFIDENCE)

    def _close_answer(self, text: str) -> None:
        self.answer_text, self.answer = text, canonical_answer(text)
        self.condition(self.answer is not None)
        self.phase, self._written = "confidence", ""

    async def _number_token(self, prefix: re.Pattern, complete: re.Pattern, max_chars: int, close: str) -> None:
        state = self._written
        allowed = continuation_mask(self.lm, state, prefix, max_chars, complete=complete,
                                    lead_space=close == CLOSE_ANSWER)
        done = bool(complete.fullmatch(state))
        if done:
            allowed = allowed | closing_mask(self.lm, close)
        tok = await self.next_token(mask=allowed)
        if done and tok.text.startswith("<"):
            if close[len(tok.text):]:
                await self.extend_with(close[len(tok.text):])
            await self._number_done(state, close)
            return
        self._written = state + tok.text.strip()

    async def _number_done(self, state: str, close: str) -> None:
        if close == CLOSE_ANSWER:
            self._close_answer(state)
            await self._on_new_line(OPEN_CONFIDENCE)
            return
        self.confidence = float(state)
        self.score(confidence_log_weight(self.confidence, self.confidence_power))
        self.finish(self.answer)

    def check(self, output) -> bool:
        """The response parses back (`parse_tagged`) to this answer and confidence."""
        parsed = parse_tagged(self.text)
        return parsed.confidence == self.confidence and canonical_answer(parsed.answer) == output
