"""An OpenAI-compatible HTTP API over `solve` (FastAPI; run it with ``selfsteer serve``).

``POST /v1/chat/completions`` solves the last user message and answers in the OpenAI chat
completion format. The answer is the message content; the extension field ``selfsteer`` holds
the posterior, the answer's weight, the check outcome, the program and the attempts. Requests
may carry their own ``selfsteer`` object (with the OpenAI client: ``extra_body={"selfsteer":
{...}}``): ``program`` and ``params`` (run that library program instead of planning),
``particles``, ``attempts`` and ``time_limit`` (seconds, at most the server's). ``seed`` is the
standard field; sampling fields (``temperature``, ``max_tokens``, ...) are ignored, since the
program decides how the follower samples. ``stream=true`` sends server-sent events: one ``chat.completion.chunk`` per
progress event (``selfsteer.progress``), then the answer, then ``[DONE]``.

Requests run concurrently on one `SolveEngine`, so their LM calls batch on one follower. Errors
use OpenAI's body ``{"error": {"message", "type", "param", "code"}}``: 400 for a bad request,
404 for an unknown model, 504 past the time limit; a client that disconnects cancels its run.
``GET /v1/models`` lists the served model and ``GET /health`` reports the solves in flight.
"""

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .engine import SolveEngine, SolveTimeout, named_program_plan
from .plan import Plan
from .solve import SolveResult

EXTENSION = "selfsteer"


class RequestError(ValueError):
    """A request the server cannot run; ``status`` is its HTTP status, ``param`` the field at fault."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class ChatRequest:
    """The parts of a chat completion request the server uses."""

    task: str
    stream: bool
    seed: int | None
    plan: Plan | None
    particles: int | None
    attempts: int | None
    time_limit: float


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise RequestError("message content must be a string or a list of text parts", param="messages")


def _positive(value: Any, name: str, kind: type) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= 0:
        raise RequestError(f"{name} must be a positive {kind.__name__}, got {value!r}", param=name)
    return kind(value)


def parse_request(body: Any, *, model: str, max_time_limit: float) -> ChatRequest:
    """Check a request body and pull out what `solve` needs; `RequestError` says what is wrong."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if body.get("model") != model:
        raise RequestError(f"the model {body.get('model')!r} does not exist; this server serves {model!r}",
                           status=404, param="model", code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise RequestError("messages must be a non-empty list of {role, content} objects", param="messages")
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        raise RequestError("messages hold no user message: the last user message is the task", param="messages")
    task = _text_of(users[-1].get("content")).strip()
    if not task:
        raise RequestError("the last user message is empty: it must state the task", param="messages")
    if body.get("n", 1) != 1:
        raise RequestError("only n=1 is supported; the whole posterior is in the response's 'selfsteer' field",
                           param="n")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise RequestError(f"seed must be a non-negative integer, got {seed!r}", param="seed")
    ext = body.get(EXTENSION) or {}
    if not isinstance(ext, dict):
        raise RequestError(f"{EXTENSION} must be an object, e.g. {{\"program\": ..., \"params\": {{...}}}}",
                           param=EXTENSION)
    unknown = set(ext) - {"program", "params", "particles", "attempts", "time_limit"}
    if unknown:
        raise RequestError(f"unknown {EXTENSION} fields {sorted(unknown)}; use program, params, particles, "
                           "attempts, time_limit", param=EXTENSION)
    plan = None
    if ext.get("program") is not None:
        if not isinstance(ext["program"], str) or not isinstance(ext.get("params", {}), dict):
            raise RequestError("selfsteer.program must be a program name and selfsteer.params an object",
                               param=f"{EXTENSION}.program")
        try:
            plan = named_program_plan(ext["program"], ext.get("params"))
        except ValueError as e:
            raise RequestError(str(e), param=f"{EXTENSION}.program") from None
    elif "params" in ext:
        raise RequestError("selfsteer.params needs selfsteer.program (the library program they are for)",
                           param=f"{EXTENSION}.params")
    limit = _positive(ext.get("time_limit"), "selfsteer.time_limit", float) or max_time_limit
    if limit > max_time_limit:
        raise RequestError(f"selfsteer.time_limit {limit:g} s is above this server's limit of {max_time_limit:g} s",
                           param=f"{EXTENSION}.time_limit")
    return ChatRequest(task=task, stream=bool(body.get("stream", False)), seed=seed, plan=plan,
                       particles=_positive(ext.get("particles"), "selfsteer.particles", int),
                       attempts=_positive(ext.get("attempts"), "selfsteer.attempts", int), time_limit=limit)


def extension_of(result: SolveResult) -> dict[str, Any]:
    """The ``selfsteer`` field of a response: posterior, weight, check outcome, program, attempts."""
    data = result.to_dict()
    plan = result.plan
    return {
        "posterior": data["posterior"], "weight": result.weight, "check_passed": result.check_passed,
        "program": None if plan is None else {"name": plan.program_name or plan.class_name, "origin": plan.origin,
                                              "params": plan.params, "source": plan.source},
        "attempt": result.attempt, "from_cache": result.from_cache, "attempts": data["attempts"],
        "error": result.error, "seconds": result.seconds, "planner": result.planner,
    }


def _content(answer: Any) -> str:
    if answer is None:
        return ""
    return answer if isinstance(answer, str) else json.dumps(answer)


def completion(result: SolveResult, *, model: str, rid: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object for ``result``."""
    return {
        "id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": _content(result.answer)},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        EXTENSION: extension_of(result),
    }


def chunk(rid: str, model: str, delta: dict[str, Any], finish: str | None, extension: dict[str, Any]) -> str:
    """One server-sent event holding a ``chat.completion.chunk``."""
    body = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], EXTENSION: extension}
    return f"data: {json.dumps(body, default=repr)}\n\n"


def create_app(engine: SolveEngine, *, model: str = "selfsteer", max_time_limit: float | None = None):
    """The FastAPI app serving ``engine`` under the model name ``model``."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse, StreamingResponse
        from starlette.exceptions import HTTPException
    except ImportError as e:
        raise ImportError(f"selfsteer serve needs FastAPI and uvicorn ({e.name} is missing): "
                          "pip install 'selfsteer[serve]'") from None

    limit = float(max_time_limit or engine.limits.wall_s)
    app = FastAPI(title="selfsteer", docs_url=None, redoc_url=None)

    def fail(status: int, message: str, kind: str, param: str | None = None, code: str | None = None):
        return JSONResponse(error_body(message, kind, param, code), status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return fail(exc.status_code, str(exc.detail), "invalid_request_error")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return fail(400, f"bad request: {where}", "invalid_request_error")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return fail(500, f"internal error: {type(exc).__name__}: {exc}", "server_error")

    @app.get("/health")
    async def health():
        return {"status": "ok", "running": engine.running}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "selfsteer"}]}

    async def watch(request: Request, work: asyncio.Task) -> None:
        """Cancel ``work`` when the client goes away."""
        while not work.done():
            if await request.is_disconnected():
                work.cancel()
                return
            await asyncio.sleep(0.1)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            body = json.loads(await request.body())
        except ValueError as e:
            return fail(400, f"the request body is not valid JSON: {e}", "invalid_request_error")
        try:
            req = parse_request(body, model=model, max_time_limit=limit)
        except RequestError as e:
            return fail(e.status, str(e), e.kind, e.param, e.code)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        events: asyncio.Queue = asyncio.Queue()

        def progress(stage: str, attempt: int, detail: str) -> None:
            events.put_nowait({"stage": stage, "attempt": attempt, "detail": detail})

        work = asyncio.create_task(engine.solve(req.task, plan=req.plan, n_particles=req.particles, seed=req.seed,
                                                attempts=req.attempts, time_limit=req.time_limit, progress=progress))
        if not req.stream:
            watcher = asyncio.create_task(watch(request, work))
            try:
                result = await work
            except SolveTimeout as e:
                return fail(504, str(e), "timeout_error", f"{EXTENSION}.time_limit", "time_limit")
            except asyncio.CancelledError:
                if not work.cancelled():
                    raise  # the server is shutting down
                return fail(499, "the client closed the request", "invalid_request_error")
            except ValueError as e:  # solve's own argument checks
                return fail(400, str(e), "invalid_request_error")
            finally:
                watcher.cancel()
            return completion(result, model=model, rid=rid)

        async def stream():
            try:
                yield chunk(rid, model, {"role": "assistant", "content": ""}, None, {})
                while True:
                    getter = asyncio.create_task(events.get())
                    done, _ = await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
                    if getter in done:
                        yield chunk(rid, model, {}, None, {"progress": getter.result()})
                        continue
                    getter.cancel()
                    while not events.empty():
                        yield chunk(rid, model, {}, None, {"progress": events.get_nowait()})
                    break
                try:
                    result = work.result()
                except (SolveTimeout, ValueError) as e:
                    kind = "timeout_error" if isinstance(e, SolveTimeout) else "invalid_request_error"
                    yield f"data: {json.dumps(error_body(str(e), kind))}\n\n"
                else:
                    yield chunk(rid, model, {"content": _content(result.answer)}, "stop", extension_of(result))
                yield "data: [DONE]\n\n"
            finally:
                work.cancel()  # the client went away (or we are done): stop the run

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app
