"""One question answered: attempts under the semaphore, retried by policy, every chunk published."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog
from tenacity import RetryCallState

from common.config import AskqConfig
from common.errors import ProviderError
from common.events import EventType
from common.payload import JobPayload
from common.usage import Usage
from worker.answering.gate import ProviderGate
from worker.answering.provider import ChatProvider, ChatRequest
from worker.answering.publisher import EventPublisher
from worker.answering.retry import retrying

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    usage: Usage
    attempts: int


def build_request(payload: JobPayload, config: AskqConfig) -> ChatRequest:
    job_type = config.job_type(payload.job_type)
    if payload.messages is not None:
        messages = [message.model_dump() for message in payload.messages]
    else:
        messages = [
            {"role": "system", "content": job_type.system_prompt},
            {"role": "user", "content": payload.question},
        ]
    params = {
        "temperature": job_type.temperature
        if job_type.temperature is not None
        else config.provider.temperature,
        "max_tokens": job_type.max_tokens or config.provider.max_tokens,
        **payload.params,
    }
    if "max_completion_tokens" in params:
        params.pop("max_tokens")  # the API refuses both at once
    model = payload.model or job_type.model or config.provider.model
    return ChatRequest(messages=messages, model=model, params=params)


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
        self._part = part
        # A scheduled run's calls share one log: each of their events says which call it is.
        self._labels: dict[str, str] = {"part": part} if part is not None else {}

    @property
    def attempts(self) -> int:
        return self._attempts

    async def answer(self, request: ChatRequest) -> Answer:
        async for attempt in retrying(self._config.retry, self._on_retry):
            with attempt:
                self._attempts = attempt.retry_state.attempt_number
                return await self._gated_attempt(request)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _gated_attempt(self, request: ChatRequest) -> Answer:
        while True:
            async with self._semaphore:
                admission = await self._gate.admit()
                if admission.cooldown_s <= 0:
                    if admission.send_in_s > 0:
                        await asyncio.sleep(admission.send_in_s)  # the send time reserved for this attempt
                    try:
                        return await self._attempt(request)
                    except ProviderError as exc:
                        await self._gate.refused(exc)
                        raise
            # The provider asked every client to hold off; wait without holding a slot.
            log.info("provider cooling down; waiting", wait_s=round(admission.cooldown_s, 3))
            await asyncio.sleep(admission.cooldown_s)

    async def _attempt(self, request: ChatRequest) -> Answer:
        started = time.monotonic()
        self._publisher.emit(EventType.START, self._attempts, model=request.model, **self._labels)
        parts: list[str] = []
        async for piece in self._provider.astream(request):
            if piece.text:
                parts.append(piece.text)
                self._publisher.delta(piece.text, self._part)
            elif piece.finish_reason is not None:
                log.debug(
                    "attempt finished",
                    attempt=self._attempts,
                    latency_ms=round((time.monotonic() - started) * 1000, 1),
                )
                return Answer("".join(parts), piece.finish_reason, piece.usage or Usage(), self._attempts)
        raise AssertionError("unreachable: astream ends with a finish piece or raises")  # pragma: no cover

    async def _on_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait_s = state.next_action.sleep if state.next_action is not None else 0.0
        reason = str(error) if isinstance(error, ProviderError) else repr(error)
        log.warning("retrying", attempt=state.attempt_number, retry_in_s=round(wait_s, 3), error=reason)
        self._publisher.emit(
            EventType.RETRY, state.attempt_number, error=reason, retry_in_s=round(wait_s, 3), **self._labels
        )
