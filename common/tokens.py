"""A cheap token estimate, for checks that must not call a tokenizer per line.

About four bytes of UTF-8 make a token in English text; scripts with multi-byte characters make
more tokens per byte, so this errs low there. A check built on it refuses only text that is surely
too long, never text that would fit.
"""

from __future__ import annotations

BYTES_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)
