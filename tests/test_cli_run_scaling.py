"""`selfsteer run` with the test-time scaling flags, in real subprocesses (exact LM, real MiniLM)."""

import json
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    from selfsteer.smc import LMContext, Model

    class Guess(Model):
        '''Writes tokens of the exact LM until EOS; the text is the answer, stated with confidence 0.5.'''

        def __init__(self, lm, examples=()):
            super().__init__()
            self.task = self.user_prompt = "a"
            self.ctx = LMContext(lm, "".join(u + r for u, r in examples) + "a")

        async def step(self):
            tok = await self.sample(self.ctx.next_token())
            if tok.is_eos:
                self.confidence = 0.5
                self.finish(self.ctx.text or "a")

    def make_model(lm, examples=()):
        return Guess(lm, examples)
    """
)


def selfsteer(*args, cwd):
    return subprocess.run([sys.executable, "-m", "selfsteer.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_vote_trust_explore_and_lag_flags(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    common = ["run", "prog.py", "--model", "exact", "-n", "6", "--seed", "0", "--lag-store", "logs"]
    first = selfsteer(*common, "--vote", "confidence", "--trust", "--explore", "1.0", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "vote (confidence):" in first.stdout and "failed-step fraction" in first.stdout
    assert "0 log(s) recalled" in first.stderr and "run stored as log" in first.stderr
    second = selfsteer(*common, "--vote", "majority", "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "1 log(s) recalled, 0 reused as KV" in second.stderr  # the exact LM keeps no KV cache
    out = json.loads(second.stdout)
    assert out["vote"]["method"] == "majority" and out["vote"]["n_voters"] >= 1
    assert out["vote"]["answer"] in {p["output"] for p in out["particles"]}


def test_bad_flag_combinations_are_explained(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    out = selfsteer("run", "prog.py", "--model", "exact", "--beam", "2", "--explore", "1", cwd=tmp_path)
    assert out.returncode != 0 and "--explore works with SMC" in out.stderr
    (tmp_path / "plain.py").write_text(PROGRAM.replace("def make_model(lm, examples=())", "def make_model(lm)")
                                       .replace("Guess(lm, examples)", "Guess(lm)"))
    out = selfsteer("run", "plain.py", "--model", "exact", "--lag-store", "logs", cwd=tmp_path)
    assert out.returncode != 0 and "make_model(lm, examples=...)" in out.stderr
