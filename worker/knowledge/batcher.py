"""Question embeddings, micro-batched: the jobs of one worker process share embeddings requests.

A question's text waits ``GATHER_S`` for others before one request carries them all (up to
``MAX_BATCH``; a full batch goes at once). While a request is on its way, texts go on gathering
and go when it returns: in steady state jobs start one by one, at the pace answers end (64 a
second at concurrency 64 and 1 s answers), so a fixed few milliseconds would gather one or two,
while the time a request takes (its wait for a place under the semaphore included) gathers as
many as arrived meanwhile. The wait is bounded by one request, and a job waiting here is one
that would otherwise wait for a chat slot. Texts repeated in one request are sent once.

An error fails every text of that request: each job's own failure handling then applies (the
request was already retried by the retry policy, in ``Embedder.embed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import numpy as np
import numpy.typing as npt

from worker.knowledge.index import Matrix

GATHER_S = 0.005
"""How long the first text of a request waits for others."""
MAX_BATCH = 64
"""Most distinct texts in one request."""

Vector = npt.NDArray[np.float32]
Send = Callable[[Sequence[str]], Awaitable[Matrix]]
"""Embeds texts in one request: unit rows, in order."""


class QuestionBatcher:
    """Gathers texts into requests made by ``send``; at most one request on its way at a time,
    unless a full batch is ready."""

    def __init__(self, send: Send, *, gather_s: float = GATHER_S, max_batch: int = MAX_BATCH) -> None:
        self._send = send
        self._gather_s = gather_s
        self._max_batch = max_batch
        self._pending: dict[str, list[asyncio.Future[Vector]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._due = False
        """The gathering time of the pending texts is over: they go as soon as no request is out."""
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests = 0
        """Requests made (each may have been retried inside ``send``)."""

    @property
    def idle(self) -> bool:
        """Nothing gathered and nothing on its way."""
        return not self._pending and not self._in_flight

    async def embed(self, text: str) -> Vector:
        """``text``'s unit vector, from a request shared with the texts gathered with it."""
        future: asyncio.Future[Vector] = asyncio.get_running_loop().create_future()
        waiting = self._pending.setdefault(text, [])
        waiting.append(future)
        if len(self._pending) >= self._max_batch:
            self._go()
        elif self._timer is None and not self._due:
            self._timer = asyncio.get_running_loop().call_later(self._gather_s, self._gathered)
        return await future

    def _gathered(self) -> None:
        self._timer = None
        self._due = True
        if not self._in_flight:
            self._go()

    def _go(self) -> None:
        """Send what is pending now, in a task of its own: a job cancelled meanwhile stops only its wait."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = False
        pending, self._pending = self._pending, {}
        # A job cancelled before the request left (askq cancel, a worker stopping) needs no vector.
        wanted = {text: futures for text, futures in pending.items() if not all(f.done() for f in futures)}
        if not wanted:
            return
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._request(wanted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self, wanted: dict[str, list[asyncio.Future[Vector]]]) -> None:
        try:
            self.requests += 1
            matrix = await self._send(list(wanted))
        except BaseException as exc:  # every waiter hears it, a cancellation too
            for futures in wanted.values():
                _settle(futures, error=exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for row, futures in zip(matrix, wanted.values(), strict=True):
                _settle(futures, vector=row)
        finally:
            self._in_flight -= 1
            if self._pending and (self._due or len(self._pending) >= self._max_batch):
                self._go()

    async def aclose(self) -> None:
        """Stop the requests on their way (the worker is stopping): their waiters are cancelled."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for futures in self._pending.values():
            for future in futures:
                future.cancel()
        self._pending = {}


def _settle(
    futures: list[asyncio.Future[Vector]], *, vector: Vector | None = None, error: BaseException | None = None
) -> None:
    for future in futures:
        if future.done():
            continue  # its job was cancelled meanwhile
        if error is None:
            future.set_result(vector)  # type: ignore[arg-type]
        elif isinstance(error, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(error)
