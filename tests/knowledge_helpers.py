"""A small café knowledge base for tests: files with planted facts, a config naming them, and a built
index (the chunks embedded by the simulator, written as a version), with no build command involved."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig, parse_config
from common.knowledge import FileEntry, KnowledgeMeta, StoredChunk
from worker.answering.client import provider_client
from worker.answering.gate import ProviderGate
from worker.answering.provider import ChatProvider
from worker.knowledge.embedder import Embedder
from worker.knowledge.index_store import write_version

MODEL = "text-embedding-3-small"
DIMENSIONS = 256
MENU_PROMPT = "You answer questions about the café's menu. Use only the menu below.\n[[Menu]]\n{knowledge}"

# Each file's chunks, and the question that only its first chunk answers.
FILES: dict[str, list[str]] = {
    "kb/menu/drinks.md": [
        "The iced americano costs 2,000 won in a large cup.",
        "Lattes come with oat milk on request.",
    ],
    "kb/menu/hours.md": ["The café opens at seven in the morning and closes at ten at night."],
    "kb/menu/wifi.md": ["The wifi password is moonlight42, written on every receipt."],
    "kb/menu/korean.md": ["바닐라 라떼 가격은 3,500원입니다. 시럽 추가는 무료입니다."],
}
QUESTIONS: dict[str, tuple[str, str]] = {
    "price": ("How much is an iced americano?", "kb/menu/drinks.md"),
    "hours": ("When does the café open in the morning?", "kb/menu/hours.md"),
    "wifi": ("What is the wifi password?", "kb/menu/wifi.md"),
    "latte": ("바닐라 라떼 가격은 얼마예요?", "kb/menu/korean.md"),
}


def write_files(root: Path, files: dict[str, list[str]] = FILES) -> None:
    for name, chunks in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n\n".join(chunks) + "\n", encoding="utf-8")


def menu_config(
    root: Path, *, dimensions: int | None = DIMENSIONS, top_k: int = 2, **extra: Any
) -> AskqConfig:
    """A config with the base ``menu`` over ``root``'s files, and the job type ``menu`` using it."""
    write_files(root)
    base: dict[str, Any] = {"files": "kb/menu/**/*.md", "embedding_model": MODEL}
    if dimensions is not None:
        base["dimensions"] = dimensions
    raw = {
        "retry": {"attempts": 3, "initial_wait_s": 0.01, "max_wait_s": 0.05, "jitter_s": 0.01},
        "knowledge": {"menu": base},
        "job_types": {
            "qa": {"system_prompt": "You are a helpful assistant."},
            "menu": {"system_prompt": MENU_PROMPT, "knowledge": "menu", "top_k": top_k},
        },
        **extra,
    }
    return parse_config(raw, base_dir=root)


async def build_base(
    redis: Redis,
    config: AskqConfig,
    files: dict[str, list[str]] = FILES,
    *,
    name: str = "menu",
    dimensions: int | None = None,
) -> KnowledgeMeta:
    """Embed each file's chunks through the simulator and store them as the base's new version
    (``dimensions``: other than the config's, for an index built for another one)."""
    base = config.knowledge[name]
    asked = dimensions or base.dimensions
    client = provider_client(config)
    try:
        gate = ProviderGate(redis, "build", ChatProvider(client).endpoint, config)
        embedder = Embedder(
            client, config, asyncio.Semaphore(4), gate, model=base.embedding_model, dimensions=asked
        )
        chunks = [
            StoredChunk(text=text, file=file, position=position)
            for file, texts in files.items()
            for position, text in enumerate(texts)
        ]
        matrix = await embedder.embed([chunk.text for chunk in chunks])
    finally:
        await client.close()
    table, first = {}, 0
    for file, texts in files.items():
        digest = hashlib.sha256("\n\n".join(texts).encode()).hexdigest()
        table[file] = FileEntry(sha256=digest, first=first, rows=len(texts))
        first += len(texts)
    draft = KnowledgeMeta.draft(name, base, matrix.shape[1])
    return await write_version(redis, draft, matrix, chunks, table)


def questions_file(path: Path, names: list[str] | None = None) -> Path:
    """A JSONL file of the planted questions (by their names in ``QUESTIONS``)."""
    lines = [json.dumps({"id": key, "question": QUESTIONS[key][0]}) for key in names or list(QUESTIONS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
