from selfsteer.smc import ExactLM, LMContext, Model, smc


class OneToken(Model):
    def __init__(self, lm):
        super().__init__()
        self.ctx = LMContext(lm, "a")

    async def step(self):
        tok = await self.sample(self.ctx.next_token())
        self.finish(tok.text)


def test_runs():
    r = smc(OneToken(ExactLM()), 4, seed=0)
    assert r.status == "completed"
    assert abs(sum(r.posterior.values()) - 1) < 1e-9
