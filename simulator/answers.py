"""Deterministic answer text: a pure function of (model, messages), stable across processes."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .vectors import features

QUESTION_PREVIEW_CHARS = 60

# Prose strings keep the word lists compact under the formatter; split once at import.
_ENGLISH_WORDS = """the system returns a measured result after careful analysis of input data which shows that
latency depends on batch size and network conditions while throughput scales with workers in practice queue
retries handle transient errors gracefully so each job completes"""
_KOREAN_WORDS = """시스템은 요청을 처리하고 결과를 반환합니다 그리고 지연 시간은
작업 크기에 따라 달라집니다 네트워크 상태와 처리량은 작업자 수에 비례하며 재시도는
일시적인 오류를 안정적으로 해결합니다 따라서 모든 질문은 결국 완료됩니다"""
_ENGLISH_FILLER = tuple(_ENGLISH_WORDS.split())
_KOREAN_FILLER = tuple(_KOREAN_WORDS.split())
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
_WHITESPACE = re.compile(r"\s+")
_WORD_WITH_LEAD = re.compile(r"\s*\S+")
_SOURCE_LABEL = re.compile(r"^\[\d+\] .*$", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def message_text(message: Mapping[str, Any]) -> str:
    """Text of a message whose content is a string, a list of parts, or null."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The request key: content of the last user message ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Rough OpenAI-like count: four characters per token, at least one."""
    return max(1, sum(len(message_text(m)) for m in messages) // 4)


def answer_tokens(model: str, messages: Sequence[Mapping[str, Any]], count: int) -> list[str]:
    """`count` tokens (words with their leading space); the first token has no leading space. A system
    prompt with numbered sources gets the answer that quotes them (``grounded_lead_in``)."""
    question = last_user_text(messages)
    korean = _HANGUL.search(question) is not None
    grounded = grounded_lead_in(messages, question, korean)
    if grounded is not None:
        words = grounded[:count]  # the quote is the answer: no filler after it
        return [words[0], *(" " + word for word in words[1:])]
    words = _lead_in_words(question, korean)[:count]
    rng = random.Random(_digest(model, messages))
    filler = _KOREAN_FILLER if korean else _ENGLISH_FILLER
    words.extend(rng.choices(filler, k=count - len(words)))
    return [words[0], *(" " + word for word in words[1:])]


def echo_tokens(text: str) -> list[str]:
    """``text`` cut before each run of non-space, so that joining the tokens gives it back exactly and
    control sequences in it may arrive split across chunks, as a provider's would."""
    tokens = _WORD_WITH_LEAD.findall(text)
    rest = text[len("".join(tokens)) :]
    if not tokens:
        return [rest]
    tokens[-1] += rest
    return tokens


def grounded_lead_in(messages: Sequence[Mapping[str, Any]], question: str, korean: bool) -> list[str] | None:
    """The source sentence sharing most words with the question, quoted (the whole answer), when the
    system prompt carries numbered sources (``[1] file``, as askq's knowledge prompts do): the demo
    and the tests can see retrieval at work in the answer itself. None without sources."""
    system = "\n".join(message_text(m) for m in messages if m.get("role") in ("system", "developer"))
    first = _SOURCE_LABEL.search(system)
    if first is None:
        return None
    asked = features(question)
    best, best_overlap = "", 0
    for sentence in _SENTENCE_END.split(system[first.start() :]):
        sentence = _WHITESPACE.sub(" ", sentence).strip()
        if not sentence or _SOURCE_LABEL.match(sentence):
            continue
        overlap = sum((features(sentence) & asked).values())
        if overlap > best_overlap:
            best, best_overlap = sentence, overlap
    if not best:
        return None
    lead = "자료에 따르면:" if korean else "According to the sources:"
    return f"{lead} {best}".split(" ")


def _lead_in_words(question: str, korean: bool) -> list[str]:
    preview = _WHITESPACE.sub(" ", question).strip()[:QUESTION_PREVIEW_CHARS].strip()
    sentence = f'"{preview}"에 대한 시뮬레이션 답변입니다:' if korean else f'Simulated answer to "{preview}":'
    return sentence.split(" ")


def _digest(model: str, messages: Sequence[Mapping[str, Any]]) -> int:
    # sort_keys + fixed separators make the hash independent of client key order and spacing.
    canonical = json.dumps([model, list(messages)], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:16], "big")


@dataclass(frozen=True, slots=True)
class Answer:
    tokens: list[str]
    finish_reason: str  # "length" when max_tokens cut the answer short
    prompt_tokens: int


def make_answer(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    count: int,
    max_tokens: int | None,
    *,
    echo: str | None = None,
) -> Answer:
    """``echo``, when given, is the whole answer, byte for byte (``[sim:echo]``), in place of the words."""
    tokens = answer_tokens(model, messages, count) if echo is None else echo_tokens(echo)
    truncated = max_tokens is not None and max_tokens < len(tokens)
    return Answer(
        tokens[:max_tokens] if truncated else tokens,
        "length" if truncated else "stop",
        prompt_tokens(messages),
    )
