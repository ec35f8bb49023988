"""The arq job written for one question, built alike by ``submit`` and by ``retry`` (from the record).

The job is plain JSON naming askq's answer function; its one argument is a ``JobPayload``.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from common import keys, record
from common.payload import JobPayload
from common.serializer import job_serializer
from producer.items import QuestionItem


def payload_json(item: QuestionItem, batch: str, job_type: str) -> dict[str, Any]:
    """The ``JobPayload`` of a question, as its JSON dump, without building the model: submit writes
    one per question, and the readers have checked every field already (the worker checks again)."""
    messages = [message.model_dump(mode="json") for message in item.messages] if item.messages else None
    return {
        "v": 1,
        "job_id": keys.job_id(batch, item.item_id),
        "batch": batch,
        "item_id": item.item_id,
        "job_type": job_type,
        "question": item.question,
        "messages": messages,
        "model": item.model,
        "params": item.params,
    }


def request_json(item: QuestionItem) -> str | None:
    """What a line asked beyond its question (a Batch API line's conversation, model and parameters, or a
    plain line's own model, system prompt and parameters), for the record; None when nothing. Submit
    compares it with a resubmitted line's, so the same line always writes the same text."""
    if item.messages is None and item.model is None and not item.params:
        return None
    messages = [message.model_dump() for message in item.messages] if item.messages else None
    return json.dumps({"messages": messages, "model": item.model, "params": item.params}, ensure_ascii=False)


def payload_from_record(job_id: str, fields: dict[str, str]) -> JobPayload:
    """The payload a job was first enqueued with, rebuilt from its record for a re-run."""
    request: dict[str, Any] = json.loads(fields[record.REQUEST]) if fields.get(record.REQUEST) else {}
    return JobPayload(
        job_id=job_id,
        batch=fields[record.BATCH],
        item_id=fields[record.ITEM_ID],
        job_type=fields[record.JOB_TYPE],
        question=fields[record.QUESTION],
        messages=request.get("messages"),
        model=request.get("model"),
        params=request.get("params") or {},
    )


def arq_job(payload: dict[str, Any], enqueued_ms: int) -> bytes:
    """The job of askq's answer function for ``payload``, a ``JobPayload``'s JSON dump."""
    return serialized_job(keys.ANSWER_FUNCTION, payload, enqueued_ms)


def serialized_job(function: str, argument: dict[str, Any], enqueued_ms: int) -> bytes:
    """arq's job (function name, one argument, enqueue time), as askq's serializer writes it."""
    job: dict[str, Any] = {"t": None, "f": function, "a": [argument], "k": {}, "et": enqueued_ms}
    return job_serializer(job)


async def wake_workers(redis: Redis, queue: str = keys.QUEUE) -> bool:
    """Tell idle workers there is work (or an abort) now, rather than at their next poll; False when
    Redis refused (an ACL without the channel). A wake-up is advice: the work is written already,
    and workers find it at their next poll, so a refusal must not fail the command that did it."""
    try:
        await redis.publish(keys.queue_wake(queue), b"")
    except ResponseError:  # NoPermissionError among them; a lost connection still raises
        return False
    return True
