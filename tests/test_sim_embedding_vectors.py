"""What the simulator's embedding vectors mean: deterministic across processes, close for texts that share
words (plurals, Korean particles), near-orthogonal otherwise, so retrieval over them is real retrieval."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import openai
import pytest
import pytest_asyncio

from simulator import SimulatorSettings, start_simulator
from simulator.answers import make_answer
from tests.conftest import Simulator

# A café's knowledge base, and for each entry a question that paraphrases it.
PLANTED = [
    "An americano costs 4,500 won, and an iced americano is 5,000 won.",
    "Lattes come in three sizes: small (8 oz), regular (12 oz) and large (16 oz).",
    "아메리카노 가격은 4,500원이고 아이스 아메리카노는 5,000원입니다.",
    "딸기 라떼는 봄 시즌 한정 메뉴로, 생딸기를 갈아서 만듭니다.",
    "Opening hours: 7 am to 10 pm on weekdays, 9 am to 6 pm on weekends.",
    "The wifi password is latte-art-2024; it is printed on your receipt.",
]
QUESTIONS = [
    "How much is an iced americano?",
    "What sizes does the latte come in?",
    "아이스 아메리카노는 얼마예요?",
    "딸기라떼 아직 팔아요?",
    "What are your opening hours at the weekend?",
    "What's the password for the wifi?",
]


@pytest_asyncio.fixture
async def client(sim: Simulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="x", max_retries=0) as oai:
        yield oai


async def vectors(client: openai.AsyncOpenAI, texts: list[str], dimensions: int | None = None) -> np.ndarray:
    result = await client.embeddings.create(
        model="text-embedding-3-small",
        input=texts,
        dimensions=dimensions if dimensions is not None else openai.omit,
    )
    return np.asarray([item.embedding for item in result.data], dtype=np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


async def test_each_question_finds_its_planted_sentence(client: openai.AsyncOpenAI) -> None:
    """By cosine, each English and Korean question's nearest café sentence is the one it paraphrases."""
    documents = await vectors(client, PLANTED)
    questions = await vectors(client, QUESTIONS)
    nearest = (questions @ documents.T).argmax(axis=1)
    assert nearest.tolist() == list(range(len(PLANTED)))


async def test_vectors_are_unit_length(client: openai.AsyncOpenAI) -> None:
    """Every vector is L2-normalised, so a dot product is the cosine."""
    norms = np.linalg.norm(await vectors(client, PLANTED + QUESTIONS), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)


async def test_same_text_same_vector_across_calls_and_processes(
    sim: Simulator, client: openai.AsyncOpenAI
) -> None:
    """A text's vector is the same on every call and from another simulator process."""
    first = await vectors(client, PLANTED)
    again = await vectors(client, list(reversed(PLANTED)))
    assert np.array_equal(first, again[::-1])
    async with (
        await start_simulator(SimulatorSettings()) as other,
        openai.AsyncOpenAI(base_url=other.base_url, api_key="x", max_retries=0) as there,
    ):
        assert np.array_equal(first, await vectors(there, PLANTED))


async def test_unrelated_texts_are_near_orthogonal(client: openai.AsyncOpenAI) -> None:
    """Texts without a word in common have cosines near 0; sharing words raises it well above."""
    price, hours, wifi = await vectors(client, [PLANTED[0], PLANTED[4], PLANTED[5]])
    assert abs(cosine(price, hours)) < 0.15
    assert abs(cosine(hours, wifi)) < 0.15
    question = (await vectors(client, [QUESTIONS[0]]))[0]
    assert cosine(question, price) > 0.4


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Two lattes please", "two latte please"),
        ("THE Latte", "latte"),
        ("아메리카노는", "아메리카노"),
        ("딸기라떼", "딸기 라떼"),
    ],
)
async def test_plurals_case_and_korean_particles_stay_close(
    client: openai.AsyncOpenAI, one: str, other: str
) -> None:
    """A plural s, letter case, stop-words, a Korean particle or a space inside a Korean word move little."""
    a, b = await vectors(client, [one, other])
    assert cosine(a, b) > 0.5


async def test_texts_without_words_share_one_fixed_unit_vector(client: openai.AsyncOpenAI) -> None:
    """Punctuation or only stop-words give the same fixed unit vector, unlike any worded text."""
    empty, stops, worded = await vectors(client, ["?!", "What is the", "latte"])
    assert np.array_equal(empty, stops)
    assert np.linalg.norm(empty) == pytest.approx(1.0, abs=1e-5)
    assert not np.array_equal(empty, worded)


async def test_digits_are_words(client: openai.AsyncOpenAI) -> None:
    """Numbers count as words: texts differing only in a number differ, and share it when equal."""
    a, b, c = await vectors(client, ["room 101", "room 102", "101"])
    assert not np.array_equal(a, b)
    assert cosine(a, c) > 0.5


async def test_small_dimensions_keep_retrieval(client: openai.AsyncOpenAI) -> None:
    """At 256 dimensions each question still finds its planted sentence."""
    documents = await vectors(client, PLANTED, dimensions=256)
    questions = await vectors(client, QUESTIONS, dimensions=256)
    assert (questions @ documents.T).argmax(axis=1).tolist() == list(range(len(PLANTED)))


def test_an_answer_to_a_prompt_with_numbered_sources_quotes_the_closest_sentence() -> None:
    """A system prompt with [n] sources is answered by quoting its sentence closest to the question."""
    system = (
        "Use only the menu.\n[1] kb/coffee.md (chunk 0)\nHot Americano: Regular 2,000 won. "
        "Iced Americano: Large 3,000 won.\n\n[2] kb/store.md (chunk 1)\n"
        "주말은 오전 9시부터 오후 9시까지입니다."
    )
    english = make_answer(
        "m",
        [{"role": "system", "content": system}, {"role": "user", "content": "Large iced americano?"}],
        40,
        None,
    )
    korean = make_answer(
        "m", [{"role": "system", "content": system}, {"role": "user", "content": "주말 영업시간?"}], 40, None
    )
    plain = make_answer(
        "m",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Large iced americano?"}],
        40,
        None,
    )
    assert "".join(english.tokens) == "According to the sources: Iced Americano: Large 3,000 won."
    assert "".join(korean.tokens) == "자료에 따르면: 주말은 오전 9시부터 오후 9시까지입니다."
    assert "".join(plain.tokens).startswith('Simulated answer to "Large iced americano?"')
