"""A token estimate that errs high, for checks that cannot run the model's tokenizer.

askq has no tokenizer (none is among its dependencies, and tiktoken fetches its tables at run time),
so it counts by character class, each class at the most tokens it usually takes:

- a run of ASCII letters: one token per 4 letters, rounded up (a common English word is one token,
  a rare or made-up one a few pieces);
- each digit one token (Gemma and Llama split numbers into digits; GPT-4o's groups of three take fewer);
- each other character one token: punctuation, and every non-ASCII letter (Hangul, CJK, accented
  letters, each usually one token or part of one); a character beyond the Basic Multilingual Plane
  (most emoji) two;
- whitespace free when it is one space (it joins the next word's token), else one token a run.

On English prose this counts about a third more than GPT-4o's tokenizer (hand counts of sample
sentences: "The quick brown fox jumps over the lazy dog." is 10 tokens, 13 here). Text of random
letters (base64, hashes) can take more than it says; a cl100k-era model can take two tokens a Hangul
syllable. The old estimate, 4 bytes of UTF-8 a token, let a 12,437-token prompt of numbers, code and
Korean (about 16 KB) through against a 4,096-token context.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from common.usage import Usage

_LETTER_RUNS = re.compile(r"[A-Za-z]+")
_WHITESPACE_RUNS = re.compile(r"\s+")
LETTERS_PER_TOKEN = 4
BYTES_PER_TOKEN = 4
"""For text known only by its size in bytes (what a lost run received): about right for English,
low for multi-byte scripts. Spend estimates use it; checks use ``estimate_tokens``."""
MESSAGE_TOKENS = 4
"""What each chat message adds around its text (role and separators), as chat templates do."""


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` takes at most, as a rule: see the module's doc. At most 2 a character."""
    letters = _LETTER_RUNS.findall(text)
    letter_chars = sum(map(len, letters))
    letter_tokens = sum((len(run) + LETTERS_PER_TOKEN - 1) // LETTERS_PER_TOKEN for run in letters)
    spaces = _WHITESPACE_RUNS.findall(text)
    space_chars = sum(map(len, spaces))
    space_tokens = sum(1 for run in spaces if run != " ")
    # A character beyond the BMP is two UTF-16 units: the count of surrogates, without a loop.
    astral = len(text.encode("utf-16-le")) // 2 - len(text) if not text.isascii() else 0
    return letter_tokens + space_tokens + (len(text) - letter_chars - space_chars) + astral


def message_text(message: Mapping[str, Any]) -> str:
    """A chat message's text: its content, or its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def estimate_prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    return sum(estimate_tokens(message_text(message)) + MESSAGE_TOKENS for message in messages)


def estimated_usage(messages: Iterable[Mapping[str, Any]], answer: str) -> Usage:
    """A call's usage when the provider reported none, marked ``estimated``: never zero for a call
    that was made and answered."""
    prompt = estimate_prompt_tokens(messages)
    completion = estimate_tokens(answer)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion, estimated=True
    )


INSTRUCTION_TOKENS = 60
"""Room for the instruction line each summary call adds before its input."""


class BudgetError(ValueError):
    """A context too small for a schedule's prompt and output."""


@dataclass(frozen=True)
class Budget:
    input_tokens: int
    """Input per call, after the prompt and the instruction."""
    output_tokens: int
    """``max_tokens`` of each call."""


def call_budget(context_tokens: int, max_tokens: int, prompt: str) -> Budget:
    output = min(max_tokens, context_tokens // 4)
    room = context_tokens - output - estimate_tokens(prompt) - INSTRUCTION_TOKENS
    if room < 2 * output:
        raise BudgetError(
            f"context_tokens {context_tokens} leaves {max(room, 0)} tokens of input per call after the "
            f"prompt and {output} tokens of output; at least {2 * output} are needed: raise context_tokens "
            "or shorten the prompt"
        )
    return Budget(input_tokens=room, output_tokens=output)
