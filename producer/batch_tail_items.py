"""What following a batch yields (``producer.batch_tail``): its progress, each job's end, every
running job's event, the jobs whose ends are gone; and, for a reader that resumes, where it stood.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.events import StreamEvent
from common.reconnect import Reconnecting
from producer.batches import BatchStatus
from producer.log_reader import At
from producer.tail import Finished, Gap


@dataclass(frozen=True)
class Progress:
    status: BatchStatus


class JobEnded(Finished):
    """A job of the batch ended: its stored result."""


@dataclass(frozen=True)
class Unseen:
    """Jobs the counters say ended whose records are gone (expired, or the batch deleted meanwhile)."""

    count: int


@dataclass(frozen=True)
class Listed:
    """With positions: the ``JobEnded`` that follows is the batch's item ``index``, from its stored result
    (``final``: in the listing after the log was read to its end)."""

    index: int
    final: bool


@dataclass(frozen=True)
class BatchResume:
    """Where a reader that followed the batch stopped: after the event at ``index`` of log entry
    ``entry`` (and the job's end that followed it, when ``end_sent``), or after item ``listed`` of a
    listing of stored ends."""

    entry: str | None = None
    index: int = 0
    end_sent: bool = True
    listed: int | None = None
    final: bool = False


BatchItem = Progress | JobEnded | StreamEvent | Gap | Unseen | Reconnecting | At | Listed
