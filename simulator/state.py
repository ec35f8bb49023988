"""Mutable per-app state: current settings, fault RNG, stats, rate window and token bucket."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .ratelimit import SlidingWindowLimiter
from .settings import SimulatorSettings
from .slots import Slots
from .stats import SimStats
from .token_bucket import TokenBucket


@dataclass(frozen=True)
class StoredFile:
    """A file uploaded to (or written by) the Batch API endpoints."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


class SimState:
    """Owned by one aiohttp app; handlers read `settings` once per request so an update never tears."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.stats = SimStats()
        self.limiter = SlidingWindowLimiter()
        self.bucket = TokenBucket()
        self.slots = Slots(self.stats)
        self.recorded: list[dict[str, Any]] = []
        """With ``record_requests``: each answered request's last user message, model, system messages,
        temperature and answer (``ChatRequest.recorded``)."""
        self.recorded_embeddings: list[dict[str, Any]] = []
        """With ``record_requests``: each answered embeddings request's model, inputs and dimensions."""
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_tasks: dict[str, asyncio.Task[None]] = {}

    def update_settings(self, changes: dict[str, Any]) -> SimulatorSettings:
        """Apply a validated partial update; raises SettingsError naming the bad key."""
        new = self.settings.updated(changes)
        if new.seed != self.settings.seed:
            self.rng = random.Random(new.seed)
        self.settings = new
        return new

    def reset(self) -> None:
        """Clear stats, attempts, the rate window and the token bucket; re-seed so that fault sequences
        replay identically."""
        self.stats.reset()
        self.limiter.clear()
        self.bucket.clear()
        self.recorded.clear()
        self.recorded_embeddings.clear()
        self.files.clear()
        self.batches.clear()
        self.rng = random.Random(self.settings.seed)


STATE_KEY = web.AppKey("simulator_state", SimState)
