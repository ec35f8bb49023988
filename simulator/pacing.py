"""Writing timed byte steps on an absolute schedule, coalescing steps that fall due together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from .sse import DONE

# Steps due within this horizon share one write: fewer syscalls, imperceptible to a client.
COALESCE_S = 0.005
STAMP = b"@STAMP@"
STOP_WITH = DONE
"""How a stopped stream ends: as llama-cpp-python ends one it interrupts, with no finish_reason."""
"""Replaced in the bytes of a write by the wall time of that write (``stamp_tokens``)."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and a stream builds
# one Step per token (an eighth of the simulator's CPU on 200-token answers).
@dataclass(slots=True)
class Step:
    at_s: float  # offset from the stream start
    data: bytes
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class Pace:
    first_s: float  # delay of the first content token
    interval_s: float  # between content tokens; 0 sends them all at once

    def token_at(self, index: int) -> float:
        return self.first_s + index * self.interval_s

    @classmethod
    def of(cls, ttft_ms: float, extra_ms: float, tokens_per_s: float) -> Pace:
        return cls((ttft_ms + extra_ms) / 1000.0, 1.0 / tokens_per_s if tokens_per_s > 0 else 0.0)


async def play(
    resp: web.StreamResponse,
    steps: Sequence[Step],
    start: float,
    on_tokens: Callable[[int], None],
    *,
    eof: bool,
    stamp: bool = False,
    stop: Callable[[], bool] | None = None,
) -> bool:
    """Write `steps` at `start + at_s` (loop clock); with `eof` the last batch also ends the body.

    With `stamp`, every STAMP in a write becomes the Unix time of the write, in seconds. When `stop`
    holds before a write, the body ends there with `STOP_WITH` instead: returns True.
    """
    loop = asyncio.get_running_loop()
    index, total = 0, len(steps)
    while index < total:
        # Absolute deadlines: a late wake-up shortens the next wait instead of drifting the stream.
        delay = start + steps[index].at_s - loop.time()
        if delay > COALESCE_S:
            await asyncio.sleep(delay)
        if stop is not None and index > 0 and stop():
            await resp.write_eof(STOP_WITH)
            return True
        horizon = loop.time() - start + COALESCE_S
        end = index + 1
        while end < total and steps[end].at_s <= horizon:
            end += 1
        batch = steps[index:end]
        data = b"".join(step.data for step in batch)
        if stamp:
            data = data.replace(STAMP, f"{time.time():.6f}".encode())
        if eof and end == total:
            await resp.write_eof(data)
        else:
            await resp.write(data)
        on_tokens(sum(step.tokens for step in batch))
        index = end
    if eof and total == 0:
        await resp.write_eof()
    return False


async def sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)
