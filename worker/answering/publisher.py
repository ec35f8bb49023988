"""A job's stream events: numbered as they happen, handed to the process's relay without waiting.

The provider's read loop calls ``delta`` and ``emit``, which never await Redis. Text is gathered
per ``part`` (a scheduled run's model calls run at once) and sealed into one ``delta`` event per
part when the relay flushes, so each call's text stays whole and in order; any other event seals
the text before it first.

Numbers continue from ``seq``, the last one the job's record says its earlier runs used, so they
stay contiguous across attempts, runs and ``askq retry``.

A ``fenced`` publisher's events are kept with the job in the relay and go out only while the job's
lease is this worker's (the relay asks the lease keeper), and the job's end is not handed to the
relay at all: ``end_event`` numbers it for
the Lua call that records the result, which writes it with the events still waiting.
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
    def __init__(
        self, relay: EventRelay, job_id: str, batch: str | None, *, seq: int = 0, fenced: bool = False
    ) -> None:
        self._relay = relay
        self._job_id = job_id
        self._fence = job_id if fenced else None
        self._feed = keys.event_feed(job_id, batch)
        self._seq = seq
        self._attempt = 1
        self._part_attempts: dict[str, int] = {}
        self._deltas: dict[str | None, list[str]] = {}
        self._text_bytes = 0
        self._starts: set[tuple[str | None, int]] = set()
        """Attempts started: a call sent again without spending its attempt starts it once more."""

    def next_seq(self) -> int:
        """The number the next event will have, once the text gathered so far is sealed (and numbered)."""
        self.seal()
        return self._seq + 1

    @property
    def feed(self) -> tuple[str, str]:
        """The job's event log and its channel."""
        return self._feed

    @property
    def seq(self) -> int:
        """The last number given."""
        return self._seq

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
        self._relay.add(self._feed, self._numbered(kind, attempt, **fields), self._fence)

    async def end_event(self, kind: EventType, attempt: int, **fields: Any) -> list[str]:
        """The job's end, numbered after everything before it, with the events not yet sent by the
        relay: for the one Lua call that records the result (``withdraw_end`` if it did not)."""
        event = self._numbered(kind, attempt, **fields)
        return [*await self._relay.take(self._job_id), event]

    async def pending(self) -> list[str]:
        """The events the relay has not sent yet, taken for a Lua call that logs them with an event it
        writes itself (``give_back`` if it did not)."""
        self.seal()
        return await self._relay.take(self._job_id)

    def spent(self) -> tuple[int, int]:
        """What this run spent so far, as its events tell: attempts started, bytes of text received."""
        self.seal()
        return len(self._starts), self._text_bytes

    def discard_unsent(self) -> None:
        """The run is over: what it gathered or handed over but nobody logged is not sent after it.

        Every end that is this run's own logs its events in the same call (finish, hand-back, cancel
        acknowledgement); anything left belongs to a run that is not the job's any more, and sent
        late it would reuse numbers another run has taken."""
        self._deltas = {}
        self._relay.discard(self._job_id)

    def give_back(self, events: list[str]) -> None:
        self._relay.put_back(self._job_id, self._feed, events)

    def used(self, seq: int) -> None:
        """Event ``seq`` was written by a Lua call: the next one numbers after it."""
        self._seq = max(self._seq, seq)

    def withdraw_end(self, events: list[str]) -> None:
        """``end_event``'s events were not written (the job ended elsewhere): the end's number is given
        again, and the events before it go out through the relay after all."""
        self._seq -= 1
        self._relay.put_back(self._job_id, self._feed, events[:-1])

    def _numbered(self, kind: EventType, attempt: int, **fields: Any) -> str:
        self.seal()
        if kind is EventType.START:
            self._starts.add((fields.get("part"), attempt))
            if fields.get("part") is None:
                self._attempt = attempt
            else:
                self._part_attempts[fields["part"]] = attempt
        self._seq += 1
        event = StreamEvent(
            type=kind, job_id=self._job_id, seq=self._seq, attempt=attempt, ts=time.time(), **fields
        )
        return event.to_json()

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
                "text": (text := "".join(texts)),
            }
            self._text_bytes += len(text.encode())
            if part is not None:
                event["part"] = part
            self._relay.add(
                self._feed, json.dumps(event, ensure_ascii=False, separators=(",", ":")), self._fence
            )
        self._deltas = {}
