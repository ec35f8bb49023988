"""Mutable per-app state: current settings, fault RNG, stats and rate window."""

from __future__ import annotations

import random
from typing import Any

from aiohttp import web

from .ratelimit import SlidingWindowLimiter
from .settings import SimulatorSettings
from .stats import SimStats


class SimState:
    """Owned by one aiohttp app; handlers read `settings` once per request so an update never tears."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.stats = SimStats()
        self.limiter = SlidingWindowLimiter()

    def update_settings(self, changes: dict[str, Any]) -> SimulatorSettings:
        """Apply a validated partial update; raises SettingsError naming the bad key."""
        new = self.settings.updated(changes)
        if new.seed != self.settings.seed:
            self.rng = random.Random(new.seed)
        self.settings = new
        return new

    def reset(self) -> None:
        """Clear stats, attempts and the rate window; re-seed so fault sequences replay identically."""
        self.stats.reset()
        self.limiter.clear()
        self.rng = random.Random(self.settings.seed)


STATE_KEY = web.AppKey("simulator_state", SimState)
