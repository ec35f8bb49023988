"""The prompt-token estimate never errs low on natural English and Korean, for an o200k_base model
and a cl100k_base one, against the real tokenizer (bench/tokenizer.py); the byte ceiling never
errs low on any text."""

from __future__ import annotations

from typing import Any

import pytest

from bench.estimate_corpus import english_questions, korean_questions, unbounded_texts
from bench.tokenizer import REFERENCE_MODELS, count_tokens, reference_prompt_tokens
from common.tokens import (
    estimate_tokens,
    non_ascii_quarters,
    prompt_tokens_ceiling,
    prompt_tokens_estimate,
)

MODELS = sorted(REFERENCE_MODELS)


def _question(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _low(texts: list[str], model: str, estimate: Any) -> list[tuple[int, int, str]]:
    """(estimate, reference, text) of each text whose estimate is below the real count."""
    found = []
    for text in texts:
        messages = _question(text)
        reference = reference_prompt_tokens(messages, model)
        if (counted := estimate(messages)) < reference:
            found.append((counted, reference, text[:80]))
    return found


@pytest.mark.parametrize(
    ("text", "o200k", "cl100k"),
    [
        ("The quick brown fox jumps over the lazy dog.", 10, 10),
        ("딸기라떼는 언제까지 판매하나요?", 13, 22),
        ("뇎", 3, 3),  # one grapheme: never cut by the splitter, counted after a separator
        ("😀", 1, 2),
        ("\n\n", 1, 1),
        ("def f(x):\n    return x * 2\n", 11, 11),
        (
            "아메리카노는 하우스 블렌드 원두로 만듭니다. "
            "따뜻한 아메리카노는 레귤러 2,000원, 라지 2,500원입니다.",
            48,
            63,
        ),
        ("Iced Americano: Regular 2,500 won, Large 3,000 won.", 19, 19),
        ("👍🏽🇰🇷", 7, 12),
        ("askq:batch:{id}:items", 8, 8),
    ],
)
def test_the_reference_counts_as_tiktoken_does(text: str, o200k: int, cl100k: int) -> None:
    """The reference counter gives tiktoken's counts (taken from tiktoken 0.14 with OpenAI's files)."""
    assert count_tokens(text, "gpt-4o") == o200k
    assert count_tokens(text, "gpt-4") == cl100k


def test_the_reference_frames_messages_as_openai_does() -> None:
    """A prompt is its texts, 3 tokens and the role a message, 1 and the name's for a name, 3 more."""
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi", "name": "kim"},
    ]
    texts = count_tokens("Answer briefly.", "gpt-4o") + count_tokens("Hi", "gpt-4o")
    assert reference_prompt_tokens(messages, "gpt-4o") == texts + (3 + 1) * 2 + (1 + 1) + 3


@pytest.mark.parametrize("model", MODELS)
def test_the_estimate_is_never_low_on_english_questions(model: str) -> None:
    """Every docs paragraph and English example, as a question of its own: estimate >= real count."""
    questions = english_questions()
    assert len(questions) > 300
    assert _low(questions, model, lambda messages: prompt_tokens_estimate(messages, model)) == []


@pytest.mark.parametrize("model", MODELS)
def test_the_estimate_is_never_low_on_korean_questions(model: str) -> None:
    """Every Korean line of the menu and docs, example question and test string: estimate >= real."""
    questions = korean_questions()
    assert len(questions) > 50
    assert _low(questions, model, lambda messages: prompt_tokens_estimate(messages, model)) == []


@pytest.mark.parametrize("model", MODELS)
def test_the_ceiling_is_never_low_on_any_text(model: str) -> None:
    """Random syllables, base64 and emoji, which the estimate cannot bound, stay under the ceiling."""
    texts = [text for group in unbounded_texts().values() for text in group]
    texts += english_questions()[:100] + korean_questions()
    assert _low(texts, model, prompt_tokens_ceiling) == []


@pytest.mark.parametrize("model", MODELS)
def test_random_syllables_are_what_the_estimate_cannot_bound(model: str) -> None:
    """Rare Hangul syllables take 2 to 3 tokens each: the estimate is low there, as documented."""
    syllables = unbounded_texts()["random Hangul"]
    assert _low(syllables, model, lambda messages: prompt_tokens_estimate(messages, model))


def test_the_estimate_is_capped_at_the_ceiling() -> None:
    """Short text, whose estimate with the slack would pass its bytes, is counted at its ceiling."""
    messages = _question("?")
    assert prompt_tokens_estimate(messages, "gpt-4") == prompt_tokens_ceiling(messages)
    many = [{"role": "user", "content": text} for text in ["가나다", "😀", "ok"]]
    assert prompt_tokens_estimate(many, "gpt-4") <= prompt_tokens_ceiling(many)


@pytest.mark.parametrize(
    ("model", "quarters"),
    [
        ("gpt-4o-mini", 5),
        ("gpt-4.1-nano", 5),
        ("gpt-5", 5),
        ("o4-mini", 5),
        ("openai/gpt-4o", 5),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", 5),
        ("gpt-4", 8),
        ("gpt-3.5-turbo", 8),
        ("gemma-3-270m", 8),
        ("", 8),
    ],
)
def test_a_character_outside_ascii_weighs_by_the_models_tokenizer(model: str, quarters: int) -> None:
    """o200k models count 1.25 a non-ASCII character, every other model (unknown ones too) 2."""
    assert non_ascii_quarters(model) == quarters


def test_names_and_text_parts_count() -> None:
    """A message's name adds to the estimate and the ceiling; text parts count as its content."""
    plain = prompt_tokens_estimate(_question("What is on the menu?"), "gpt-4o")
    named = [{"role": "user", "content": "What is on the menu?", "name": "customer"}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is on the menu?"}]}]
    assert prompt_tokens_estimate(named, "gpt-4o") > plain
    assert prompt_tokens_ceiling(named) > prompt_tokens_ceiling(_question("What is on the menu?"))
    assert prompt_tokens_estimate(parts, "gpt-4o") == plain


def test_the_checks_estimate_is_unchanged() -> None:
    """estimate_tokens, which the context and chunk checks use, still counts the fox sentence 13."""
    assert estimate_tokens("The quick brown fox jumps over the lazy dog.") == 13
