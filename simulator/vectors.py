"""Embedding vectors by feature hashing: deterministic, and close exactly when texts share words.

A text's features are its words (lower-cased, stop-words dropped, a plural "s" stripped) and, for
scripts written without spaces between morphemes (Hangul; also Han and kana), each word's character
bigrams as well, so "아메리카노는" shares most of its features with "아메리카노". Each feature adds +-1
at a few positions picked by a hash of it; the counts are damped (1 + log n) and the vector is
L2-normalised. So the cosine of two texts grows with the words they share, and texts that share none are
near-orthogonal: retrieval over these vectors is real (lexical) retrieval, with no model behind it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import struct
import unicodedata
from collections import Counter

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

# Hangul syllables and jamo, CJK ideographs, hiragana and katakana: words here are bigrammed.
_BIGRAM_SCRIPTS = "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3"
_TOKEN = re.compile(rf"([{_BIGRAM_SCRIPTS}]+)|[^\W_{_BIGRAM_SCRIPTS}]+")
_PROBES = 4
"""Positions per feature: more than one, so two features rarely cancel or coincide entirely."""
_HASH_PERSON = b"askq-sim-embed"
_NO_FEATURES = "\x00no-features"
"""The feature of a text without words; no token can be it, as NUL is not a word character."""

# A prose string keeps the list compact under the formatter; split once at import.
_STOP_WORDS_TEXT = """a about am an and any are as at be been but by can could did do does for from had has
have here how i if in is it its me much my of on or our s so some t than that the their them then there these
they this those to us was we were what when where which who whom why will with would you your"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
"""Words that say little about what a text is about; dropped so questions match on their content."""


def embed(text: str, dimensions: int) -> Vector:
    """The unit vector of `text` with `dimensions` components, the same in every process."""
    positions: list[int] = []
    weights: list[float] = []
    for feature, count in (features(text) or Counter({_NO_FEATURES: 1})).items():
        weight = 1.0 + math.log(count)
        slots, signs = _slots(feature, dimensions)
        positions.extend(slots)
        weights.extend(sign * weight for sign in signs)
    vector = np.bincount(positions, weights=weights, minlength=dimensions)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:  # every probe cancelled out: only possible at a handful of dimensions
        return embed("", dimensions) if text else _unit(dimensions)
    return (vector / norm).astype(np.float32)


def features(text: str) -> Counter[str]:
    """Each feature of `text` with the number of times it occurs."""
    counts: Counter[str] = Counter()
    # NFKC composes decomposed Hangul (as macOS file names carry it) and folds full-width letters.
    for match in _TOKEN.finditer(unicodedata.normalize("NFKC", text).casefold()):
        word = match.group()
        if match.group(1) is not None:
            counts[word] += 1
            counts.update(word[i : i + 2] for i in range(len(word) - 1))
        elif word not in STOP_WORDS:
            counts[_singular(word)] += 1
    return counts


def _singular(word: str) -> str:
    """A plural's singular ("lattes": "latte"): a trailing s off a longer word, but not "ss" ("glass")."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@functools.lru_cache(maxsize=1 << 16)
def _slots(feature: str, dimensions: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    # hashlib, never hash(): Python salts str hashes per process, and vectors must agree across them.
    digest = hashlib.blake2b(feature.encode(), digest_size=8 * _PROBES, person=_HASH_PERSON).digest()
    values = struct.unpack(f"<{_PROBES}Q", digest)
    return tuple(value % dimensions for value in values), tuple(
        1.0 if value >> 63 else -1.0 for value in values
    )


def _unit(dimensions: int) -> Vector:
    vector = np.zeros(dimensions, dtype=np.float32)
    vector[0] = 1.0
    return vector
