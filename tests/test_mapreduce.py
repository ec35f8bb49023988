"""Map-reduce over a token budget: packing, splitting, and the levels a large input goes through."""

from __future__ import annotations

import pytest

from common.tokens import Budget, BudgetError, call_budget, estimate_tokens
from common.usage import Usage
from worker.schedules.mapreduce import MAP, SEPARATOR, CallResult, MapReduce, pack, split


class TestPack:
    def test_chunks_keep_order_and_fit_the_budget(self) -> None:
        """Texts are packed in order; no chunk's estimate exceeds the budget."""
        texts = [f"item {index} " + "word " * (index % 7) for index in range(200)]
        chunks = pack(texts, 100)
        assert SEPARATOR.join(chunks).split(SEPARATOR) == texts
        assert all(estimate_tokens(chunk) <= 100 for chunk in chunks)
        assert len(chunks) > 1

    def test_a_text_too_long_for_one_chunk_is_split_whole(self) -> None:
        """An oversize text is cut into pieces that each fit, and nothing of it is lost."""
        long = "가나다라마바사" * 300  # a token a character, by the estimate
        pieces = split(long, 50)
        assert "".join(pieces) == long
        assert all(estimate_tokens(piece) <= 50 for piece in pieces)
        assert len(pieces) == -(-len(long) // 50)
        mixed = "The queue holds 12,437 jobs; 서울 answered them all. " * 200
        pieces = split(mixed, 64)
        assert "".join(pieces) == mixed
        assert all(40 < estimate_tokens(piece) <= 64 for piece in pieces[:-1])


class TestBudget:
    def test_output_is_a_quarter_of_the_context_at_most(self) -> None:
        """The per-call output is the smaller of max_tokens and a quarter of the context."""
        assert call_budget(8000, 1024, "Summarize.").output_tokens == 1024
        assert call_budget(2000, 1024, "Summarize.").output_tokens == 500

    def test_a_prompt_that_leaves_too_little_room_is_refused(self) -> None:
        """A context that cannot hold two summaries after the prompt is an error naming both numbers."""
        with pytest.raises(BudgetError, match="context_tokens 1000 leaves"):
            call_budget(1000, 1024, "x" * 1200)


class TestMapReduce:
    async def test_a_large_input_goes_through_several_reduce_levels_to_one_summary(self) -> None:
        """Summaries too many for one call are reduced level by level until one call holds them."""
        seen: list[tuple[str, str]] = []
        budget = Budget(input_tokens=400, output_tokens=150)

        async def call(part: str, message: str) -> CallResult:
            seen.append((part, message))
            return CallResult(f"<{len(seen)}>" + "s" * 500, Usage(prompt_tokens=1, completion_tokens=2))

        items = [f"item-{index:04d} " + "x" * 200 for index in range(120)]
        mapreduce = MapReduce(call, budget)
        summary = await mapreduce.summarize(items)

        maps = [message for part, message in seen if part.startswith("map ")]
        assert all(sum(item in message for message in maps) == 1 for item in items)
        assert all(message.startswith(MAP.split("{", 1)[0]) for message in maps)
        assert mapreduce.stats.reduce_levels >= 2
        assert seen[-1][0] == "summary"
        assert summary.startswith(f"<{len(seen)}>")
        assert mapreduce.stats.calls == len(seen)
        assert mapreduce.stats.usage.completion_tokens == 2 * len(seen)
        assert mapreduce.stats.map_usage.completion_tokens == 2 * len(maps)
        for level in range(1, mapreduce.stats.reduce_levels + 1):
            outputs_before = [index for index, (part, _) in enumerate(seen, 1) if _level(part) == level - 1]
            reduced = "".join(message for part, message in seen if _level(part) == level)
            assert all(f"<{index}>" in reduced for index in outputs_before)


def _level(part: str) -> int | None:
    if part.startswith("map "):
        return 0
    if part.startswith("reduce "):
        return int(part.split()[1].split(".")[0])
    return None
