"""What one chat call spends of the provider's limits: its token reservation, settled when its usage
comes, and what its response's rate-limit headers say (``worker.answering.pacing`` writes them).

- **Reservation.** A call reserves, in the gate's admission, what the provider counts at send: its
  prompt's estimate (``worker.answering.prompt_tokens``) plus the completion it may use
  (``max_completion_tokens`` or ``max_tokens``). When it ends, ``SETTLE`` gives back what it did not
  use, signed (an estimate that was low takes the rest): a refusal with a status before any byte
  used nothing; an answer used its reported prompt and completion; a stream broken mid-way, or an
  answer without reported usage, keeps its whole reservation (the provider may have counted it).
- **Sync.** The headers' ``reset-tokens`` says how far ahead the provider's own pace is booked: the
  settle moves askq's pace at least that far ahead (never back), so another client on the same key,
  or a limit lowered, slows askq down rather than bring 429s.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cached_property

from common.usage import Usage
from worker.answering.pacing import Pacing
from worker.answering.prompt_tokens import PromptReservation, PromptTokens
from worker.answering.provider import ChatRequest
from worker.answering.rate_headers import NO_LIMITS, rate_limits


class Reservation:
    """What one chat request asks of the token pace, estimated only if a pace may need it."""

    def __init__(self, request: ChatRequest, prompt_tokens: PromptTokens, max_tokens: int) -> None:
        self._request = request
        self._prompt_tokens = prompt_tokens
        params = request.params
        completion = params.get("max_completion_tokens", params.get("max_tokens"))
        # A line's own params are the user's: anything but a positive count reserves the default.
        if isinstance(completion, bool) or not isinstance(completion, int) or completion <= 0:
            completion = max_tokens
        self.completion: int = completion

    @cached_property
    def prompt(self) -> PromptReservation:
        return self._prompt_tokens.reserve(self._request.messages, self._request.model)

    @property
    def tokens(self) -> int:
        return self.prompt.tokens + self.completion


class CallSpend:
    """One attempt's part: what it reserved, what its response said, its settle when it ends."""

    def __init__(
        self,
        pacing: Pacing,
        endpoint: str,
        reservation: Reservation | None,
        reserved: int,
        per_token_ms: float,
        probe_id: str | None,
        learns: bool,
        send_in_s: float = 0.0,
    ) -> None:
        self._pacing = pacing
        self._endpoint = endpoint
        self._reservation = reservation
        self._reserved = reserved
        self._per_token_ms = per_token_ms
        self._probe_id = probe_id
        if probe_id is not None:
            pacing.probing()
        self._learns = learns
        self._used: int | None = None
        """Tokens the call is known to have used; None: unknown, the reservation is kept."""
        self._completion: int | None = None
        self._limits = NO_LIMITS
        self._heard_at: float | None = None
        self._send_at = time.monotonic() + send_in_s
        """Its send time: a call that ends before it (cancelled while it waited) was never sent."""

    @property
    def listens(self) -> bool:
        """Whether the response's headers matter: to learn from, or to keep the token pace in step."""
        return self._learns or self._reserved > 0

    def on_headers(self, headers: Mapping[str, str], status: int) -> None:
        """The response's headers, before its body: a 200's, or a refusal's."""
        self._heard_at = time.monotonic()
        self._limits = rate_limits(headers)
        if status >= 400:
            self._used = 0  # refused before any byte: the provider took nothing
        if not self._learns and self._probe_id is None:
            return
        # A refusal without headers says nothing of the provider's (a proxy's 502, a fault).
        heard = self._limits.known or status < 300 or self._probe_id is not None
        if heard and self._pacing.news(self._endpoint, self._limits, probe=self._probe_id is not None):
            self._pacing.spawn(self._pacing.learn(self._endpoint, self._limits, self._probe_id))
            self._probe_id = None  # freed by its LEARN

    def answered(self, usage: Usage) -> None:
        if usage.estimated:
            return  # no reported usage: the provider's count is unknown, the reservation is kept
        self._used = usage.prompt_tokens + usage.completion_tokens
        self._completion = usage.completion_tokens
        if self._reservation is not None and self._reserved > 0:  # (else no estimate was made)
            self._pacing.prompt_tokens.reported(self._reservation.prompt, usage)

    def end(self) -> None:
        """Give back what was not used; free a probe that learned nothing."""
        if self._probe_id is not None:
            self._pacing.spawn(self._pacing.free_probe(self._endpoint, self._probe_id))
        if self._reserved <= 0:
            return
        if self._heard_at is None and time.monotonic() < self._send_at:
            self._used = 0  # cancelled before its send time: the provider never saw it
        given = self._reserved - self._used if self._used is not None else 0
        ahead_ms = self._provider_ahead_ms()
        if given != 0 or ahead_ms >= 0:
            self._pacing.spawn(self._pacing.settle(self._endpoint, given, self._per_token_ms, ahead_ms))

    def _provider_ahead_ms(self) -> int:
        """How far ahead the provider's token pace is booked now, by its headers (-1: unknown): their
        reset, less the time since, less what the provider gave back of this call's reservation."""
        limits = self._limits
        if limits.reset_tokens_ms is None or limits.tokens is None or self._heard_at is None:
            return -1
        ahead = limits.reset_tokens_ms - (time.monotonic() - self._heard_at) * 1000
        if self._completion is not None and self._reservation is not None:
            ahead -= max(self._reservation.completion - self._completion, 0) * 60_000 / limits.tokens
        return round(ahead) if ahead > 0 else -1
