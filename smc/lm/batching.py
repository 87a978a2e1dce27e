"""Automatic batching of concurrent LM requests.

Particles call the LM from their own coroutines. `AutoBatcher` collects the requests made while
the event loop is busy and hands them to the backend as one batch as soon as a full pass of the
loop adds no new request (every particle that is going to ask has asked). No timers: there is no
latency to tune, and concurrent SMC runs on one LM batch together too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class AutoBatcher:
    """Queue requests; call ``process(requests) -> results`` on each quiescent batch.

    ``process`` returns one result per request, or an exception instance for a request that
    failed; an exception raised by ``process`` itself fails the whole batch.
    """

    def __init__(self, process: Callable[[list[Any]], list[Any]]):
        self._process = process
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._scheduled = False
        self.n_batches = 0
        self.n_requests = 0

    async def submit(self, request: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((request, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._tick, len(self._queue))
        return await future

    def _tick(self, seen: int) -> None:
        if len(self._queue) != seen:  # the last pass of the loop added requests: give it another
            asyncio.get_running_loop().call_soon(self._tick, len(self._queue))
            return
        batch, self._queue, self._scheduled = self._queue, [], False
        live = [(r, f) for r, f in batch if not f.cancelled()]
        if not live:
            return
        self.n_batches += 1
        self.n_requests += len(live)
        try:
            results = self._process([r for r, _ in live])
        except Exception as e:  # a backend failure fails this batch, never the event loop
            for _, f in live:
                if not f.done():
                    f.set_exception(e)
            return
        for (_, f), res in zip(live, results, strict=True):
            if f.done():
                continue
            if isinstance(res, BaseException):
                f.set_exception(res)
            else:
                f.set_result(res)
