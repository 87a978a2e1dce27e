"""`selfsteer run` on program files, in a real subprocess."""

import importlib.util
import json
import subprocess
import sys
import textwrap


def selfsteer(*args, cwd):
    return subprocess.run([sys.executable, "-m", "selfsteer.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


PROGRAM = textwrap.dedent(
    """
    from selfsteer.smc import Model, ExactLM, LMContext

    class Tokens(Model):
        def __init__(self):
            super().__init__()
            self.ctx = LMContext(ExactLM(), "a")

        async def step(self):
            tok = await self.sample(self.ctx.next_token())
            if tok.is_eos:
                self.finish(self.ctx.text)

    model = Tokens()
    """
)


def test_run_prints_posterior_and_writes_trace(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    out = selfsteer("run", "prog.py", "--particles", "6", "--seed", "1", "--trace", "t.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "status: completed" in out.stdout
    trace = json.loads((tmp_path / "t.json").read_text())
    assert trace["n_particles"] == 6 and trace["steps"]
    js = selfsteer("run", "prog.py", "-n", "4", "--seed", "1", "--json", cwd=tmp_path)
    assert json.loads(js.stdout)["n_particles"] == 4


def test_run_reports_bad_files(tmp_path):
    out = selfsteer("run", "missing.py", cwd=tmp_path)
    assert out.returncode != 0 and "no program file" in out.stderr
    (tmp_path / "empty.py").write_text("x = 1\n")
    out = selfsteer("run", "empty.py", cwd=tmp_path)
    assert out.returncode != 0 and "make_model" in out.stderr


def test_run_example_on_the_bundled_model(tmp_path):
    from pathlib import Path

    example = Path(__file__).parent.parent / "programs" / "examples" / "no_e_sentence.py"
    out = selfsteer("run", str(example), "-n", "4", "--seed", "0",
                    "--backend", "transformers", "--device", "cpu", "--dtype", "float32", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = out.stdout.splitlines()[1]
    assert "e" not in answer.split("'", 1)[1].lower()


def test_run_reports_bad_model_flags_without_a_traceback(tmp_path):
    from pathlib import Path

    example = str(Path(__file__).parent.parent / "programs" / "examples" / "no_e_sentence.py")
    out = selfsteer("run", example, "--backend", "transformers", "--tensor-parallel-size", "2", cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "tensor_parallel_size: not an option of the transformers backend" in out.stderr
    assert "backend='vllm'" in out.stderr
    out = selfsteer("run", example, "--backend", "transformers", "--dtype", "float8", cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "unknown dtype 'float8'; choose auto, float32, bfloat16 or float16" in out.stderr
    if importlib.util.find_spec("vllm") is None:  # where vLLM is missing, the error says how to get it
        out = selfsteer("run", example, "--backend", "vllm", cwd=tmp_path)
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert "pip install 'selfsteer[vllm]'" in out.stderr
