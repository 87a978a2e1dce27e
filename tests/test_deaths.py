"""Every dead particle carries its cause (a condition with its source line, the token budget, a
zero-probability draw such as an empty mask, a failed check); `Result` counts them, its JSON keeps
them and reads back, and a run summary for the planner names them."""

from __future__ import annotations

import json
import math

from test_constraints import ConstrainedText

from selfsteer.planners.outcome import summarize
from selfsteer.smc import ExactLM, LMContext, Model, Regex, Result, smc


class Dies(Model):
    """Each particle draws one exact-LM token, then dies in the way ``how`` names."""

    def __init__(self, how: str):
        super().__init__()
        self.ctx = LMContext(ExactLM(), "a")
        self.how = how

    async def step(self):
        await self.sample(self.ctx.next_token())
        if self.how == "condition":
            self.condition(len(self.ctx.text) > 99)  # the line the cause must quote
        elif self.how == "reason":
            self.condition(False, "too short")
        elif self.how == "score":
            self.score(-math.inf)
        else:
            self.finish(self.ctx.text)

    def check(self, output) -> bool:
        return self.how != "check"


def test_a_condition_names_its_source_line():
    result = smc(Dies("condition"), 5, seed=0)
    assert result.status == "all_dead"
    [(cause, n)] = result.deaths.items()
    assert n == 5 and cause.startswith("condition: test_deaths.py:")
    assert cause.endswith("self.condition(len(self.ctx.text) > 99)  # the line the cause must quote")
    assert all(p.death == cause for p in result.particles)
    assert "deaths during the run: 5" in result.summary() and cause in result.summary()


def test_reason_score_and_check_causes():
    assert smc(Dies("reason"), 3, seed=0).deaths == {"too short": 3}
    [score] = smc(Dies("score"), 3, seed=0).deaths
    assert score.startswith("score of probability zero: test_deaths.py:") and "self.score(-math.inf)" in score
    assert smc(Dies("check"), 3, seed=0).deaths == {"check: Dies.check rejected the output": 3}


def test_budget_and_empty_mask_causes(exact_lm):
    budget = smc(ConstrainedText(exact_lm, Regex(r"(a|b){4} c"), max_tokens=2), 4, seed=0)
    assert budget.deaths == {"budget: wrote more than max_tokens=2 tokens": 4}, budget.deaths
    nothing = smc(ConstrainedText(exact_lm, Regex(r"zzz")), 3, seed=0)
    [(cause, n)] = nothing.deaths.items()
    assert n == 3 and cause.startswith("zero probability: "), cause


def test_json_reports_dead_particles_as_not_finished_and_reads_back():
    result = smc(Dies("condition"), 4, seed=1)
    data = json.loads(result.to_json())
    assert all(p["finished"] is False and p["died"].startswith("condition: ") for p in data["particles"])
    again = Result.from_json(result.to_json())
    assert again.deaths == result.deaths and again.status == result.status and again.seed == 1
    assert [p.death for p in again.particles] == [p.death for p in result.particles]
    alive = smc(Dies("finish"), 4, seed=2)
    back = Result.from_json(alive.to_json())
    assert back.posterior == alive.posterior and math.isclose(back.log_ml, alive.log_ml)
    assert all(p["finished"] and p["died"] is None for p in json.loads(alive.to_json())["particles"])


def test_the_planner_feedback_names_the_causes():
    summary = summarize(smc(Dies("condition"), 4, seed=0))
    feedback = summary.describe_failure()
    assert "4 x condition: test_deaths.py:" in feedback and "self.condition(len(self.ctx.text) > 99)" in feedback
    assert type(summary).from_dict(summary.to_dict()).deaths == summary.deaths


def test_a_run_without_a_seed_records_the_one_it_drew():
    first = smc(Dies("finish"), 4)
    assert isinstance(first.seed, int)
    again = smc(Dies("finish"), 4, seed=first.seed)
    assert again.posterior == first.posterior and again.log_ml == first.log_ml
