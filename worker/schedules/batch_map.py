"""The map step through the OpenAI Batch API: one JSONL upload, one batch, polled until it ends.

Half the price, no streaming: the run's log says the batch was sent, then shows each chunk's summary
when the batch is done. A chunk the batch could not answer is asked again the ordinary way, streamed
and retried, so a partly failed batch costs a few calls rather than the run.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import structlog

from common.errors import ProviderError
from common.events import EventType
from common.usage import Usage
from worker.answering.provider_errors import translate
from worker.schedules.calls import RunCalls
from worker.schedules.mapreduce import CallResult, MapStep

log = structlog.get_logger(__name__)

FIRST_POLL_S = 0.5
MAX_POLL_S = 30.0
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
BATCH_PART = "map (Batch API)"


def batch_map_step(calls: RunCalls) -> MapStep:
    client = calls.ctx["client"]

    async def step(messages: list[str]) -> list[CallResult]:
        lines = [
            json.dumps(
                {
                    "custom_id": f"map-{index}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": calls.model, "messages": calls.messages(message), **calls.params()},
                },
                ensure_ascii=False,
            )
            for index, message in enumerate(messages, 1)
        ]
        calls.publisher.emit(EventType.START, 1, model=calls.model, part=BATCH_PART)
        try:
            answers = await _run_batch(client, calls.run_id, "\n".join(lines) + "\n")
        except openai.OpenAIError as exc:
            raise translate(exc) from exc
        count = len(messages)
        results: list[CallResult] = []
        for index, message in enumerate(messages, 1):
            part = f"map {index}/{count}"
            answered = answers.get(f"map-{index}")
            if answered is None:
                log.warning("batch left a chunk unanswered; asking again, streamed", part=part)
                results.append(await calls.streamed(part, message))
                continue
            calls.publisher.emit(EventType.START, 1, model=calls.model, part=part)
            calls.publisher.delta(answered.text, part)
            calls.publisher.emit(EventType.PART_DONE, 1, part=part, usage=answered.usage)
            results.append(answered)
        return results

    return step


async def _run_batch(client: openai.AsyncOpenAI, run_id: str, jsonl: str) -> dict[str, CallResult]:
    upload = await client.files.create(file=("map.jsonl", jsonl.encode("utf-8")), purpose="batch")
    batch = await client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"askq_run": run_id},
    )
    log.info("batch sent", batch_id=batch.id, requests=jsonl.count("\n"))
    wait_s = FIRST_POLL_S
    while batch.status not in ENDED:
        await asyncio.sleep(wait_s)  # the Batch API is polled; there is nothing to wait on
        wait_s = min(wait_s * 1.5, MAX_POLL_S)
        batch = await client.batches.retrieve(batch.id)
    if batch.status != "completed" or batch.output_file_id is None:
        raise ProviderError(f"the Batch API ended batch {batch.id} as {batch.status}")
    content = await client.files.content(batch.output_file_id)
    return _answers(content.text)


def _answers(output_jsonl: str) -> dict[str, CallResult]:
    """Each answered line's text and usage by custom_id; lines with an error are left out."""
    answers = {}
    for line in output_jsonl.splitlines():
        if not line.strip():
            continue
        entry: dict[str, Any] = json.loads(line)
        response = entry.get("response") or {}
        if entry.get("error") or response.get("status_code") != 200:
            continue
        body = response["body"]
        text = body["choices"][0]["message"]["content"] or ""
        answers[entry["custom_id"]] = CallResult(text, Usage.model_validate(body.get("usage") or {}))
    return answers
