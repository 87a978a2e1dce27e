"""`selfsteer serve`: the official `openai` client against a real uvicorn server on localhost.

Request checking runs against a server whose engine holds the ExactLM (bad requests never reach
the follower, so a real one is not the point there). Completions, streaming, concurrency, time
limits and disconnects run on the bundled SmolLM2 follower with tiny particle counts.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from selfsteer.planners.engine import SolveEngine  # noqa: E402
from selfsteer.planners.library import LibraryPlanner  # noqa: E402
from selfsteer.planners.serve import create_app  # noqa: E402
from selfsteer.planners.solve import solve  # noqa: E402

PHONE = {"program": "regex", "params": {"pattern": "[0-9]{3}-[0-9]{4}"}}


class Server:
    """uvicorn serving ``engine`` in a background thread on a free localhost port."""

    def __init__(self, engine: SolveEngine, **options):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(create_app(engine, **options), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, cls=None):
        return (cls or openai.OpenAI)(base_url=self.url + "/v1", api_key="unused", max_retries=0, timeout=600)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def exact_server():
    from selfsteer.smc import ExactLM

    engine = SolveEngine(planner=LibraryPlanner(), lm=ExactLM(("a", "b", " c"), max_len=4, seed=3)).start()
    server = Server(engine, max_time_limit=60)
    yield server
    server.stop()
    engine.close()


@pytest.fixture(scope="module")
def served(lm):
    engine = SolveEngine(planner=LibraryPlanner(), lm=lm, n_particles=2, attempts=1).start()
    server = Server(engine)
    yield server, engine
    server.stop()
    engine.close()


def user(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


@pytest.mark.parametrize("kwargs, status, words", [
    ({"model": "gpt-4o", "messages": user("hi")}, 404, "serves 'selfsteer'"),
    ({"model": "selfsteer", "messages": []}, 400, "non-empty list"),
    ({"model": "selfsteer", "messages": [{"role": "system", "content": "x"}]}, 400, "no user message"),
    ({"model": "selfsteer", "messages": user("  ")}, 400, "empty"),
    ({"model": "selfsteer", "messages": user("x"), "n": 3}, 400, "only n=1"),
    ({"model": "selfsteer", "messages": user("x"), "seed": -1}, 400, "seed"),
    ({"model": "selfsteer", "messages": user("x"), "extra_body": {"selfsteer": {"program": "nope"}}}, 400, "regex"),
    ({"model": "selfsteer", "messages": user("x"), "extra_body": {"selfsteer": {"program": "regex", "params": {}}}},
     400, "pattern"),
    ({"model": "selfsteer", "messages": user("x"), "extra_body": {"selfsteer": {"particles": 0}}}, 400, "positive"),
    ({"model": "selfsteer", "messages": user("x"), "extra_body": {"selfsteer": {"time_limit": 999}}}, 400, "above"),
    ({"model": "selfsteer", "messages": user("x"), "extra_body": {"selfsteer": {"colour": 1}}}, 400, "unknown"),
])
def test_bad_requests_get_a_4xx_with_a_message(exact_server, kwargs, status, words):
    with pytest.raises(openai.APIStatusError) as e:
        exact_server.client().chat.completions.create(**kwargs)
    assert e.value.status_code == status
    error = e.value.body
    assert words in error["message"] and "Traceback" not in error["message"]
    assert error["type"] == "invalid_request_error"


def test_malformed_bodies_and_routes_get_openai_error_bodies(exact_server):
    with httpx.Client(base_url=exact_server.url) as http:
        bad_json = http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        no_route = http.get("/v1/nothing")
        models = http.get("/v1/models").json()
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
    assert no_route.status_code == 404 and no_route.json()["error"]["message"]
    assert [m["id"] for m in models["data"]] == ["selfsteer"]


@pytest.mark.slow
def test_a_completion_matches_solve_with_the_same_seed(served):
    server, engine = served
    task = "Give me a phone number that matches the regex `[0-9]{3}-[0-9]{4}`."
    reply = server.client().chat.completions.create(model="selfsteer", messages=user(task), seed=5)
    ext = reply.model_extra["selfsteer"]
    local = solve(task, planner=engine.planner, lm=engine.lm, n_particles=2, attempts=1, seed=5, cache=False)
    assert reply.object == "chat.completion" and reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == local.answer
    assert ext["program"]["name"] == local.plan.program_name == "regex"
    assert ext["check_passed"] is True and ext["weight"] == pytest.approx(local.weight)
    assert ext["posterior"] == [list(p) for p in local.summary.to_dict()["posterior"]]
    assert 0.99 < sum(p for _, p in ext["posterior"]) < 1.01


@pytest.mark.slow
def test_streaming_sends_progress_then_the_answer(served):
    server, _ = served
    stream = server.client().chat.completions.create(model="selfsteer", messages=user("A phone number, please."),
                                                     stream=True, extra_body={"selfsteer": PHONE})
    chunks = list(stream)
    stages = [c.model_extra["selfsteer"]["progress"]["stage"] for c in chunks if "progress" in c.model_extra["selfsteer"]]
    last = chunks[-1]
    assert stages[:2] == ["plan", "run"] and stages[-1] == "done"
    assert last.choices[0].finish_reason == "stop"
    assert len(last.choices[0].delta.content) == 8 and last.choices[0].delta.content[3] == "-"
    assert last.model_extra["selfsteer"]["program"]["params"] == PHONE["params"]


@pytest.mark.slow
def test_concurrent_requests_share_the_follower(served):
    server, engine = served
    engine.peak = 0
    client = server.client(openai.AsyncOpenAI)

    async def ask(seed: int):
        return await client.chat.completions.create(model="selfsteer", messages=user("A phone number."), seed=seed,
                                                    extra_body={"selfsteer": PHONE})

    async def all_at_once():
        return await asyncio.gather(*(ask(seed) for seed in range(3)))

    replies = asyncio.run(all_at_once())
    assert engine.peak >= 2  # in flight together on the one engine, so their LM calls batch
    for r in replies:
        assert r.model_extra["selfsteer"]["check_passed"] and len(r.choices[0].message.content) == 8


@pytest.mark.slow
def test_time_limit_and_disconnect_end_the_run(served):
    server, engine = served
    # token-level steps: a cancelled run stops after the forward in progress
    long = {"program": "sentence_without_letter", "params": {"letter": "e"}, "particles": 8}
    with pytest.raises(openai.APIStatusError) as e:
        server.client().chat.completions.create(model="selfsteer", messages=user("Write about the sea."),
                                                extra_body={"selfsteer": {**long, "time_limit": 0.5}})
    assert e.value.status_code == 504 and "time limit of 0.5 s" in e.value.body["message"]

    cancelled = engine.cancelled
    with httpx.Client(base_url=server.url, timeout=2.0) as http, pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", json={"model": "selfsteer", "messages": user("Write about the sea."),
                                                "selfsteer": long})
    deadline = time.monotonic() + 180  # generous: the CPU may be shared
    while engine.cancelled == cancelled or engine.running:
        assert time.monotonic() < deadline, "the run of a client that went away was not cancelled"
        time.sleep(0.1)
    reply = server.client().chat.completions.create(model="selfsteer", messages=user("A phone number."),
                                                    extra_body={"selfsteer": PHONE})
    assert reply.model_extra["selfsteer"]["check_passed"]  # the server carries on


def test_serve_command_rejects_bad_options(capsys):
    from selfsteer.cli.main import main

    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be 0-65535" in capsys.readouterr().err
    assert main(["serve", "--particles", "0"]) == 2


@pytest.mark.slow
def test_selfsteer_serve_answers_the_openai_client(tmp_path):
    import os
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "selfsteer.cli.main", "serve", "--port", str(port), "--particles", "2",
                             "--no-cache", "--served-model-name", "steer"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=600)
        deadline = time.monotonic() + 300
        while True:
            try:
                assert [m.id for m in client.models.list()] == ["steer"]
                break
            except openai.APIConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(1)
        reply = client.chat.completions.create(model="steer", messages=user("A phone number."),
                                               extra_body={"selfsteer": PHONE})
        assert reply.model_extra["selfsteer"]["check_passed"] and len(reply.choices[0].message.content) == 8
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
