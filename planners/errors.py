"""Errors a planner LM raises when it cannot produce a completion."""

from __future__ import annotations


class PlannerError(RuntimeError):
    """The planner LM could not be reached or gave no usable answer.

    ``retryable`` says whether asking again may help (timeouts, 429, 5xx) or not (a wrong key,
    an unknown model, a malformed URL): the message names the fix. ``retry_after`` is the wait in
    seconds the server asked for, if any.
    """

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
