"""Summarize an input of any size within a per-call token budget: map over chunks, then reduce.

Input that fits one call is summarized by one call, the ``summary`` part. Otherwise the items are
packed into chunks that each fit (an item too long for one is split), every chunk is summarized
concurrently (``map i/n``), and the summaries are packed and combined the same way (``reduce L.i/n``)
until one call holds them all: that last call is the ``summary``. Each level's summaries are at most
``output_tokens`` long and a call holds at least two of them, so every level shrinks the input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from common.tokens import Budget, estimate_tokens
from common.usage import Usage

SEPARATOR = "\n\n---\n\n"
MAX_LEVELS = 12
SINGLE = "Summarize the input below."
MAP = (
    "The input below is part {index} of {count} of a larger input. Summarize this part; "
    "the parts' summaries are combined afterwards."
)
REDUCE = "Below are summaries of {count} parts of one input. Combine them into one summary."


class SummaryError(Exception):
    """A run that cannot be summarized as configured (a budget too small for the prompt)."""


@dataclass(frozen=True)
class CallResult:
    text: str
    usage: Usage


Call = Callable[[str, str], Awaitable[CallResult]]
"""(part, user message) -> the call's text and usage; streams and retries on its own."""
MapStep = Callable[[list[str]], Awaitable[list[CallResult]]]
"""The map calls' user messages -> their results in the same order (streamed, or a Batch API job)."""


@dataclass
class MapReduceStats:
    chunks: int = 0
    calls: int = 0
    reduce_levels: int = 0
    usage: Usage = field(default_factory=Usage)
    map_usage: Usage = field(default_factory=Usage)
    """The map step's share of ``usage`` (priced apart when it goes through the Batch API)."""


class MapReduce:
    def __init__(self, call: Call, budget: Budget, map_step: MapStep | None = None) -> None:
        self._call = call
        self._budget = budget
        self._map_step = map_step or self._streamed_map
        self.stats = MapReduceStats()

    async def summarize(self, items: list[str]) -> str:
        chunks = pack(items, self._budget.input_tokens)
        self.stats.chunks = len(chunks)
        if len(chunks) == 1:
            return (await self._one("summary", SINGLE, chunks[0])).text
        messages = [
            _message(MAP.format(index=i, count=len(chunks)), chunk) for i, chunk in enumerate(chunks, 1)
        ]
        mapped = await self._map_step(messages)
        self.stats.calls += len(mapped)
        for result in mapped:
            self.stats.usage += result.usage
            self.stats.map_usage += result.usage
        return await self._reduce([result.text for result in mapped])

    async def _reduce(self, summaries: list[str]) -> str:
        while True:
            groups = pack(summaries, self._budget.input_tokens)
            if len(groups) == 1:
                return (await self._one("summary", REDUCE.format(count=len(summaries)), groups[0])).text
            self.stats.reduce_levels += 1
            if self.stats.reduce_levels > MAX_LEVELS:
                raise SummaryError(f"the summaries did not shrink after {MAX_LEVELS} reduce levels")
            level = self.stats.reduce_levels
            calls = [
                self._one(
                    f"reduce {level}.{i}/{len(groups)}",
                    REDUCE.format(count=group.count(SEPARATOR) + 1),
                    group,
                )
                for i, group in enumerate(groups, 1)
            ]
            summaries = [result.text for result in await asyncio.gather(*calls)]

    async def _one(self, part: str, instruction: str, body: str) -> CallResult:
        result = await self._call(part, _message(instruction, body))
        self.stats.calls += 1
        self.stats.usage += result.usage
        return result

    async def _streamed_map(self, messages: list[str]) -> list[CallResult]:
        count = len(messages)
        calls = [self._call(f"map {i}/{count}", message) for i, message in enumerate(messages, 1)]
        return list(await asyncio.gather(*calls))


def _message(instruction: str, body: str) -> str:
    return f"{instruction}\n\n{body}"


def pack(texts: list[str], budget_tokens: int) -> list[str]:
    """Join texts into as few chunks as fit ``budget_tokens`` each, in order; split a text too long."""
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    separator_tokens = estimate_tokens(SEPARATOR)
    for text in texts:
        for piece in split(text, budget_tokens):
            cost = estimate_tokens(piece) + (separator_tokens if current else 0)
            if current and used + cost > budget_tokens:
                chunks.append(SEPARATOR.join(current))
                current, used = [], 0
                cost = estimate_tokens(piece)
            current.append(piece)
            used += cost
    if current:
        chunks.append(SEPARATOR.join(current))
    return chunks


def split(text: str, max_tokens: int) -> list[str]:
    """``text`` in pieces whose token estimate is at most ``max_tokens``, cut between characters."""
    pieces: list[str] = []
    start = 0
    while estimate_tokens(text[start:]) > max_tokens:
        end = _longest_fit(text, start, max_tokens)
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces


def _longest_fit(text: str, start: int, max_tokens: int) -> int:
    """The furthest end of a piece from ``start`` within ``max_tokens`` (at least one character).

    The estimate never falls as a piece grows by a character, so a binary search finds it."""
    low, high = start + 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_tokens(text[start:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return low
