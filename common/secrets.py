"""Keep secrets out of logs, events, results and error messages."""

from __future__ import annotations

import os
import re

_API_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-*]{8,}")
# The password runs to the last '@' before the host: a password may hold an unescaped '@'.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^\s/]*@")
_URL_TOKEN = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^:/@\s]+@")
"""A user part with no password: often a token (``https://TOKEN@host``), masked whole."""
_QUERY_SECRET = re.compile(
    r"([?&](?:api[-_]?key|key|token|access[-_]?token|secret|password|pass|sig|signature|auth)=)[^&#\s]+",
    re.IGNORECASE,
)


def error_line(exc: BaseException, most: int = 200) -> str:
    """An exception as one line for a message or a log: its first line, secrets masked, clipped."""
    text = redact_secrets(str(exc).split("\n")[0]) or type(exc).__name__
    return text if len(text) < most else text[: most - 3] + "..."


def redact_secrets(text: str) -> str:
    """Text with the configured API key, anything shaped like one, URL passwords and secret query
    parameters (``?api-key=``, ``&token=``) masked."""
    key = os.environ.get("OPENAI_API_KEY")
    if key and len(key) >= 8:
        text = text.replace(key, "***")
    # Each pattern starts with a fixed string: most text (every log line's values) has neither.
    if "sk-" in text:
        text = _API_KEY_PATTERN.sub(r"\1***", text)
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1***@", text)
        text = _URL_TOKEN.sub(r"\1***@", text)
        text = _QUERY_SECRET.sub(r"\1***", text)
    return text
