"""Answer an arithmetic question with reasoning, a tagged answer and a stated confidence.

Run it: selfsteer run programs/examples/arithmetic_with_confidence.py -n 8 --vote confidence --trust
With log-augmented generation: add --lag-store ~/.cache/selfsteer/logs (this run is stored too).
"""

from selfsteer.programs.answer_with_confidence import AnswerWithConfidence


def make_model(lm, examples=()):
    return AnswerWithConfidence(lm, "What is 7 + 5?", answer_type="number", examples=examples,
                                max_reasoning_tokens=24, temperature=0.7)
