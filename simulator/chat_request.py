"""Validation of a chat-completions request body into a typed `ChatRequest`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .answers import last_user_text, message_text


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    key: str  # content of the last user message: the unit that attempts and directives count against
    temperature: float | None = None

    def recorded(self, answer: str) -> dict[str, Any]:
        """What ``record_requests`` keeps of an answered request: what the client asked, and the answer."""
        system = [message_text(m) for m in self.messages if m.get("role") in ("system", "developer")]
        return {
            "user": self.key,
            "answer": answer,
            "model": self.model,
            "system": "\n".join(system),
            "temperature": self.temperature,
        }


class RequestError(ValueError):
    """The body breaks the API contract; rendered as a 400 with `param` and `code`."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def parse_chat_request(body: object) -> ChatRequest:
    if not isinstance(body, dict):
        raise RequestError("We could not parse the JSON body of your request: expected a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter", "model", "missing_required_parameter")
    messages = _messages(body)
    stream = _optional_bool(body, "stream")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=_include_usage(body, stream),
        max_tokens=_max_tokens(body),
        key=last_user_text(messages),
        temperature=_temperature(body),
    )


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise RequestError(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise RequestError("Invalid type for 'messages': expected an array.", "messages", "invalid_type")
    if not messages:
        raise RequestError(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "messages",
            "empty_array",
        )
    for index, message in enumerate(messages):
        _check_message(index, message)
    return messages


def _check_message(index: int, message: object) -> None:
    param = f"messages[{index}]"
    if not isinstance(message, dict):
        raise RequestError(f"Invalid type for '{param}': expected an object.", param, "invalid_type")
    if not isinstance(message.get("role"), str):
        raise RequestError(
            f"Missing required parameter: '{param}.role'.", f"{param}.role", "missing_required_parameter"
        )
    content = message.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise RequestError(
            f"Invalid type for '{param}.content': expected a string or an array.",
            f"{param}.content",
            "invalid_type",
        )


def _optional_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"Invalid type for '{name}': expected a boolean.", name, "invalid_type")
    return value


def _include_usage(body: dict[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        # The real API refuses this combination; mirroring it catches client bugs early.
        raise RequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )
    if not isinstance(options, dict):
        raise RequestError(
            "Invalid type for 'stream_options': expected an object.", "stream_options", "invalid_type"
        )
    return _optional_bool(options, "include_usage")


def _max_tokens(body: dict[str, Any]) -> int | None:
    # max_completion_tokens is the current name; max_tokens the deprecated one still widely sent.
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RequestError(f"Invalid '{name}': expected an integer >= 1.", name, "invalid_value")
        return value
    return None


def _temperature(body: dict[str, Any]) -> float | None:
    value = body.get("temperature")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(
            "Invalid type for 'temperature': expected a number.", "temperature", "invalid_type"
        )
    return float(value)
