"""Retrieval quality on the demo's café menu: each labelled question finds its planted chunk (recall@4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from askq.demo import EXAMPLES, with_menu
from common.config import AskqConfig
from tests.conftest import Simulator
from worker.knowledge.build import build_base
from worker.knowledge.search import search_base

# Each question, English or Korean, with a phrase only its planted chunk holds.
LABELLED = {
    "How much is a large iced americano?": "Iced Americano: Regular 2,500 won, Large 3,000 won",
    "아이스 아메리카노 라지 사이즈는 얼마예요?": "아이스 아메리카노는 레귤러 2,500원, 라지 3,000원",
    "How much extra does oat milk cost?": "Oat milk instead of cow's milk",
    "딸기라떼는 언제까지 판매하나요?": "12월부터 4월까지만",
    "Can I buy a strawberry latte in April?": "December to April",
    "Which drink contains no caffeine?": "It contains no caffeine",
    "녹차라떼에 카페인이 얼마나 들어 있나요?": "카페인이 약 60mg",
    "When do you open on weekends?": "On weekends we open at 9:00",
    "와이파이 비밀번호는 어디에 있나요?": "비밀번호는 영수증에",
    "How many stamps do I need for a free americano?": "ten stamps buy a free Regular Americano",
    "콜드브루는 몇 시간 추출하나요?": "18시간 추출한",
    "How long is the sweet cold brew steeped?": "steeped for 18 hours",
}
TOP_K = 4


@pytest.fixture
async def menu(redis: Redis, sim: Simulator, config: AskqConfig) -> AskqConfig:
    """The demo's café menu, built through askq's own build (files, chunking, embeddings)."""
    menu_config = with_menu(config)
    assert Path(menu_config.root) == EXAMPLES.parent
    await build_base(redis, menu_config, "menu")
    return menu_config


async def test_every_labelled_question_finds_its_planted_chunk_in_the_top_4(
    redis: Redis, menu: AskqConfig
) -> None:
    """recall@4 = 1.0: for each question, a chunk holding its answer is among the 4 closest."""
    missed = []
    for question, phrase in LABELLED.items():
        _, found = await search_base(redis, menu, "menu", question, TOP_K)
        if not any(phrase in hit.chunk.text for hit in found):
            missed.append(f"{question!r}: {[hit.chunk.text[:60] for hit in found]}")
    assert not missed, "\n".join(missed)


async def test_a_question_from_outside_the_menu_scores_lower_than_any_labelled_one(
    redis: Redis, menu: AskqConfig
) -> None:
    """A question the menu cannot answer gets a best score under every labelled question's best."""
    labelled_best = []
    for question in LABELLED:
        _, found = await search_base(redis, menu, "menu", question, 1)
        labelled_best.append(found[0].score)
    _, outside = await search_base(redis, menu, "menu", "What is the capital of France?", 1)
    assert outside[0].score < min(labelled_best)
