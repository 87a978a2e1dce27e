"""A sentence without the letter "e": every token is restricted to ones without "e" or "E".

Run it: selfsteer run programs/examples/no_e_sentence.py --particles 8
"""

from selfsteer.smc import TextModel


class NoE(TextModel):
    """Strategy: token by token, only tokens without "e"/"E" (or EOS) are allowed; the prior's
    mass on them is the weight. Ends at EOS or after a sentence-final punctuation mark."""

    async def step(self):
        masks = self.lm.masks
        tok = await self.next_token(mask=masks.without("eE") | masks.eos)
        if tok.is_eos or self.text.rstrip().endswith((".", "!", "?")):
            self.finish(self.text.strip())

    def check(self, text: str) -> bool:
        return bool(text) and "e" not in text.lower()


def make_model(lm):
    return NoE(lm, "Write a sentence.", "Write one short sentence about a dog without using the letter e.", max_tokens=40)
