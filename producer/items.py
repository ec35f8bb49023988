"""One question from a file: parsed from a plain object or an OpenAI Batch API request line."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from common.payload import IGNORED_PARAMS, PASSED_PARAMS, ChatMessage

MAX_ID_CHARS = 200
MAX_DEPTH = 64
"""Levels of nesting a line's values may have: well inside what the job's JSON writer (orjson, 254)
and the worker take, and far beyond any real response_format schema."""
CHAT_COMPLETIONS_URL = "/v1/chat/completions"
_MESSAGES = TypeAdapter(tuple[ChatMessage, ...])
_SIMPLE_KEYS = frozenset({"id", "question"})
_PLAIN_KEYS = ("id", "question", "model", "system")
PLAIN_KEYS = frozenset(_PLAIN_KEYS) | PASSED_PARAMS
_READ_KEYS = ", ".join([*_PLAIN_KEYS, *sorted(PASSED_PARAMS)])
_BATCH_KEYS = ("custom_id", "method", "url", "body")
# Ids end up in terminals and file names: no control characters (C0, DEL, C1), one line.
_BAD_ID_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f]|[^\S ]")


def shortened(key: str, most: int = 40) -> str:
    """A key from a file, cut short for a message: a line may hold a key of any length."""
    return key if len(key) <= most else key[: most - 1] + "…"


class ItemProblem(ValueError):
    """What is wrong with one line; the reader adds the file and line."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and submit builds two
# of these per line (the check, then the enqueue): 2.0 us each against 0.4 us with slots.
@dataclass(slots=True)
class QuestionItem:
    line: int
    item_id: str
    question: str
    messages: tuple[ChatMessage, ...] | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    custom_id: str | None = None


def check_question(value: Any, what: str = "question") -> str:
    if not isinstance(value, str):
        raise ItemProblem(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ItemProblem(f"{what} is empty")
    return value


def check_id(value: Any, what: str = "id") -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ItemProblem(f"{what} must be a string or an integer, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ItemProblem(f"{what} is empty")
    if len(text) > MAX_ID_CHARS:
        raise ItemProblem(f"{what} must be at most {MAX_ID_CHARS} characters on one line")
    bad = _BAD_ID_CHAR.search(text)
    if bad is not None:
        code = ord(bad.group())
        if code < 0x20 or 0x7F <= code <= 0x9F:
            raise ItemProblem(f"{what} must not hold control characters (U+{code:04X})")
        # Spreadsheets export no-break and ideographic spaces; name the character, not the length.
        name = unicodedata.name(bad.group(), "a space").lower()
        raise ItemProblem(f"{what} holds U+{code:04X} ({name}); use plain spaces, on one line")
    return text


def item_from_object(obj: Any, line: int, *, batch_only: bool = False) -> QuestionItem:
    if not isinstance(obj, dict):
        raise ItemProblem(f"expected a JSON object, got {type(obj).__name__}")
    if "custom_id" in obj or "body" in obj:
        return _from_batch_request(obj, line)
    if batch_only:
        raise ItemProblem('expected an OpenAI Batch API line with "custom_id" and "body"')
    if "question" not in obj:
        raise ItemProblem('missing "question" (or an OpenAI Batch API line with "custom_id" and "body")')
    item_id = check_id(obj["id"]) if obj.get("id") is not None else str(line)
    question = check_question(obj["question"])
    if obj.keys() <= _SIMPLE_KEYS:  # the common line: nothing more to read
        return QuestionItem(line=line, item_id=item_id, question=question)
    return _with_request(obj, QuestionItem(line=line, item_id=item_id, question=question))


def _with_request(obj: dict[str, Any], item: QuestionItem) -> QuestionItem:
    """A plain line's own model, system prompt and request parameters, as a Batch API line has them."""
    unknown = [key for key in obj if key not in PLAIN_KEYS]
    if unknown:
        raise ItemProblem(f"unknown key {shortened(unknown[0])!r} (askq reads: {_READ_KEYS})")
    item.model = _model(obj.get("model"), "model")
    if obj.get("system") is not None:
        system = check_question(obj["system"], "system")
        item.messages = (
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=item.question),
        )
    item.params = {key: value for key, value in obj.items() if key in PASSED_PARAMS}
    check_depth(item.params)
    return item


def _model(value: Any, what: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ItemProblem(f"{what} must be a non-empty string")
    return value


def check_depth(values: dict[str, Any], where: str = "") -> None:
    """Refuse values nested deeper than MAX_DEPTH, naming the key that holds them."""
    for key, value in values.items():
        if _too_deep(value, 1):
            raise ItemProblem(f"nested too deeply (more than {MAX_DEPTH} levels, in {where}{shortened(key)})")


def _too_deep(value: Any, depth: int) -> bool:
    if not isinstance(value, dict | list):
        return False
    if depth > MAX_DEPTH:
        return True
    inner = value.values() if isinstance(value, dict) else value
    return any(_too_deep(item, depth + 1) for item in inner)


def _from_batch_request(obj: dict[str, Any], line: int) -> QuestionItem:
    unknown = [key for key in obj if key not in _BATCH_KEYS]
    if unknown:
        raise ItemProblem(
            f"unknown key {shortened(unknown[0])!r} (an OpenAI Batch API line has: {', '.join(_BATCH_KEYS)})"
        )
    custom_id = check_id(obj.get("custom_id"), "custom_id") if "custom_id" in obj else None
    if custom_id is None:
        raise ItemProblem('an OpenAI Batch API line needs "custom_id"')
    method = obj.get("method", "POST")
    if method != "POST":
        raise ItemProblem(f'method must be "POST", got {method!r}')
    url = obj.get("url", CHAT_COMPLETIONS_URL)
    if url != CHAT_COMPLETIONS_URL:
        raise ItemProblem(f'url must be "{CHAT_COMPLETIONS_URL}", got {url!r}')
    body = obj.get("body")
    if not isinstance(body, dict):
        raise ItemProblem('"body" must be an object with "messages"')
    check_depth(body, "body.")
    messages = _messages(body.get("messages"))
    unknown = sorted(set(body) - PASSED_PARAMS - IGNORED_PARAMS - {"messages", "model"})
    if unknown:
        raise ItemProblem(
            f"body.{shortened(unknown[0])} is not supported (askq passes: {', '.join(sorted(PASSED_PARAMS))})"
        )
    if body.get("n", 1) != 1:
        raise ItemProblem("body.n must be 1: askq records one answer per question")
    params = {key: value for key, value in body.items() if key in PASSED_PARAMS}
    users = [message for message in messages if message.role == "user"]
    if not users:
        raise ItemProblem("body.messages has no user message")
    question = check_question(users[-1].text(), "the last user message")
    return QuestionItem(
        line=line,
        item_id=custom_id,
        question=question,
        messages=messages,
        model=_model(body.get("model"), "body.model"),
        params=params,
        custom_id=custom_id,
    )


def _messages(raw: Any) -> tuple[ChatMessage, ...]:
    if not isinstance(raw, list) or not raw:
        raise ItemProblem("body.messages must be a non-empty list")
    try:
        return _MESSAGES.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ItemProblem(f"body.messages.{where}: {first['msg']}") from None
