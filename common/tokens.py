"""Token estimates that err high, for what cannot run the model's tokenizer.

askq has no tokenizer (none is among its dependencies, and tiktoken fetches its tables at run time),
so it counts by character class, each class at the most tokens it usually takes.

``estimate_tokens``, for checks (a question against the context, a chunk against its budget):

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

``prompt_tokens_estimate``, for what a request will be charged (a tokens-per-minute reservation):
the same classes with capitals apart, a weight for characters outside ASCII by the model's tokenizer,
and OpenAI's frame of each message with a slack; measured per question against the real tokenizers
of o200k_base and cl100k_base models, on natural English and Korean never low
(docs/performance.md#the-prompt-token-estimate). ``prompt_tokens_ceiling``: what the prompt cannot
exceed whatever its text, by its bytes (a budget's reservation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
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
"""What each chat message adds around its text (role and separators), as chat templates do: in
OpenAI's format 3, and its role's one token."""
MESSAGE_FRAME_TOKENS = 3
"""OpenAI's frame of a message without its role, for the ceiling, which counts the role's bytes."""


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


PROMPT_FRAME_TOKENS = 3
"""What a prompt adds once, after its messages: the reply's priming (OpenAI's chat format)."""
MESSAGE_SLACK_TOKENS = 4
"""Added to each message's estimate for the spread of short texts: a short line of rare names or
syllables ("Azerbaijani (Cyrillic)", "노퍽 섬") takes a few tokens more than its classes say, where a
long text makes up for it by the common words it overcounts. 4 is the most any text lacked among
65,105 strings of the system's Korean translations and their English originals, for o200k_base and
cl100k_base alike (docs/performance.md#the-prompt-token-estimate)."""
O200K_MODELS = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4")
"""Model names (their start) whose tokenizer is o200k_base: about 0.65 tokens a Hangul syllable on
natural text, where cl100k_base (GPT-4, GPT-3.5) takes about 1.1 and up to 3 for a rare one."""
_SHAPES = bytes.maketrans(
    bytes(range(ord("a"), ord("z") + 1)) + bytes(range(ord("A"), ord("Z") + 1)) + b"\r\n \t\f\v",
    b"a" * 26 + b"A" * 26 + b"nnsttt",
)
"""Each byte to its class: a lower-case letter, A capital, n line break, s space, t tab; a digit, a
mark or a control character stays itself."""
_NOT_MARKS = bytes(range(ord("a"), ord("z") + 1)) + bytes(range(ord("A"), ord("Z") + 1)) + b"\r\n \t\f\v"
"""What ``bytes.translate`` drops to leave the digits, marks and control characters, one token each."""


def non_ascii_quarters(model: str) -> int:
    """Tokens a character outside ASCII counts for ``model``, in quarters: 5 (1.25) for an o200k
    model, 8 (2) for the others (cl100k-era and local models, unknown tokenizers). Beyond what the
    other classes overcount, Korean of 40 syllables or more took at most 1.02 tokens a character in
    o200k_base and 1.45 in cl100k_base (1.27 and 2.09 from 10 syllables; the slack covers shorter)."""
    # "openai/gpt-4o" as routers name it, "ft:gpt-4o-mini:org::id" a fine-tuned one
    name = model.rsplit("/", 1)[-1].lower().removeprefix("ft:")
    return 5 if name.startswith(O200K_MODELS) else 8


def text_tokens_estimate(text: str, quarters: int) -> int:
    """``text``'s tokens by character class, for a prompt's reservation: lower-case letters 4 a token
    and capitals 2, each run rounded up (an acronym splits more: "LLM" is 2 tokens); each digit and
    mark one (GPT's tokenizers group up to 3 digits, Llama's and Gemma's take them apart); a single
    space nothing (it joins the next word's token), other whitespace about one a run; a character
    outside ASCII ``quarters``/4, one more beyond the BMP (an emoji).

    Counted by C passes over the text's classes (translate, count, replace), no Python per word or
    regex match: a 3 KB prompt takes a few passes of 3 KB, not 800 matches."""
    data = text.encode("ascii", "replace")  # a character outside ASCII is a "?": one mark
    marks = len(data.translate(None, _NOT_MARKS))
    shape = data.translate(_SHAPES)
    # A run of n lower-case letters is n // 4 fours and a rest of 0 to 3: count the fours, drop them,
    # and each rest left is one run of "a", "aa" or "aaa".
    rests = shape.replace(b"aaaa", b"")
    lower = shape.count(b"aaaa") + rests.count(b"a") - rests.count(b"aa") - rests.count(b"aaa")
    capitals = shape.count(b"A") - shape.count(b"AA")  # n - n // 2 a run: 2 a token, rounded up
    breaks = shape.count(b"n") - shape.count(b"nn")
    spaces = shape.count(b"ss") - shape.count(b"ssss") + shape.count(b"t")
    tokens = marks + lower + capitals + breaks + spaces
    if text.isascii():
        return tokens
    non_ascii = data.count(b"?") - text.count("?")
    astral = len(text.encode("utf-16-le")) // 2 - len(text)
    return tokens + -(-non_ascii * (quarters - 4) // 4) + astral


def _name_tokens(message: Mapping[str, Any], quarters: int) -> int:
    """A message's name, which OpenAI counts with one token more; none has none."""
    name = message.get("name")
    return text_tokens_estimate(str(name), quarters) + 1 if name else 0


def prompt_tokens_estimate(messages: Sequence[Mapping[str, Any]], model: str) -> int:
    """The prompt tokens ``model`` will be charged for ``messages``, erring high on natural English
    and Korean (measured per question against o200k_base and cl100k_base, docs/performance.md): what
    a tokens-per-minute pace reserves. Never above ``prompt_tokens_ceiling``."""
    quarters = non_ascii_quarters(model)
    estimate = sum(
        MESSAGE_TOKENS
        + MESSAGE_SLACK_TOKENS
        + text_tokens_estimate(message_text(message), quarters)
        + _name_tokens(message, quarters)
        for message in messages
    )
    return min(estimate + PROMPT_FRAME_TOKENS, prompt_tokens_ceiling(messages))


def prompt_tokens_ceiling(messages: Sequence[Mapping[str, Any]]) -> int:
    """Tokens ``messages`` cannot exceed on a byte-level BPE tokenizer (GPT's, Llama 3's, Qwen's),
    whatever the text: a token is at least one byte of UTF-8, so its bytes bound its tokens; plus
    OpenAI's frame of each message (3, its role, 1 for a name) and the prompt's. What a budget
    reserves: its cap is a promise."""
    total = PROMPT_FRAME_TOKENS
    for message in messages:
        name = message.get("name")
        strings = (str(message.get("role", "")), message_text(message), str(name) if name else "")
        total += MESSAGE_FRAME_TOKENS + (1 if name else 0) + sum(len(text.encode()) for text in strings)
    return total


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
