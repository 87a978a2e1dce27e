"""A client for any OpenAI-compatible chat-completions endpoint (stdlib only).

Hosted APIs, vLLM's server (``vllm serve``), llama.cpp's ``llama-server`` and ollama
(``http://localhost:11434/v1``) all speak ``POST {base_url}/chat/completions``. Settings come
from arguments or the environment:

- ``SELFSTEER_PLANNER_URL`` (else ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``)
- ``SELFSTEER_PLANNER_MODEL`` (else ``OPENAI_MODEL``; required)
- ``SELFSTEER_PLANNER_KEY`` (else ``OPENAI_API_KEY``; local servers need none)

Timeouts, connection failures, 429 and 5xx answers are retried with exponential backoff
(honouring ``Retry-After``); other failures raise `PlannerError` at once with a message that
names the fix.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from .errors import PlannerError

DEFAULT_URL = "https://api.openai.com/v1"
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class OpenAIChat:
    """``chat(messages) -> completion text`` over an OpenAI-compatible endpoint."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 3
    backoff: float = 1.0
    temperature: float = 0.2
    max_tokens: int = 2048

    @classmethod
    def from_env(cls, *, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 **options) -> OpenAIChat:
        """Settings from the arguments, else the environment (see the module docstring)."""
        env = os.environ
        base_url = base_url or env.get("SELFSTEER_PLANNER_URL") or env.get("OPENAI_BASE_URL") or DEFAULT_URL
        model = model or env.get("SELFSTEER_PLANNER_MODEL") or env.get("OPENAI_MODEL")
        api_key = api_key or env.get("SELFSTEER_PLANNER_KEY") or env.get("OPENAI_API_KEY")
        if not model:
            raise PlannerError("no planner model named: pass --planner-model (or model=...) or set SELFSTEER_PLANNER_MODEL")
        if not base_url.startswith(("http://", "https://")):
            raise PlannerError(f"the planner URL {base_url!r} must start with http:// or https://")
        return cls(base_url=base_url.rstrip("/"), model=model, api_key=api_key, **options)

    @property
    def endpoint(self) -> str:
        return f"{self.base_url.rstrip('/')}/chat/completions"

    def _request(self, messages: list[dict]) -> urllib.request.Request:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")

    def _once(self, messages: list[dict]) -> str:
        try:
            with urllib.request.urlopen(self._request(messages), timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode(errors="replace")
            raise _http_error(e.code, self.endpoint, self.model, detail, e.headers.get("Retry-After")) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError):
                raise PlannerError(f"the planner at {self.endpoint} did not answer within {self.timeout:g} s",
                                   retryable=True) from None
            raise PlannerError(f"could not reach the planner at {self.endpoint} ({reason}); is the server running? "
                               "Set --planner-url or SELFSTEER_PLANNER_URL", retryable=True) from None
        try:
            return json.loads(payload)["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise PlannerError(f"the planner at {self.endpoint} sent no chat completion: {payload[:200]!r}") from None

    def __call__(self, messages: list[dict]) -> str:
        """The completion for ``messages``; retries what may pass, raises `PlannerError` otherwise."""
        for attempt in range(self.max_retries + 1):
            try:
                return self._once(messages)
            except PlannerError as e:
                if not e.retryable or attempt == self.max_retries:
                    if e.retryable:
                        raise PlannerError(f"{e} (gave up after {attempt + 1} tries)") from None
                    raise
                time.sleep(e.retry_after if e.retry_after is not None else self.backoff * 2**attempt)
        raise AssertionError("unreachable")


def _http_error(status: int, endpoint: str, model: str, detail: str, retry_after: str | None) -> PlannerError:
    try:
        wait = min(float(retry_after), 60.0) if retry_after else None
    except ValueError:
        wait = None
    if status in (401, 403):
        return PlannerError(f"the planner at {endpoint} refused the API key (HTTP {status}); set SELFSTEER_PLANNER_KEY "
                           f"or --planner-key. Server said: {detail}")
    if status == 404:
        return PlannerError(f"HTTP 404 from {endpoint}: wrong base URL (it should end in /v1) or unknown model "
                           f"{model!r}. Server said: {detail}")
    return PlannerError(f"the planner at {endpoint} answered HTTP {status}. Server said: {detail}",
                        retryable=status in RETRY_STATUS, retry_after=wait)
