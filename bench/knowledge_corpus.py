"""Generated Markdown for the knowledge benchmarks: files of sections under headings, seeded, and the
``knowledge:`` block of a ``jobs.yaml`` naming them.

Each section is six sentences of 20 words, about 200 tokens of text-embedding-3-small's tokenizer, so
with the default budget (300 tokens) two never fit in one chunk: a file of N sections is N chunks.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

BASE = "guide"
FOLDER = "kb"
MODEL = "text-embedding-3-small"
DIMENSIONS = 512
# A prose string keeps the list compact under the formatter, as simulator/vectors.py does.
_WORDS_TEXT = """almond barley cedar dune ember fjord garnet harbor iris juniper kelp lantern meadow nutmeg
orchard pepper quartz river saffron thistle umber valley willow yarrow zinnia anchor basil canyon delta
estuary fennel glacier hazel indigo jasmine kestrel lagoon maple nectar olive prairie quince reef
sorrel tundra"""
WORDS = _WORDS_TEXT.split()
SENTENCE_WORDS = 20
SENTENCES_PER_SECTION = 6


def file_path(index: int) -> str:
    """The path of the ``index``th file, relative to the config's folder."""
    return f"{FOLDER}/topic-{index:03d}.md"


def section(rng: random.Random, file: int, number: int) -> str:
    sentences = [
        " ".join(rng.choice(WORDS) for _ in range(SENTENCE_WORDS)).capitalize() + "."
        for _ in range(SENTENCES_PER_SECTION)
    ]
    return f"## Topic {file} part {number}\n\n" + " ".join(sentences) + "\n"


def file_text(file: int, sections: int, *, edition: int = 0) -> str:
    """The ``file``th file's Markdown (``edition`` other than 0: other words, as after an edit)."""
    rng = random.Random(file * 1000 + edition)
    return f"# Topic {file}\n\n" + "\n".join(section(rng, file, number) for number in range(sections))


def write_corpus(root: Path, files: int, sections: int) -> None:
    for file in range(files):
        path = root / file_path(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file_text(file, sections), encoding="utf-8")


def knowledge_config(job_type: str | None = None) -> dict[str, Any]:
    """The ``knowledge:`` block naming the corpus (and a job type answering with it, when named)."""
    config: dict[str, Any] = {
        "knowledge": {
            BASE: {"files": f"{FOLDER}/**/*.md", "embedding_model": MODEL, "dimensions": DIMENSIONS}
        }
    }
    if job_type is not None:
        prompt = "Answer from the guide below; say you do not know otherwise.\n[[Guide]]\n{knowledge}"
        config["job_types"] = {job_type: {"system_prompt": prompt, "knowledge": BASE, "top_k": 4}}
    return config
