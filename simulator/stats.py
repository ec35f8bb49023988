"""Counters exposed by `GET /_sim/stats`."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SimStats:
    """Counts for chat-completion requests, but for the Batch API's and embeddings' own counters; admin and
    model-list calls are not counted."""

    requests_total: int = 0
    responses_by_status: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    max_waiting_for_slot: int = 0
    """Most requests waiting at once for one of ``slots`` (without a byte sent)."""
    streams_interrupted: int = 0
    """Streams ended early, without a finish_reason, for a waiting request (``interrupt_on_wait``)."""
    streams_completed: int = 0
    streams_cut: int = 0
    streams_errored: int = 0
    streams_malformed: int = 0
    """Streams with one ``data:`` line that is not a chunk (``badline``)."""
    client_disconnects: int = 0
    completion_tokens_sent: int = 0
    refused_rpm: int = 0
    """429s for ``rpm_limit``; the other 429s by cause are ``refused_tpm`` and ``refused_overload``, and
    the rest of ``responses_by_status["429"]`` are faults (``rate_429``, ``[sim:429]``)."""
    refused_tpm: int = 0
    refused_overload: int = 0
    tokens_admitted: int = 0
    """Tokens taken from the ``tpm_limit`` bucket: prompt plus reserved completion at admission, plus what
    an answer used beyond its reservation; tokens used = ``tokens_admitted - tokens_returned``."""
    tokens_returned: int = 0
    """Reserved tokens an answer did not use (all of them for a request refused with a status)."""
    attempts: Counter[str] = field(default_factory=Counter)
    batches_created: int = 0
    batch_requests: int = 0
    """Lines answered by the Batch API endpoints (not counted in ``requests_total``)."""
    embedding_requests: int = 0
    """``POST /v1/embeddings`` requests, whatever their answer (not counted in ``requests_total``)."""
    embedding_inputs: int = 0
    """Texts embedded in answered embeddings requests."""
    embedding_responses_by_status: Counter[int] = field(default_factory=Counter)
    bad_embeddings_sent: int = 0
    """Wrong embeddings responses sent for ``bad_embeddings``; its parity picks the next one's fault."""

    def request_started(self) -> None:
        self.requests_total += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def request_finished(self) -> None:
        self.in_flight -= 1

    def count_attempt(self, key: str) -> int:
        """Record one more request for `key` and return its 1-based attempt number."""
        self.attempts[key] += 1
        return self.attempts[key]

    def reset(self) -> None:
        # in_flight describes live requests, so it survives; the peak restarts from it.
        self.max_in_flight = self.in_flight
        self.max_waiting_for_slot = self.streams_interrupted = 0
        self.requests_total = self.completion_tokens_sent = self.client_disconnects = 0
        self.refused_rpm = self.refused_tpm = self.refused_overload = 0
        self.tokens_admitted = self.tokens_returned = 0
        self.streams_completed = self.streams_cut = self.streams_errored = self.streams_malformed = 0
        self.batches_created = self.batch_requests = 0
        self.embedding_requests = self.embedding_inputs = self.bad_embeddings_sent = 0
        self.embedding_responses_by_status.clear()
        self.responses_by_status.clear()
        self.attempts.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "responses_by_status": {str(code): n for code, n in sorted(self.responses_by_status.items())},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "max_waiting_for_slot": self.max_waiting_for_slot,
            "streams_interrupted": self.streams_interrupted,
            "streams_completed": self.streams_completed,
            "streams_cut": self.streams_cut,
            "streams_errored": self.streams_errored,
            "streams_malformed": self.streams_malformed,
            "client_disconnects": self.client_disconnects,
            "completion_tokens_sent": self.completion_tokens_sent,
            "refused_rpm": self.refused_rpm,
            "refused_tpm": self.refused_tpm,
            "refused_overload": self.refused_overload,
            "tokens_admitted": self.tokens_admitted,
            "tokens_returned": self.tokens_returned,
            "attempts": dict(self.attempts),
            "batches_created": self.batches_created,
            "batch_requests": self.batch_requests,
            "embedding_requests": self.embedding_requests,
            "embedding_inputs": self.embedding_inputs,
            "embedding_responses_by_status": {
                str(code): n for code, n in sorted(self.embedding_responses_by_status.items())
            },
            "bad_embeddings_sent": self.bad_embeddings_sent,
            # The simulator shares the machine with what it serves; benchmarks subtract its share.
            "process_cpu_s": time.process_time(),
        }
