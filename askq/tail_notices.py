"""What a job's tail and a batch's tail say alike: the JSON line of each item, and the wording of the
notices (reconnects, gaps, retries, waits) that go to stderr.

Ids and provider errors in them are untrusted: callers pass them through ``askq.terminal``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from askq.terminal import json_line, make_console, markup
from common.events import StreamEvent
from common.reconnect import Reconnecting
from common.sources import Source
from producer.batch_tail_items import BatchItem
from producer.tail import Gap, TailItem
from producer.tail_json import item_json

stderr = make_console(stderr=True)


def print_json(item: TailItem | BatchItem) -> None:
    print(json_line(json.dumps(item_json(item), ensure_ascii=False)), flush=True)


def reconnecting(item: Reconnecting) -> None:
    stderr.print(
        f"[yellow]lost the Redis connection ({markup(item.error)}); "
        f"reconnecting in {item.retry_in_s:.1f} s[/]"
    )


def gap_notice(item: Gap) -> str:
    return (
        f"events {item.first_seq}–{item.last_seq} of {item.job_id} are no longer in the event log "
        "(trimmed or lost): the text shown is incomplete; `askq results` has the stored answer"
    )


def retry_notice(item: StreamEvent) -> str:
    wait = f"; retrying in {item.retry_in_s:.1f} s" if item.retry_in_s is not None else "; retrying"
    return f"attempt {item.attempt} failed ({item.error}){wait}: its text so far is discarded"


def waiting_notice(item: StreamEvent) -> str:
    return f"waiting for the provider: {item.reason or 'busy'}"


def sources_notice(sources: Sequence[Source]) -> str:
    """One line: each chunk as FILE#POSITION with its score, best first."""
    shown = ", ".join(f"{source.file}#{source.chunk} ({source.score:.2f})" for source in sources)
    return f"sources: {shown or 'none'}"


def attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"
