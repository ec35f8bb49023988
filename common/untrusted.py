"""Untrusted text (ids, questions, answers, provider errors) made harmless for a terminal or a JSON line.

Plain string functions with no terminal library, so that every floor can use them: the CLI's tables
and tails (through ``askq.terminal``), the exported results, and the worker's console log lines.
"""

from __future__ import annotations

import re

_KEPT = {ord("\n"), ord("\t")}
_BIDI_CONTROLS = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
"""Embeddings, overrides and isolates (the "Trojan Source" set); marks (LRM, RLM) are left alone."""

_STAND_INS: dict[int, str] = {
    # C0 controls have Unicode "control pictures" (U+2400 + code): ␛ ␇ ␈ ␍ …; DEL has ␡.
    **{code: chr(0x2400 + code) for code in range(0x20) if code not in _KEPT},
    0x7F: "\u2421",
    # C1 and bidi controls have no pictures: they are spelled out as Python would write them.
    **{code: f"\\x{code:02x}" for code in range(0x80, 0xA0)},
    **{code: f"\\u{code:04x}" for code in _BIDI_CONTROLS},
}


_JSON_ESCAPES: dict[int, str] = {
    code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0), *_BIDI_CONTROLS, 0x2028, 0x2029)
}
_JSON_ESCAPED = re.compile("[" + "".join(map(chr, _JSON_ESCAPES)) + "]")


def json_line(document: str) -> str:
    """A JSON document with the controls that ``json.dumps(ensure_ascii=False)`` leaves raw (DEL, C1,
    bidi, line separators) spelled as ``\\u`` escapes: the same value, which a terminal cannot act on.
    Outside strings JSON is ASCII, so each such character is inside one."""
    # translate() looks up every character in a dict (about 100 us for a 1.4 KB answer with a dash or
    # an accent, ten times the search); an ASCII line can hold only DEL, and isascii() and `in` run at
    # memory speed.
    if document.isascii():
        return document.replace("\x7f", "\\u007f")
    if _JSON_ESCAPED.search(document) is None:
        return document
    return document.translate(_JSON_ESCAPES)


def json_line_bytes(document: bytes) -> bytes:
    """``json_line`` of a document in UTF-8, in UTF-8: a line written as bytes (``producer.result_lines``)
    is looked at as bytes, and decoded only to be changed."""
    if document.isascii():
        return document.replace(b"\x7f", b"\\u007f")
    return json_line(document.decode()).encode()


def visible(text: str) -> str:
    """``text`` with every control character but newline and tab replaced by a visible stand-in."""
    return text.translate(_STAND_INS)
