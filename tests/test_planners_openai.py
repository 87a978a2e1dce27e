"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1: requests, retries with
backoff, and clear errors for timeouts, refused connections, bad keys and bad answers."""

from __future__ import annotations

import socket

import pytest
from chat_server import ScriptedChatServer

from selfsteer.planners.errors import PlannerError
from selfsteer.planners.lm_planner import LMPlanner, extract_program, find_class_name
from selfsteer.planners.load import load_planner
from selfsteer.planners.openai_client import OpenAIChat

PROGRAM = "from selfsteer.smc import TextModel\n\nclass P(TextModel):\n    pass\n"
MESSAGES = [{"role": "user", "content": "hello"}]


def client(url: str, **kw) -> OpenAIChat:
    return OpenAIChat(base_url=url, model="test-model", api_key="sk-test", backoff=0.01, **kw)


def test_sends_an_openai_request_and_returns_the_completion():
    with ScriptedChatServer(["the answer"]) as server:
        assert client(server.url)(MESSAGES) == "the answer"
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    assert req["body"]["model"] == "test-model" and req["body"]["messages"] == MESSAGES


def test_retries_429_and_5xx_then_succeeds():
    script = [(429, '{"error": "slow down"}', {"Retry-After": "0"}), (503, "busy", {}), "finally"]
    with ScriptedChatServer(script) as server:
        assert client(server.url, max_retries=3)(MESSAGES) == "finally"
    assert len(server.requests) == 3


def test_gives_up_after_max_retries_with_a_clear_error():
    with ScriptedChatServer([(500, "down", {})] * 3) as server:
        with pytest.raises(PlannerError, match=r"HTTP 500.*down.*gave up after 3 tries"):
            client(server.url, max_retries=2)(MESSAGES)
    assert len(server.requests) == 3


def test_bad_key_is_not_retried_and_names_the_fix():
    with ScriptedChatServer([(401, '{"error": "invalid key"}', {})]) as server:
        with pytest.raises(PlannerError, match="SELFSTEER_PLANNER_KEY") as info:
            client(server.url)(MESSAGES)
    assert not info.value.retryable and len(server.requests) == 1


def test_unknown_model_404_names_the_url_and_model():
    with ScriptedChatServer([(404, "model not found", {})]) as server:
        with pytest.raises(PlannerError, match=r"404.*/v1.*'test-model'"):
            client(server.url)(MESSAGES)


def test_timeout_is_reported_and_retried():
    with ScriptedChatServer([("sleep", 2.0), ("sleep", 2.0)]) as server:
        with pytest.raises(PlannerError, match=r"did not answer within 0.3 s \(gave up after 2 tries\)"):
            client(server.url, timeout=0.3, max_retries=1)(MESSAGES)
    assert len(server.requests) == 2


def test_refused_connection_says_the_server_is_not_running():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PlannerError, match="could not reach the planner.*is the server running"):
        client(f"http://127.0.0.1:{port}/v1", max_retries=0)(MESSAGES)


def test_malformed_answer_is_a_clear_error():
    with ScriptedChatServer([(200, '{"no": "choices"}', {})]) as server:
        with pytest.raises(PlannerError, match="sent no chat completion"):
            client(server.url)(MESSAGES)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SELFSTEER_PLANNER_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("SELFSTEER_PLANNER_MODEL", "qwen")
    monkeypatch.setenv("SELFSTEER_PLANNER_KEY", "k")
    chat = OpenAIChat.from_env()
    assert (chat.base_url, chat.model, chat.api_key) == ("http://127.0.0.1:9/v1", "qwen", "k")
    monkeypatch.delenv("SELFSTEER_PLANNER_MODEL")
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(PlannerError, match="SELFSTEER_PLANNER_MODEL"):
        OpenAIChat.from_env()


def test_lm_planner_over_http_extracts_the_program():
    completion = f"Here is the program:\n```python\n{PROGRAM}```\nIt writes text."
    with ScriptedChatServer([completion]) as server:
        planner = load_planner("openai", base_url=server.url, model="m", api_key="k", examples=[])
        plan = planner.plan("Write a sentence.")
    assert plan.origin == "lm" and plan.source == PROGRAM and plan.class_name == "P"
    assert plan.completion == completion and plan.prompt[-1]["content"].startswith("Task: Write a sentence.")
    assert server.requests[0]["body"]["messages"][0]["role"] == "system"


def test_extract_program_handles_unfenced_and_unclosed_blocks():
    assert extract_program(PROGRAM) == PROGRAM
    assert extract_program("```python\n" + PROGRAM) == PROGRAM  # cut off before the closing fence
    assert extract_program("```\nprint(1)\n```\n```py\n" + PROGRAM + "```") == PROGRAM  # the block with a class
    assert find_class_name("not python at all (") == ""
    assert isinstance(LMPlanner(lambda m: "", examples=[]).plan("t").source, str)


# ----- retries that help: the repair loop over a real HTTP server replaying recorded completions --
def no_c_program(check: str, extra_import: str = "") -> str:
    """A completion as a planner writes it, for the exact LM (tokens "a", "b", " c")."""
    return f'''I will mask out " c" and verify the output.
```python
{extra_import}from selfsteer.smc import TextModel


class NoC(TextModel):
    """Strategy: tokens without "c" until EOS. Step granularity: one token. End conditions: EOS."""

    def __init__(self, lm, task):
        super().__init__(lm, "a", task, max_tokens=8)

    async def step(self):
        tok = await self.next_token(self.lm.masks.without("c") | self.lm.masks.eos)
        if tok.is_eos:
            self.finish(self.text)

    def check(self, output):
        return {check}
```'''


FORBIDDEN_IMPORT = no_c_program('"c" not in output', extra_import="import os\n")
WRONG_CHECK = no_c_program('" c" in output')  # contradicts the masks: every output fails
REPAIRED = no_c_program('"c" not in output')


def test_a_broken_first_program_is_repaired_with_the_error_its_line_and_rejected_outputs(tmp_path):
    from selfsteer.planners.sandbox import Limits
    from selfsteer.planners.solve import solve

    with ScriptedChatServer([FORBIDDEN_IMPORT, WRONG_CHECK, REPAIRED]) as server:
        planner = load_planner("openai", base_url=server.url, model="m", api_key="k", examples=[])
        result = solve("a", planner=planner, follower="exact", n_particles=4, seed=0, cache=False,
                       limits=Limits(wall_s=30))
    assert result.check_passed and result.attempt == 3 and "c" not in result.answer
    assert [a.error_kind for a in result.attempts] == ["validation", "no_output", None]
    second, third = (r["body"]["messages"][-1]["content"] for r in server.requests[1:])
    # validation: the error and the offending line, quoted from the program
    assert "breaks the rules" in second and "line 1: importing `os` is not allowed" in second
    assert "  1 | import os" in second
    # the run finished: how many failed check() and a sample of the outputs it rejected
    assert "4 finished but failed check()" in third and "Outputs that check() returned False for:" in third
    rejected = result.attempts[1].summary.rejected
    assert rejected and all("c" not in o for o in rejected) and all(f"\n  {o!r}" in third for o in rejected)
    assert server.requests[2]["body"]["messages"][-2]["content"] == WRONG_CHECK  # its own failed program


def test_feedback_quotes_only_the_lines_the_error_does_not_quote_already():
    from selfsteer.planners.feedback import attempt_feedback, quote_lines

    source = "a = 1\nb = 2\nc = 3\n"
    assert quote_lines("line 2: bad; line 3: worse; line 9: out of range", source) == "  2 | b = 2\n  3 | c = 3"
    assert quote_lines("boom (in step(), line 3: `c = 3`)", source) == ""
    text = attempt_feedback("program", "ValueError: x (in step(), line 1: `a = 1`)", source)
    assert text.startswith("The program failed: it raised an error while running.") and "lines named" not in text


def test_recorded_capable_completions_validate_and_replay_in_order():
    import json

    from benchmarks.planner_paths import COMPLETIONS, replay
    from selfsteer.planners.validate import validate_program

    recorded = {r["id"]: r["completions"] for r in map(json.loads, COMPLETIONS.read_text().splitlines())}
    for completions in recorded.values():
        for completion in completions:
            validate_program(extract_program(completion))
    tasks = {"a": "Write a poem.", "b": "Write a sentence."}
    with ScriptedChatServer(replay({"a": ["A1", "A2"], "b": ["B1"]}, tasks)) as server:
        planner = load_planner("openai", base_url=server.url, model="m", examples=[])
        assert planner.chat(planner.messages("Write a sentence.")) == "B1"
        assert planner.plan("Write a poem.").completion == "A1"
        assert planner.plan("Write a poem.", feedback="boom").completion == "A2"
        assert planner.plan("Write a poem.", feedback="boom").completion == "A2"  # the last one repeats
