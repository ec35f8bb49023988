"""``askq knowledge list``: every base jobs.yaml names and every one built in Redis, with its state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig
from common.knowledge import KnowledgeMeta
from common.knowledge_store import built_bases, read_meta

BUILT = "built"
NOT_BUILT = "not built"
OTHER_MODEL = "built with another model or dimension, rebuild"
NOT_CONFIGURED = "not in jobs.yaml"


@dataclass(frozen=True)
class BaseRow:
    name: str
    status: str
    meta: KnowledgeMeta | None
    reason: str | None = None
    """With ``OTHER_MODEL``: what differs, as a job of the base would be refused with."""

    @property
    def size_bytes(self) -> int:
        return self.meta.matrix_bytes + self.meta.chunk_bytes if self.meta else 0

    def built_when(self) -> str:
        """Local time, to the minute; empty when not built."""
        if self.meta is None:
            return ""
        return datetime.fromtimestamp(self.meta.built_at).astimezone().strftime("%Y-%m-%d %H:%M")

    def to_json(self) -> dict[str, Any]:
        meta = self.meta
        built = {
            "version": meta.version,
            "files": meta.files,
            "chunks": meta.chunks,
            "model": meta.model,
            "dimensions": meta.dimensions,
            "size_bytes": self.size_bytes,
            "matrix_bytes": meta.matrix_bytes,
            "built_at": datetime.fromtimestamp(meta.built_at).astimezone().isoformat(timespec="seconds"),
        } if meta else {}  # fmt: skip
        return {"name": self.name, "status": self.status, **built, "reason": self.reason}


async def knowledge_rows(redis: Redis, config: AskqConfig) -> list[BaseRow]:
    """One row a base, by name: those of jobs.yaml, built or not, and those built but no longer in it."""
    built = {meta.name: meta for meta in await built_bases(redis)}
    rows = []
    for name in sorted(set(config.knowledge) | set(built)):
        meta = built.get(name) or (await read_meta(redis, name) if name in config.knowledge else None)
        base = config.knowledge.get(name)
        if meta is None:
            rows.append(BaseRow(name, NOT_BUILT, None))
        elif base is None:
            rows.append(BaseRow(name, NOT_CONFIGURED, meta))
        else:
            reason = meta.mismatch(base)
            rows.append(BaseRow(name, OTHER_MODEL if reason else BUILT, meta, reason))
    return rows
