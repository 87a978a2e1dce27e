"""A real OpenAI-compatible chat server on 127.0.0.1 for tests and benchmarks, answering from a
script or replaying recorded completions.

Each entry of ``script`` is either a completion string (answered with HTTP 200) or a tuple
``(status, body, headers)`` for an error, or ``("sleep", seconds)`` to stall. ``script`` may
instead be a function of the request's JSON body returning such an entry (a replay of recorded
completions keyed by the task, say). The server records every request it received (headers and
JSON body).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedChatServer:
    def __init__(self, script: list | Callable[[dict], object]):
        self.answer = script if callable(script) else None
        self.script = [] if callable(script) else list(script)
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    if outer.answer is not None:
                        step = outer.answer(body)
                    else:
                        step = outer.script.pop(0) if outer.script else (500, "script exhausted", {})
                if isinstance(step, tuple) and step[0] == "sleep":
                    time.sleep(step[1])
                    step = step[2] if len(step) > 2 else "late"
                if isinstance(step, str):
                    payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": step}}]}).encode()
                    self._send(200, payload, {})
                else:
                    status, text, headers = step
                    self._send(status, text.encode(), headers)

            def _send(self, status, payload, headers):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
