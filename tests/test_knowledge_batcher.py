"""The question batcher: texts gathered into shared requests, each caller given its own vector."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from common.errors import RetryableProviderError
from worker.knowledge.batcher import QuestionBatcher
from worker.knowledge.index import Matrix


class Recorder:
    """A stand-in for the embeddings request: each text's vector is [len(text), 1], and every request
    is kept; ``hold`` keeps requests waiting until it is set."""

    def __init__(self, *, error: Exception | None = None) -> None:
        self.requests: list[list[str]] = []
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()
        self._error = error

    async def __call__(self, texts: Sequence[str]) -> Matrix:
        self.requests.append(list(texts))
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self._error is not None:
            raise self._error
        return np.array([[len(text), 1.0] for text in texts], dtype=np.float32)


async def test_texts_asked_together_share_one_request_and_repeats_go_once() -> None:
    """Five callers, two asking the same text: one request of four texts, each caller its own row."""
    send = Recorder()
    batcher = QuestionBatcher(send)
    texts = ["a", "bb", "ccc", "bb", "dddd"]
    vectors = await asyncio.gather(*(batcher.embed(text) for text in texts))
    assert send.requests == [["a", "bb", "ccc", "dddd"]]
    assert [vector[0] for vector in vectors] == [1, 2, 3, 2, 4]
    assert batcher.idle


async def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    """Past max_batch distinct texts, a request of max_batch leaves and the rest go in the next."""
    send = Recorder()
    batcher = QuestionBatcher(send, max_batch=3)
    vectors = await asyncio.gather(*(batcher.embed("x" * n) for n in range(1, 8)))
    assert [len(request) for request in send.requests] == [3, 3, 1]
    assert [vector[0] for vector in vectors] == list(range(1, 8))


async def test_texts_arriving_while_a_request_is_out_go_together_when_it_returns() -> None:
    """While one request waits, later texts gather (past the gather time) into the next one request."""
    send = Recorder()
    send.hold = asyncio.Event()
    batcher = QuestionBatcher(send, gather_s=0)
    first = asyncio.ensure_future(batcher.embed("first"))
    await send.started.wait()
    later = [asyncio.ensure_future(batcher.embed(text)) for text in ("second", "third", "fourth")]
    for _ in range(10):
        await asyncio.sleep(0)  # let the gather time (0 s) pass: they still wait for the request out
    assert send.requests == [["first"]]
    send.hold.set()
    await asyncio.gather(first, *later)
    assert send.requests == [["first"], ["second", "third", "fourth"]]


async def test_an_error_fails_every_caller_of_that_request() -> None:
    """A failed request raises its error in each caller that shared it."""
    error = RetryableProviderError("HTTP 500: embeddings failed")
    batcher = QuestionBatcher(Recorder(error=error))
    outcomes = await asyncio.gather(*(batcher.embed(text) for text in "abc"), return_exceptions=True)
    assert outcomes == [error, error, error]
    assert batcher.idle


async def test_a_cancelled_caller_leaves_the_others_their_vectors() -> None:
    """A job cancelled while its request is out stops waiting; the others get theirs."""
    send = Recorder()
    send.hold = asyncio.Event()
    batcher = QuestionBatcher(send)
    gone = asyncio.ensure_future(batcher.embed("gone"))
    kept = asyncio.ensure_future(batcher.embed("kept"))
    await send.started.wait()
    gone.cancel()
    send.hold.set()
    assert (await kept)[0] == 4
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_text_whose_callers_all_left_before_the_request_is_not_sent() -> None:
    """Callers cancelled during the gather time are not asked for."""
    send = Recorder()
    batcher = QuestionBatcher(send)
    gone = asyncio.ensure_future(batcher.embed("gone"))
    await asyncio.sleep(0)  # it is waiting now
    gone.cancel()
    assert (await batcher.embed("kept"))[0] == 4
    assert send.requests == [["kept"]]


async def test_closing_cancels_the_callers_waiting() -> None:
    """A stopping worker's batcher cancels its request out and its callers."""
    send = Recorder()
    send.hold = asyncio.Event()
    batcher = QuestionBatcher(send)
    waiting = asyncio.ensure_future(batcher.embed("a"))
    await send.started.wait()
    await batcher.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting
