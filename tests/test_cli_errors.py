"""Every bad input to the `selfsteer` command ends in one or two lines that name the fix, exit code
2 and no traceback, before any model loads (the command runs in a real subprocess; the programs
here use the exact LM, so nothing large ever loads). Ctrl-C ends a run cleanly with its particles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PROGRAM = textwrap.dedent(
    """
    from selfsteer.smc import ExactLM, LMContext, Model

    class Tokens(Model):
        def __init__(self, prompt="a"):
            super().__init__()
            self.ctx = LMContext(ExactLM(), prompt)

        async def step(self):
            tok = await self.sample(self.ctx.next_token())
            if tok.is_eos:
                self.finish(self.ctx.text)

    def make_model(lm, task="a"):
        return Tokens(task)
    """
)

BAD_PROGRAMS = {
    "sync_step.py": ("from selfsteer.smc import Model\nclass P(Model):\n    def step(self):\n        pass\nmodel = P()\n",
                     "P.step (sync_step.py, line 3) must be a coroutine: write `async def step(self)`"),
    "syntax.py": ("from selfsteer.smc import Model\nclass P(Model)\n    pass\n", "syntax.py has a syntax error (syntax.py, line 2)"),
    "raises.py": ("from selfsteer.smc import Model\nclass P(Model):\n    async def step(self):\n"
                  "        raise ValueError('boom')\nmodel = P()\n",
                  "P.step() raised ValueError: boom (at raises.py:4: raise ValueError('boom')); fix the program"),
    "import_error.py": ("import not_a_module_anywhere\n", "raised ModuleNotFoundError while loading (import_error.py, line 1)"),
    "no_model.py": ("x = 1\n", "defines neither make_model(lm) nor a `model` instance"),
}


def selfsteer(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selfsteer.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def assert_user_error(out: subprocess.CompletedProcess, message: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2, out.stderr


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "badchecker.jsonl").write_text(json.dumps({"task": "Write a sentence.", "checker": {"program": "nope"}}) + "\n")
    for name, (source, _) in BAD_PROGRAMS.items():
        (tmp_path / name).write_text(source)
    return tmp_path


RUN_ARGS = [
    (["--particles", "0"], "argument --particles/-n: must be >= 1, got 0"),
    (["-n", "-3"], "argument --particles/-n: must be >= 1, got -3"),
    (["--max-steps", "-5"], "argument --max-steps: must be >= 1, got -5"),
    (["--ess-threshold", "2"], "argument --ess-threshold: must lie in [0, 1], got 2"),
    (["--resampling", "foo"], "argument --resampling: invalid choice: 'foo'"),
    (["--seed", "-1"], "argument --seed: must lie in [0, 2**63), got -1"),
    (["--time-limit", "0"], "argument --time-limit: must be > 0, got 0"),
    (["--threads", "0"], "argument --threads: must be >= 1, got 0"),
    (["--beam", "0"], "argument --beam: must be >= 1, got 0"),
    (["--explore", "-1"], "argument --explore: must be >= 0, got -1"),
    (["--param", "x"], "--param 'x': write KEY=VALUE"),
    (["--param", "letter=e"], "make_model in prog.py does not accept these options"),
    (["--trace", "no/such/dir/t.json"], "--trace no/such/dir/t.json: the folder no/such/dir does not exist"),
]


@pytest.mark.parametrize(("args", "message"), RUN_ARGS, ids=[" ".join(a) for a, _ in RUN_ARGS])
def test_run_rejects_bad_arguments(workdir, args, message):
    assert_user_error(selfsteer("run", "prog.py", *args, cwd=workdir), message)


@pytest.mark.parametrize("name", sorted(BAD_PROGRAMS))
def test_run_reports_bad_programs_with_their_line(workdir, name):
    assert_user_error(selfsteer("run", name, "-n", "2", "--seed", "0", cwd=workdir), BAD_PROGRAMS[name][1])


def test_run_missing_file_and_model_instance_with_task(workdir):
    assert_user_error(selfsteer("run", "missing.py", cwd=workdir), "no program file at missing.py")
    (workdir / "inst.py").write_text(PROGRAM.replace("def make_model(lm, task=\"a\"):\n    return Tokens(task)", "model = Tokens()"))
    assert_user_error(selfsteer("run", "inst.py", "--task", "hi", cwd=workdir), "takes no --task or --param")


PLANNER_ARGS = [
    (["solve", "x", "--particles", "0"], "argument --particles/-n: must be >= 1, got 0"),
    (["solve", "x", "--planner-timeout", "0"], "argument --planner-timeout: must be > 0, got 0"),
    (["solve", "x", "--planner", "openai"], "--planner openai needs the server's URL: pass --planner-url"),
    (["solve", "x", "--planner", "local:/missing/model.gguf"], "no model at /missing/model.gguf"),
    (["solve", "x", "--planner", "qwen-coder"], "run `selfsteer planner download qwen-coder`"),
    (["solve", "x", "--planner", "nonsense"], "unknown planner 'nonsense'"),
    (["solve", " "], "the task is empty"),
    (["solve", "x", "--seed", "abc"], "argument --seed: expected a whole number >= 0, got 'abc'"),
    (["plan", "x", "--attempts", "0"], "argument --attempts: must be >= 1, got 0"),
    (["plan", "x", "--planner", "openai"], "--planner openai needs the server's URL"),
    (["eval", "empty.jsonl"], "empty.jsonl holds no tasks"),
    (["eval", "missing.jsonl"], "no task file at missing.jsonl"),
    (["eval", "badchecker.jsonl"], "task 1: unknown checker program 'nope'; list the library programs with `selfsteer programs`"),
    (["eval", "empty.jsonl", "--jobs", "0"], "argument --jobs/-j: must be >= 1, got 0"),
    (["programs", "nope"], "no library program named 'nope'"),
    (["view", "missing.json"], "no trace file at missing.json"),
    (["train", "missing.yaml", "--threads", "0"], "argument --threads: must be >= 1, got 0"),
    (["nosuchcommand"], "argument COMMAND: invalid choice: 'nosuchcommand'"),
    (["--quiet", "--verbose", "programs"], "argument --verbose/-v: not allowed with argument --quiet/-q"),
]


@pytest.mark.parametrize(("args", "message"), PLANNER_ARGS, ids=[" ".join(a) for a, _ in PLANNER_ARGS])
def test_other_subcommands_reject_bad_input(workdir, args, message):
    env = {"SELFSTEER_CACHE": str(workdir / "cache"), "SELFSTEER_PLANNER_URL": "", "OPENAI_BASE_URL": "",
           "SELFSTEER_PLANNER": ""}
    assert_user_error(selfsteer(*args, cwd=workdir, env=env), message)


def test_version_and_programs_list(workdir):
    out = selfsteer("--version", cwd=workdir)
    assert out.returncode == 0 and out.stdout.startswith("selfsteer ")
    out = selfsteer("programs", cwd=workdir)
    assert out.returncode == 0 and "required" in out.stdout, out.stdout
    name = out.stdout.split()[0]
    one = selfsteer("programs", name, cwd=workdir)
    assert one.returncode == 0 and one.stdout.startswith(name) and "example: " in one.stdout


def test_run_without_seed_draws_and_prints_one(workdir):
    out = selfsteer("run", "prog.py", "-n", "3", "--task", "b", "--model", "exact", cwd=workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    seed = int(out.stderr.split("seed: ", 1)[1].split()[0])
    assert f"--seed {seed}" in out.stderr and f"seed: {seed}   threads: 1" in out.stdout
    again = selfsteer("run", "prog.py", "-n", "3", "--task", "b", "--model", "exact", "--seed", str(seed), cwd=workdir)
    assert again.stdout.splitlines()[1:] == out.stdout.splitlines()[1:]  # same posterior (time differs)


SLOW_PROGRAM = textwrap.dedent(
    """
    import asyncio
    from selfsteer.smc import Model

    class Slow(Model):
        def __init__(self):
            super().__init__()
            self.n = 0

        async def step(self):
            await asyncio.sleep(0.05)
            self.n += 1
            if self.rng.random() < 0.5:
                self.finish(self.n)
            if self.n == 3:
                print("ready", flush=True)

    model = Slow()
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_prints_the_particles_so_far(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_PROGRAM.replace("self.finish(self.n)", "self.finish(self.n) if self.n < 3 else None"))
    proc = subprocess.Popen([sys.executable, "-m", "selfsteer.cli.main", "run", "slow.py", "-n", "8", "--seed", "0",
                             "--max-steps", "100000", "--json"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("ready"):
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "CancelledError" not in err, err
    data = json.loads(out[out.index("{"):])
    assert data["status"] == "interrupted" and data["n_steps"] >= 3
    assert data["posterior"] and all(p["output"] in (1, 2) for p in data["posterior"])
