"""A job's stream events: numbered as they happen, handed to the process's relay without waiting.

The provider's read loop calls ``delta`` and ``emit``, which never await Redis. Text is gathered
per ``part`` (a scheduled run's model calls run at once) and sealed into one ``delta`` event per
part when the relay flushes, so each call's text stays whole and in order; any other event seals
the text before it first.

Numbers continue from ``seq``, the last one the job's record says its earlier runs used, so they
stay contiguous across attempts, runs and ``askq retry``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from common import keys
from common.events import EVENT_SCHEMA_VERSION, EventType, StreamEvent
from worker.answering.relay import EventRelay

INTERRUPTED = "the previous run of this job stopped mid-way (its worker was lost); starting again"


class EventPublisher:
    def __init__(self, relay: EventRelay, job_id: str, batch: str | None, *, seq: int = 0) -> None:
        self._relay = relay
        self._job_id = job_id
        self._feed = keys.event_feed(job_id, batch)
        self._seq = seq
        self._attempt = 1
        self._part_attempts: dict[str, int] = {}
        self._deltas: dict[str | None, list[str]] = {}

    def next_seq(self) -> int:
        """The number the next event will have, once the text gathered so far is sealed (and numbered)."""
        self.seal()
        return self._seq + 1

    @property
    def attempt(self) -> int:
        """The attempt of the latest ``start``."""
        return self._attempt

    def continue_after(self, last: StreamEvent | None) -> None:
        """A lost run may have numbered past the record: go on from its ``last`` logged event and, if
        it stopped mid-stream, tell readers its text is void."""
        if last is None:
            return
        self._seq = max(self._seq, last.seq)
        if last.type in (EventType.START, EventType.DELTA):
            self.emit(EventType.RETRY, last.attempt, error=INTERRUPTED)

    def emit(self, kind: EventType, attempt: int, **fields: Any) -> None:
        """Hand over a non-delta event, after any text gathered before it."""
        self.seal()
        if kind is EventType.START:
            if fields.get("part") is None:
                self._attempt = attempt
            else:
                self._part_attempts[fields["part"]] = attempt
        self._seq += 1
        event = StreamEvent(
            type=kind, job_id=self._job_id, seq=self._seq, attempt=attempt, ts=time.time(), **fields
        )
        self._relay.add(self._feed, event.to_json())

    def delta(self, text: str, part: str | None = None) -> None:
        buffered = self._deltas.get(part)
        if buffered is None:
            self._deltas[part] = [text]
        else:
            buffered.append(text)
        self._relay.watch(self, len(text))

    def seal(self) -> None:
        """Number the text gathered so far as one ``delta`` per part and hand it over."""
        if not self._deltas:
            return
        now = time.time()
        for part, texts in self._deltas.items():
            self._seq += 1
            # Built by hand: this runs for every flush of every job, and the model adds nothing here.
            event: dict[str, Any] = {
                "v": EVENT_SCHEMA_VERSION,
                "type": EventType.DELTA.value,
                "job_id": self._job_id,
                "seq": self._seq,
                "attempt": self._attempt if part is None else self._part_attempts.get(part, 1),
                "ts": now,
                "text": "".join(texts),
            }
            if part is not None:
                event["part"] = part
            self._relay.add(self._feed, json.dumps(event, ensure_ascii=False, separators=(",", ":")))
        self._deltas = {}
