"""Stream events: what a worker publishes on a job's channel, one JSON object per message.

Order per job: one ``start`` per attempt, its ``delta`` events, then ``retry`` (the attempt's partial
text is void and a new attempt follows) or a final ``done`` / ``failed`` / ``cancelled``. ``seq``
rises by one with every event of the job, across attempts and across runs: ``askq retry`` puts a
``retry`` after a job's ``failed`` and its next run follows, so a reader takes the latest end.

A scheduled summary run is followed the same way; its model calls run concurrently, so each of
their ``start``, ``delta`` and ``retry`` events names its ``part``, a ``part_done`` ends each call
(not the run), and one ``done`` ends the run.

A job of a type with knowledge logs one ``sources`` event per run before its first ``start``: the
chunks retrieved for its prompt, best first (retrieval comes before the first call, so readers can
show where an answer comes from before it comes).

A ``waiting`` event may come between them: the attempt waits (for a provider that is away, for a
place under the shared in-flight limit, in the server's queue) and says what for; it spends nothing.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from common.sources import Source
from common.usage import Usage

EVENT_SCHEMA_VERSION = 1


class EventType(StrEnum):
    START = "start"
    DELTA = "delta"
    RETRY = "retry"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PART_DONE = "part_done"
    WAITING = "waiting"
    SOURCES = "sources"

    @property
    def is_final(self) -> bool:
        return self in (EventType.DONE, EventType.FAILED, EventType.CANCELLED)


class StreamEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = EVENT_SCHEMA_VERSION
    type: EventType
    job_id: str
    seq: int
    attempt: int
    ts: float
    text: str | None = None
    """delta: the text that follows what came before in this attempt."""
    model: str | None = None
    """start: the model asked."""
    error: str | None = None
    """retry, failed and cancelled: why the attempt (or the job) failed."""
    reason: str | None = None
    """waiting: what the attempt waits for (a provider away, a place in flight, the server's queue)."""
    retry_in_s: float | None = None
    """retry: how long the worker waits before the next attempt."""
    usage: Usage | None = None
    """done and failed: tokens used over all attempts."""
    latency_ms: float | None = None
    """done and failed: from the job's start to its end."""
    finish_reason: str | None = None
    """done: why the answer ended, when not ``stop`` (``length``: cut at max_tokens)."""
    max_tokens: int | None = None
    """done, with finish_reason ``length``: the cap the answer reached."""
    sources: list[Source] | None = None
    """sources: the knowledge chunks in the prompt, best first (file, chunk position, score)."""
    part: str | None = None
    """A scheduled run's start, delta, retry and part_done: which model call ("map 3/12", "summary")."""
    cached: bool | None = None
    """done: true when the answer came from the answer cache (no call was made); absent otherwise."""
    code: str | None = None
    """cancelled: a short machine-readable reason beside ``error`` (``budget``: the batch's budget was
    spent); absent otherwise."""

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)
