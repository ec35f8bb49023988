"""What the server holds for its whole life, made in its lifespan (never at import): settings, config,
the Redis connection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis

from common.config import AskqConfig
from server.settings import ServerSettings


@dataclass
class ServerState:
    settings: ServerSettings
    config: AskqConfig
    redis: Redis
    extras: dict[str, Any] = field(default_factory=dict)
    """Per-process helpers a router makes on first use (a subscription hub, say), closed at shutdown."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set as the server starts to stop: live event streams end (uvicorn waits for open responses)."""


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.askq
    return state


async def redis_of(request: Request) -> Redis:
    """A route's Redis: the server's one connection pool."""
    return server_state(request).redis


RedisDep = Annotated[Redis, Depends(redis_of)]
"""A route's parameter for the server's Redis."""
