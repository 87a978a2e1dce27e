# %% [markdown]
# # Self-steering: from a task in plain words to a verified answer
#
# A *planner* turns a task into an inference program; selfsteer validates the program, runs it
# with SMC on a small *follower* LM, and keeps an answer only if the program's `check` accepts
# it. This tutorial gets a program three ways:
#
# 1. from a **planner LM** behind an OpenAI-compatible endpoint (a hosted API, vLLM, llama.cpp's
#    server, ollama);
# 2. from the **offline library planner**, which picks a hand-written program and fills in its
#    parameters;
# 3. **by hand**: you write the program yourself and run it through the same checks.
#
# Set `SELFSTEER_FAST=1` to run everything at tiny scale.

# %%
import json
import os
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selfsteer.planners import ProgramCache, load_planner, solve_async, validate_program
from selfsteer.planners.prompt import build_messages
from selfsteer.planners.sandbox import Limits

FAST = os.environ.get("SELFSTEER_FAST") == "1"
PARTICLES = 2 if FAST else 8
LIMITS = Limits(wall_s=60 if FAST else 120)
cache = ProgramCache(tempfile.mkdtemp(prefix="selfsteer-tutorial-cache-"))  # keep the tutorial's programs apart

# %% [markdown]
# ## What the planner LM sees
#
# The prompt is generated at run time from the live docstrings and signatures of the program
# API (so it never drifts from the code), the validator's allow-lists, and few-shot examples
# from the program library, leaving out the task's own family.

# %%
task = "Write a short sentence about a cat that does not use the letter 'e'."
messages = build_messages(task, exclude_family="collie_sentences", n_examples=1)
print([m["role"] for m in messages])
print(messages[0]["content"][:800], "...")

# %% [markdown]
# ## 1. A planner LM behind an OpenAI-compatible endpoint
#
# Point selfsteer at any server that speaks `POST /v1/chat/completions`:
#
# ```bash
# export SELFSTEER_PLANNER_URL=http://localhost:8000/v1   # vLLM: vllm serve Qwen/Qwen2.5-Coder-7B-Instruct
# export SELFSTEER_PLANNER_MODEL=Qwen/Qwen2.5-Coder-7B-Instruct
# export SELFSTEER_PLANNER_KEY=...                         # hosted APIs only
# selfsteer solve "Write a short sentence about a cat that does not use the letter 'e'."
# ```
#
# This machine has no planner server, so unless `SELFSTEER_PLANNER_URL` is set we start a
# *stand-in* on 127.0.0.1 that answers every request with the program below. Everything after
# the HTTP call (extracting the code, validation, the sandbox, SMC, `check`) is the real path.

# %%
STAND_IN_PROGRAM = '''```python
from selfsteer.smc import TextModel


class NoLetterE(TextModel):
    """Strategy: token by token, only tokens without "e"/"E" (or EOS) are allowed.
    Step granularity: one token.
    End conditions: EOS, or a sentence-final mark, or 24 tokens."""

    def __init__(self, lm, task):
        super().__init__(lm, "Write a sentence.", task, max_tokens=24)
        self.allowed = lm.masks.without("eE") | lm.masks.eos

    async def step(self):
        tok = await self.next_token(mask=self.allowed)
        if tok.is_eos or self.text.rstrip().endswith((".", "!", "?")) or self.n_tokens >= 24:
            self.finish(self.text.strip())

    def check(self, output):
        return len(output) > 0 and "e" not in output.lower()
```'''


class StandIn(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": STAND_IN_PROGRAM}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = None
if not os.environ.get("SELFSTEER_PLANNER_URL"):
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = dict(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="stand-in")
else:
    endpoint = {}  # URL, model and key from the environment

planner = load_planner("openai", **endpoint)
result = await solve_async(task, planner=planner, n_particles=PARTICLES, limits=LIMITS, cache=cache)
print("answer:", result.answer)
print(f"weight {result.weight:.3f}, check passed: {result.check_passed}, attempt {result.attempt}")
if server is not None:
    server.shutdown()

# %% [markdown]
# The program ran in a separate process with a wall-clock limit, a memory limit, a step cap,
# restricted builtins and no network. Had it failed (a syntax error, a crash, a timeout, no
# surviving particle), the error would have gone back to the planner for another attempt, up to
# three. Every attempt is in the program cache (task, prompt, completion, program, error, result
# summary), and asking again reuses the working program instead of calling the planner:

# %%
for record in cache.attempts(task, planner.name):
    print(f"attempt {record.attempt}:", "passed" if record.passed else f"failed: {record.error}")
print("cached program:", cache.latest_working(task, planner.name).to_plan().class_name)
if not FAST:  # one more sandboxed run, skipped at tiny scale
    again = await solve_async(task, planner=planner, n_particles=PARTICLES, limits=LIMITS, cache=cache)
    print(f"from cache: {again.from_cache} (attempt {again.attempt}), answer: {again.answer}")

# %% [markdown]
# ## 2. The offline library planner
#
# Without any planner LM, the library planner picks a hand-written program for the task and
# fills in its parameters. Library programs are trusted code and run in this process.

# %%
library = load_planner("library")
sentence_task = "Write a sentence with exactly 6 words."
picked = library.plan(sentence_task)
print(picked.program_name, picked.params)
result = await solve_async(sentence_task, planner=library, n_particles=PARTICLES, limits=LIMITS, cache=cache)
print("answer:", result.answer)
print(f"weight {result.weight:.3f}, check passed: {result.check_passed}")

# %% [markdown]
# When nothing in the library fits, the library planner says so (and suggests configuring a
# planner LM) instead of guessing.

# %% [markdown]
# ## 3. By hand
#
# A program you write yourself goes through the same gate. The validator rejects anything
# outside the allow-list, each problem with its line:

# %%
risky = STAND_IN_PROGRAM.strip("`").removeprefix("python\n").replace(
    "        tok = await", "        open('/etc/passwd')\n        tok = await")
try:
    validate_program(risky)
except ValueError as e:
    print(e)

# %% [markdown]
# A hand-written planner is any object with `plan(task, *, feedback=None) -> Plan`:


# %%
from selfsteer.planners import Plan  # noqa: E402


class ByHand:
    name = "by-hand"

    def plan(self, task, *, feedback=None):
        source = STAND_IN_PROGRAM.strip("`").removeprefix("python\n")
        return Plan(source=source, class_name="NoLetterE", origin="lm")


mine = await solve_async("Write a short sentence about a dog without the letter 'e'.", planner=ByHand(),
             n_particles=PARTICLES, limits=LIMITS, cache=False)
print("answer:", mine.answer, f"(weight {mine.weight:.3f}, check passed: {mine.check_passed})")
