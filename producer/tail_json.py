"""The JSON form of what the followers yield: events as published, the followers' own notices with their
own ``type``. ``askq tail --json`` prints it a line each; ``askq serve`` sends it as SSE data."""

from __future__ import annotations

import json
from typing import Any

from common.events import StreamEvent
from common.sources import sources_json
from common.status import JobState
from producer.batch_tail_items import BatchItem, JobEnded, Unseen
from producer.tail import Finished, Gap, ProviderWait, TailItem, Waiting


def item_json(item: TailItem | BatchItem) -> dict[str, Any]:
    """The JSON line for an item: events as published, tail's own notices with their own ``type``."""
    if isinstance(item, StreamEvent):
        result: dict[str, Any] = json.loads(item.to_json())
        return result
    if isinstance(item, Waiting):
        return {"type": "waiting", "job_id": item.job_id}
    if isinstance(item, ProviderWait):
        return {"type": "provider_wait", "job_id": item.job_id, "attempt": item.attempt}
    if isinstance(item, Gap):
        return {"type": "gap", "job_id": item.job_id, "first_seq": item.first_seq, "last_seq": item.last_seq}
    if isinstance(item, Unseen):
        return {"type": "unseen", "count": item.count}
    if isinstance(item, Finished):
        return {
            "type": "result" if isinstance(item, JobEnded) else "finished",
            "job_id": item.job_id,
            "state": item.state.value,
            "answer": item.answer if item.state is JobState.SUCCEEDED else None,
            "error": item.error or None,
            "attempts": item.attempts,
            "usage": item.usage.model_dump(exclude_none=True) if item.usage else None,
            "finish_reason": item.finish_reason,
            **({"sources": json.loads(sources_json(item.sources))} if item.sources is not None else {}),
        }
    raise TypeError(f"no JSON form for {type(item).__name__}")  # pragma: no cover
