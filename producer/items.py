"""One question from a file: parsed from a plain object or an OpenAI Batch API request line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from common.payload import IGNORED_PARAMS, PASSED_PARAMS, ChatMessage

MAX_ID_CHARS = 200
CHAT_COMPLETIONS_URL = "/v1/chat/completions"
_MESSAGES = TypeAdapter(tuple[ChatMessage, ...])


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
    if len(text) > MAX_ID_CHARS or any(ch.isspace() and ch != " " for ch in text):
        raise ItemProblem(f"{what} must be at most {MAX_ID_CHARS} characters on one line")
    return text


def item_from_object(obj: Any, line: int) -> QuestionItem:
    if not isinstance(obj, dict):
        raise ItemProblem(f"expected a JSON object, got {type(obj).__name__}")
    if "custom_id" in obj or "body" in obj:
        return _from_batch_request(obj, line)
    if "question" not in obj:
        raise ItemProblem('missing "question" (or an OpenAI Batch API line with "custom_id" and "body")')
    item_id = check_id(obj["id"]) if obj.get("id") is not None else str(line)
    return QuestionItem(line=line, item_id=item_id, question=check_question(obj["question"]))


def _from_batch_request(obj: dict[str, Any], line: int) -> QuestionItem:
    custom_id = check_id(obj.get("custom_id"), "custom_id") if "custom_id" in obj else None
    if custom_id is None:
        raise ItemProblem('an OpenAI Batch API line needs "custom_id"')
    url = obj.get("url", CHAT_COMPLETIONS_URL)
    if url != CHAT_COMPLETIONS_URL:
        raise ItemProblem(f'url must be "{CHAT_COMPLETIONS_URL}", got {url!r}')
    body = obj.get("body")
    if not isinstance(body, dict):
        raise ItemProblem('"body" must be an object with "messages"')
    messages = _messages(body.get("messages"))
    unknown = set(body) - PASSED_PARAMS - IGNORED_PARAMS - {"messages", "model"}
    if unknown:
        raise ItemProblem(
            f"body.{sorted(unknown)[0]} is not supported (askq passes: {', '.join(sorted(PASSED_PARAMS))})"
        )
    if body.get("n", 1) != 1:
        raise ItemProblem("body.n must be 1: askq records one answer per question")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ItemProblem("body.model must be a non-empty string")
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
        model=model,
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
