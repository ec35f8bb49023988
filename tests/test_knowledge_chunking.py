"""Chunking a base's files: paragraph and sentence bounds kept, overlap between neighbours, the budget."""

from __future__ import annotations

import itertools
import re

import pytest

from worker.knowledge.chunking import FALLBACK_MODEL, chunk_text, splitter

MODEL = "text-embedding-3-small"
SENTENCES = " ".join(f"Sentence {i} is about the drinks of the day." for i in range(40))
MENU_MD = "# Coffee\n\n" + "\n\n".join(
    f"Paragraph {i}: the americano costs {i + 2},000 won and comes hot or iced." for i in range(8)
)
KOREAN = (
    "빽다방의 아메리카노는 2,000원입니다. 카페라떼는 따뜻한 것과 차가운 것이 있습니다. "
    "바닐라라떼는 3,500원이고 달콤합니다. 아메리카노 라지 사이즈는 3,000원입니다. "
    "딸기 스무디는 여름에만 팝니다. 모든 음료는 포장할 수 있습니다."
)


def _within_budget(path: str, pieces: list[str], tokens: int, overlap: int) -> None:
    """A chunk the same splitter would split no further is within its token budget."""
    kind = "markdown" if path.endswith(".md") else "text"
    again = splitter(kind, MODEL, tokens, overlap)
    for piece in pieces:
        assert again.chunks(piece) == [piece]


def test_markdown_chunks_are_whole_paragraphs_within_the_budget() -> None:
    """No paragraph of a Markdown file is cut: each chunk is a run of whole paragraphs, under budget."""
    pieces = chunk_text("menu.md", MENU_MD, model=MODEL, tokens=60, overlap=0)
    paragraphs = MENU_MD.split("\n\n")
    assert len(pieces) > 2
    for piece in pieces:
        assert all(part in paragraphs for part in piece.split("\n\n"))
    assert "\n\n".join(pieces) == MENU_MD
    _within_budget("menu.md", pieces, 60, 0)


def test_text_chunks_end_on_sentence_bounds() -> None:
    """A long paragraph of a .txt file is split between sentences, never inside one."""
    pieces = chunk_text("notes.txt", SENTENCES, model=MODEL, tokens=50, overlap=0)
    assert len(pieces) > 3
    for piece in pieces:
        assert re.fullmatch(r"(Sentence \d+ is about the drinks of the day\. ?)+", piece)
    assert " ".join(pieces) == SENTENCES
    _within_budget("notes.txt", pieces, 50, 0)


def test_neighbours_overlap_when_the_budget_allows() -> None:
    """With an overlap budget larger than a sentence, each chunk begins with the end of the one before."""
    pieces = chunk_text("notes.txt", SENTENCES, model=MODEL, tokens=60, overlap=25)
    assert len(pieces) > 3
    for before, after in itertools.pairwise(pieces):
        first_sentence = after.split(". ")[0] + "."
        assert before.endswith(first_sentence) or f"{first_sentence} " in before
    _within_budget("notes.txt", pieces, 60, 25)


def test_korean_is_split_on_sentence_bounds() -> None:
    """Hangul text is cut after a sentence's full stop, each chunk whole sentences within the budget."""
    pieces = chunk_text("menu.txt", KOREAN, model=MODEL, tokens=30, overlap=0)
    sentences = [sentence + "." for sentence in KOREAN.removesuffix(".").split(". ")]
    assert len(pieces) > 2
    for piece in pieces:
        assert all(part in sentences for part in re.split(r"(?<=\.) ", piece))
    assert " ".join(pieces) == KOREAN
    _within_budget("menu.txt", pieces, 30, 0)


def test_a_model_tiktoken_does_not_know_uses_the_fallback_tokenizer() -> None:
    """A local embedding model (nomic-embed-text) is chunked as text-embedding-3-small would be."""
    local = chunk_text("notes.txt", SENTENCES, model="nomic-embed-text", tokens=50, overlap=10)
    assert local == chunk_text("notes.txt", SENTENCES, model=FALLBACK_MODEL, tokens=50, overlap=10)


def test_splitters_are_cached_and_empty_text_has_no_chunks() -> None:
    """One splitter per kind, model and budget is built; a file of whitespace gives no chunk."""
    assert splitter("text", MODEL, 50, 10) is splitter("text", MODEL, 50, 10)
    assert splitter("text", MODEL, 50, 10) is not splitter("markdown", MODEL, 50, 10)
    assert chunk_text("empty.md", " \n\n\t\n", model=MODEL, tokens=50, overlap=0) == []


@pytest.mark.parametrize("path", ["a.md", "a.markdown", "A.MD"])
def test_markdown_suffixes_use_the_markdown_splitter(path: str) -> None:
    """A heading starts a chunk in Markdown files, whatever the suffix's case."""
    text = "# Tea\n\nGreen tea.\n\n# Coffee\n\n" + "Americano is hot. " * 20
    assert chunk_text(path, text, model=MODEL, tokens=40, overlap=0)[0] == "# Tea\n\nGreen tea."
