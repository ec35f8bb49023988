"""The reference tokenizer the prompt estimate is measured against: exact counts of OpenAI's
o200k_base (GPT-4o, GPT-4.1, GPT-5, o-series) and cl100k_base (GPT-4, GPT-3.5), offline.

Nothing can be downloaded at run time, and tiktoken fetches its tables on first use. The compiled
part of semantic-text-splitter, already a dependency (knowledge chunks), embeds tiktoken's tables
(tiktoken-rs) but offers no count: only chunks whose tokens fit a capacity. A text of tokens N fits
one chunk of capacity N and not of N - 1 (a smaller capacity cuts it), so the least capacity giving
one chunk is its count, found by binary search. A chunk of one grapheme is never cut, so a text
with a count of 1 is counted again after a separator that is a token of its own.

Checked against tiktoken 0.14 reading OpenAI's own encoding files (their SHA-256 as tiktoken
expects), 159,403 texts an encoding: the corpora of bench/estimate_corpus.py with the system's
65,105 translation strings, every BMP character, 20,000 astral ones, and 10,000 random mixes of
Hangul, emoji, combining marks and whitespace. Equal on all but 6 texts an encoding, each ending in
whitespace after a line break ("이름으로 되돌리는 중\n \n"), where this counts 1 more; never fewer
(docs/performance.md#the-prompt-token-estimate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from semantic_text_splitter import TextSplitter

from common.tokens import message_text

REFERENCE_MODELS = {"gpt-4o": "o200k_base", "gpt-4": "cl100k_base"}
"""A model of each encoding, as semantic-text-splitter names them."""
MESSAGE_TOKENS = 3
"""OpenAI's chat format: each message adds 3 tokens and its role's, a name 1 more."""
REPLY_TOKENS = 3
"""...and every prompt 3, for the reply's priming."""


@lru_cache(maxsize=4096)
def _splitter(model: str, capacity: int) -> TextSplitter:
    return TextSplitter.from_tiktoken_model(model, capacity, trim=False)


def _least_fitting_capacity(model: str, text: str) -> int:
    low, high = 1, max(1, len(text.encode()))  # a token is at least a byte
    while low < high:
        middle = (low + high) // 2
        if len(_splitter(model, middle).chunks(text)) <= 1:
            high = middle
        else:
            low = middle + 1
    return low


def count_tokens(text: str, model: str) -> int:
    """``text``'s tokens in ``model``'s encoding, no special tokens (tiktoken's ``encode_ordinary``)."""
    if not text:
        return 0
    tokens = _least_fitting_capacity(model, text)
    if tokens > 1:
        return tokens
    # One grapheme (or one token): it is never cut, so count it after a token of its own. A line
    # break stands alone before anything but whitespace, a letter before whitespace.
    separator = "a" if text[0].isspace() else "\n"
    return _least_fitting_capacity(model, separator + text) - 1


def reference_prompt_tokens(messages: Iterable[Mapping[str, Any]], model: str) -> int:
    """The prompt tokens OpenAI charges ``model`` for ``messages`` (OpenAI's cookbook count)."""
    total = REPLY_TOKENS
    for message in messages:
        total += MESSAGE_TOKENS + count_tokens(str(message.get("role", "")), model)
        total += count_tokens(message_text(message), model)
        if name := message.get("name"):
            total += 1 + count_tokens(str(name), model)
    return total
