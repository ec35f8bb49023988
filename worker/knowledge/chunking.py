"""A base's files in chunks: semantic-text-splitter, counting tokens with the embedding model's tokenizer.

The library is well kept (Rust, typed, released often) and does what a hand-made splitter would get
wrong: it splits at the largest unit that fits the budget (Markdown sections, then paragraphs, then
sentences by Unicode's rules, so Korean and other scripts too, then words) and merges neighbours
back up to the budget; an overlap repeats whole units from the end of the chunk before. Its
tiktoken tables are built in, so chunking needs no network.
"""

from __future__ import annotations

import functools
from typing import Literal

from semantic_text_splitter import MarkdownSplitter, TextSplitter

Kind = Literal["markdown", "text"]
FALLBACK_MODEL = "text-embedding-3-small"
"""Whose tokenizer counts chunks for a model tiktoken does not know (a local nomic-embed-text, say):
its counts are close enough for a budget, and a model of another family has no table built in."""
MARKDOWN_SUFFIXES = (".md", ".markdown")


def kind_of(path: str) -> Kind:
    return "markdown" if path.lower().endswith(MARKDOWN_SUFFIXES) else "text"


def chunk_text(path: str, text: str, *, model: str, tokens: int, overlap: int) -> list[str]:
    """The chunks of one file's text, in order (a chunk's position is its index here); each at most
    ``tokens`` tokens of ``model``'s tokenizer, repeating up to ``overlap`` from the one before."""
    return splitter(kind_of(path), model, tokens, overlap).chunks(text)


@functools.lru_cache(maxsize=16)
def splitter(kind: Kind, model: str, tokens: int, overlap: int) -> TextSplitter | MarkdownSplitter:
    """One splitter per kind, model and budget: building one loads the tokenizer's tables.

    A model tiktoken does not know is counted with ``FALLBACK_MODEL``'s tokenizer."""
    make = MarkdownSplitter if kind == "markdown" else TextSplitter
    try:
        return make.from_tiktoken_model(model, tokens, overlap)
    except Exception:  # the library raises a bare Exception: "No tokenizer found for model ..."
        if model == FALLBACK_MODEL:
            raise
        return splitter(kind, FALLBACK_MODEL, tokens, overlap)
