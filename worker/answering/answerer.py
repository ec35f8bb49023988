"""One question answered: attempts under the semaphore, retried by policy, every chunk published."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from typing import Any

import structlog
from tenacity import RetryCallState

from common.config import AskqConfig
from common.errors import ProviderError, ProviderUnreachableError, StreamCutError
from common.events import EventType
from common.metrics import NO_STATUS, OK_STATUS, AttemptOutcome, status_of
from common.tokens import estimated_usage
from common.usage import Usage
from worker.answering.admission import Admission
from worker.answering.deadline import Deadline
from worker.answering.error_reasons import INTERNAL, error_reason
from worker.answering.gate import ProviderGate
from worker.answering.in_flight import PLACE_POLL_S, Call
from worker.answering.outage import Outage, backoff_s
from worker.answering.provider import ChatProvider, ChatRequest
from worker.answering.publisher import EventPublisher
from worker.answering.retry import retrying
from worker.answering.spend import CallSpend, Reservation
from worker.answering.sse import StreamPiece

log = structlog.get_logger(__name__)


CUT_FOR_ANOTHER = "the provider ended the stream early for another request; sent again, no attempt spent"
QUEUED = "the provider's slots are busy: waiting in its queue"
LEARNING = "learning the provider's rate limits from its first answer"


class _CutForAnother(Exception):
    """The server ended this stream for another request: send it again, spending nothing."""


class _SendAgain(Exception):
    """The call was refused by an outage that has ended since it was sent: send it again, unspent."""


@dataclass
class _Waits:
    """What one attempt has waited for so far: a provider away (how often, since when), a place."""

    outages: int = 0
    learning: int = 0
    since_ms: int | None = None
    """The earliest beginning of an outage this attempt saw (an outage's key may lapse and start anew)."""
    said: str = ""
    """The reason of the last ``waiting`` event: each is said once."""

    def overdue(self, outage: Outage, outage_wait_s: float) -> bool:
        self.since_ms = min(self.since_ms or outage.since_ms, outage.since_ms)
        return outage.age_ms + (outage.since_ms - self.since_ms) > outage_wait_s * 1000


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    usage: Usage
    attempts: int
    first_token_ms: float | None = None
    """From the request to the stream's first piece (its first text, or its end for an empty answer)."""


class Answerer:
    """Answers one job: holds a semaphore slot for each attempt only, never while backing off."""

    def __init__(
        self,
        provider: ChatProvider,
        semaphore: asyncio.Semaphore,
        config: AskqConfig,
        publisher: EventPublisher,
        gate: ProviderGate,
        part: str | None = None,
    ) -> None:
        self._provider = provider
        self._semaphore = semaphore
        self._config = config
        self._publisher = publisher
        self._gate = gate
        self._attempts = 0
        self._ends: list[tuple[AttemptOutcome, str]] = []
        self._retried: list[str] = []
        self._deadline = Deadline(None, 0)
        self._part = part
        # A scheduled run's calls share one log: each of their events says which call it is.
        self._labels: dict[str, str] = {"part": part} if part is not None else {}

    @property
    def attempts(self) -> int:
        return self._attempts

    @property
    def attempt_ends(self) -> tuple[tuple[AttemptOutcome, str], ...]:
        """How each attempt so far ended, and its HTTP status: what ``askq_provider_attempts_total``
        counts once the job's end is recorded."""
        return tuple(self._ends)

    @property
    def retried(self) -> tuple[str, ...]:
        """Why each attempt that was tried again failed, as ``error_reasons`` labels it."""
        return tuple(self._retried)

    async def answer(self, request: ChatRequest, deadline: Deadline | None = None) -> Answer:
        """``deadline``: the job's own, which waits for a provider that is away push back."""
        if deadline is not None:
            self._deadline = deadline
        try:
            async for attempt in retrying(self._config.retry, self._on_retry):
                with attempt:
                    self._attempts = attempt.retry_state.attempt_number
                    answer = await self._gated_attempt(request)
                    self._ends.append((AttemptOutcome.OK, OK_STATUS))
                    return answer
        except BaseException as exc:
            # The last attempt failed and the job with it (a timeout's cancel included): retries
            # were counted as they were announced.
            if self._attempts > len(self._ends):
                self._ends.append((AttemptOutcome.FAILED, status_of(exc)))
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _gated_attempt(self, request: ChatRequest) -> Answer:
        """One attempt, however long it waits (for a cooldown, a place, a provider that is away); a
        provider away, or a stream cut for another request, sends it again without spending it."""
        waits = _Waits()
        reservation = self._gate.reservation(request)
        while True:
            async with self._semaphore:
                admission = await self._gate.admit(reservation)
                pause, probe = self._pause(admission, waits)
                if pause is None:
                    try:
                        return await self._call(request, admission, reservation)
                    except ProviderUnreachableError as exc:
                        pause = await self._unreachable(exc, waits)
                    except _SendAgain:
                        continue
                    except _CutForAnother:
                        self._publisher.emit(
                            EventType.RETRY,
                            self._attempts,
                            error=CUT_FOR_ANOTHER,
                            retry_in_s=0,
                            **self._labels,
                        )
                        continue
                    finally:
                        if probe:
                            self._gate.outage.end_probe()
            # Waits hold no slot: the others of this process go on meanwhile.
            await pause

    def _pause(self, admission: Admission, waits: _Waits) -> tuple[Any, bool]:
        """(what to wait for, or None to call now; whether this call is the process's probe)."""
        if admission.cooldown_s > 0:
            # The provider asked every client to hold off.
            log.info("provider cooling down; waiting", wait_s=round(admission.cooldown_s, 3))
            return asyncio.sleep(admission.cooldown_s), False
        if admission.outage is not None:
            outage = admission.outage
            self._gate.outage.saw(outage)
            if waits.overdue(outage, self._config.provider.outage_wait_s):
                raise outage.too_long()
            if self._gate.outage.take_probe():
                return None, True  # this job calls, to see whether the provider is back
            self._waiting(waits, f"the provider is unreachable since {outage.clock()}: {outage.error}")
            return self._outage_wait(waits), False
        if admission.full:
            self._waiting(
                waits, f"askq keeps {admission.limit} calls in flight to the provider; waiting for a place"
            )
            # Not the job's own time: its deadline leaves the wait for a place out.
            return self._deadline.excused(self._gate.in_flight.wait_for_place(), PLACE_POLL_S), False
        if admission.learning:  # one call goes first: its headers pace the others
            waits.learning += 1
            if waits.learning > 1:  # said when it lasts: a quick probe is back before anyone reads it
                self._waiting(waits, LEARNING)
            return self._deadline.excused(self._gate.pacing.learned(waits.learning), PLACE_POLL_S), False
        return None, False

    async def _unreachable(self, error: ProviderUnreachableError, waits: _Waits) -> Any:
        """The provider cannot be reached: every worker is told; this attempt waits, unspent."""
        outage = await self._gate.unreachable(error)
        self._gate.outage.saw(outage)
        if waits.overdue(outage, self._config.provider.outage_wait_s):
            raise outage.too_long() from error
        self._waiting(waits, f"the provider is unreachable since {outage.clock()}: {outage.error}")
        return self._outage_wait(waits)

    def _outage_wait(self, waits: _Waits) -> Any:
        """The next wait for the provider to come back; the job's deadline does not count it."""
        waits.outages += 1
        wait_s = backoff_s(waits.outages - 1)
        return self._deadline.excused(self._gate.outage.wait(wait_s), wait_s)

    def _waiting(self, waits: _Waits, reason: str) -> None:
        if reason != waits.said:
            waits.said = reason
            self._publisher.emit(EventType.WAITING, self._attempts, reason=reason, **self._labels)

    async def _call(self, request: ChatRequest, admission: Admission, reservation: Reservation) -> Answer:
        """The call itself, counted in flight (holding its place, if a limit is in force), its
        reservation settled when it ends."""
        in_flight = self._gate.in_flight
        call = in_flight.begin(admission.place, admission.limit, admission.used, admission.send_in_s)
        spend = self._gate.spend(admission, reservation)
        try:
            if admission.send_in_s > 0:
                await asyncio.sleep(admission.send_in_s)  # the send time reserved for this attempt
            in_flight.watch(call, self._queued)
            try:
                return await self._attempt(request, call, spend)
            except ProviderUnreachableError as exc:
                if self._gate.outage.predates_end(call.sent):
                    raise _SendAgain from exc  # the outage it met is over: no new one, no attempt
                raise
            except StreamCutError as exc:
                if exc.events > 0 and in_flight.waiting(call) > 0 and await in_flight.cut():
                    # Cut while another call waited for its first byte, again: a server that
                    # interrupts the running request for a waiting one.
                    raise _CutForAnother from exc
                await self._gate.refused(exc)
                raise
            except ProviderError as exc:
                if exc.status_code is not None:
                    # It answered, if not with an answer. (A stream broken mid-way proves nothing:
                    # it may have begun before the provider went away.)
                    await self._gate.reachable(call.sent)
                await self._gate.refused(exc)
                raise
        finally:
            in_flight.end(call)
            spend.end()

    def _queued(self) -> None:
        self._publisher.emit(EventType.WAITING, self._attempts, reason=QUEUED, **self._labels)

    async def _attempt(self, request: ChatRequest, call: Call, spend: CallSpend) -> Answer:
        started = time.monotonic()
        self._publisher.emit(EventType.START, self._attempts, model=request.model, **self._labels)
        parts: list[str] = []
        on_headers = spend.on_headers if spend.listens else None
        async with contextlib.aclosing(self._provider.astream(request, on_headers)) as pieces:
            # Waiting for the first byte is the server's queue, not this job's answer: left out of
            # the job's deadline (first_byte_timeout_s bounds it).
            first_byte_s = self._config.provider.first_byte_timeout_s
            first = await self._deadline.excused(anext(pieces), first_byte_s)
            first_token_ms = (time.monotonic() - started) * 1000
            self._gate.in_flight.arrived(call)
            await self._gate.reachable(call.sent)
            answer = self._take(first, parts, request, started)
            async for piece in pieces:
                answer = answer or self._take(piece, parts, request, started)
            if answer is not None:
                spend.answered(answer.usage)
                return replace(answer, first_token_ms=first_token_ms)
        raise AssertionError("unreachable: astream ends with a finish piece or raises")  # pragma: no cover

    def _take(
        self, piece: StreamPiece, parts: list[str], request: ChatRequest, started: float
    ) -> Answer | None:
        """One piece of the stream: its text published, or the answer when it is the last."""
        if piece.text:
            parts.append(piece.text)
            self._publisher.delta(piece.text, self._part)
            return None
        if piece.finish_reason is None:
            return None
        log.debug(
            "attempt finished",
            attempt=self._attempts,
            latency_ms=round((time.monotonic() - started) * 1000, 1),
        )
        text = "".join(parts)
        # No usage chunk (llama-cpp-python ignores stream_options): an estimate, marked so.
        usage = piece.usage or estimated_usage(request.messages, text)
        return Answer(text, piece.finish_reason, usage, self._attempts)

    async def _on_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait_s = state.next_action.sleep if state.next_action is not None else 0.0
        reason = str(error) if isinstance(error, ProviderError) else repr(error)
        self._ends.append((AttemptOutcome.RETRY, status_of(error) if error is not None else NO_STATUS))
        self._retried.append(error_reason(error) if error is not None else INTERNAL)
        log.warning("retrying", attempt=state.attempt_number, retry_in_s=round(wait_s, 3), error=reason)
        self._publisher.emit(
            EventType.RETRY, state.attempt_number, error=reason, retry_in_s=round(wait_s, 3), **self._labels
        )
