"""A prompt longer than the model's context, as each server says it: no attempt can fit it.

What the servers people run answer (their words, since none shares a code):

- OpenAI and llama-cpp-python: 400, ``code: "context_length_exceeded"``, "This model's maximum
  context length is N tokens...". Streamed, llama-cpp-python sends 200 and an empty body instead.
- llama-server: 400 (500 before late 2025), ``type: "exceed_context_size_error"``, "request (N
  tokens) exceeds the available context size (M tokens)...".
- vLLM: 400, no code, "This model's maximum context length is N tokens...".
"""

from __future__ import annotations

import re
from typing import Any

from common.errors import ContextOverflowError
from common.secrets import redact_secrets

_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
_MESSAGES = re.compile(
    r"maximum context length|exceeds? (?:the )?(?:available )?context (?:size|window|length)"
    r"|context window of|context_length_exceeded",
    re.IGNORECASE,
)


def context_overflow(status: int, body: Any) -> ContextOverflowError | None:
    """The overflow a refusal's status and JSON body tell of; None for any other refusal."""
    if status == 429 or not isinstance(body, dict):
        return None  # a rate limit speaks of tokens too, per minute: never an overflow
    error = body.get("error", body)
    if not isinstance(error, dict):
        return None
    said_message = error.get("message")
    message = said_message if isinstance(said_message, str) else ""
    said = {str(error.get("code")), str(error.get("type"))} & _CODES
    if not said and not _MESSAGES.search(message):
        return None
    return ContextOverflowError(
        f"the prompt is longer than the model's context ({redact_secrets(message) or 'no message'})",
        status_code=status,
    )
