"""Where events go: a batch's log and channel, or a scheduled run's (which has no batch)."""

from __future__ import annotations

from common.keys.cluster import PREFIX

__all__ = ["LOG_FIELD", "batch_events_channel", "batch_log", "event_feed", "job_events_channel", "job_log"]


def job_events_channel(job_id: str) -> str:
    """Pub/sub channel of a scheduled run's events (a run has no batch); see ``event_feed``."""
    return f"{PREFIX}:events:{job_id}"


def job_log(job_id: str) -> str:
    """Stream of a scheduled run's events (a run has no batch); see ``event_feed``."""
    return f"{PREFIX}:log:{job_id}"


def batch_log(batch: str) -> str:
    """Stream of every event of every job of a batch: its event log."""
    return f"{PREFIX}:batch:{batch}:log"


def batch_events_channel(batch: str) -> str:
    """Pub/sub channel carrying the same entries as the batch's log, live only."""
    return f"{PREFIX}:batch:{batch}:events"


def event_feed(job_id: str, batch: str | None) -> tuple[str, str]:
    """Where a job's events go: its batch's log and channel, or a scheduled run's own."""
    if batch is None:
        return job_log(job_id), job_events_channel(job_id)
    return batch_log(batch), batch_events_channel(batch)


LOG_FIELD = "events"
"""The one field of an event-log entry: a JSON array of events, the same bytes the channel carries."""
