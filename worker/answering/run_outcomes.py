"""What the job store tells a run: how it started, what lost runs before it spent, how its end went."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from common.metrics import AttemptOutcome
from common.sources import Source
from common.status import JobState
from common.tokens import BYTES_PER_TOKEN
from common.usage import Usage


@dataclass(frozen=True)
class LostRuns:
    """What runs of the job that were lost (worker killed, or lease lost) spent, as their logs tell."""

    attempts: int = 0
    output_tokens_est: int = 0
    """Estimated from the text they received (4 bytes a token): usage is only known at a stream's end."""

    @classmethod
    def of(cls, attempts: int, text_bytes: int) -> LostRuns:
        """What runs that made ``attempts`` and received ``text_bytes`` of text spent."""
        return cls(attempts, -(-text_bytes // BYTES_PER_TOKEN))

    def __add__(self, other: LostRuns) -> LostRuns:
        return LostRuns(self.attempts + other.attempts, self.output_tokens_est + other.output_tokens_est)


NO_LOSS = LostRuns()
"""No run of the job was lost."""


@dataclass(frozen=True)
class RunStart:
    """A job now running."""

    seq: int
    """The last event number its earlier runs used (0 for a first run)."""
    lost_run_ms: int | None
    """When the job was running already (its worker was lost): that run's start, unix ms."""
    lost: LostRuns = NO_LOSS
    """What lost runs before this start spent, counted so far."""


class NotStarted(Enum):
    FINISHED = "finished"
    """Finished already, or unknown: it must not run."""
    TAKEN = "taken"
    """Another worker claimed it since this one did: this worker's claim is gone."""


class Recorded(Enum):
    STORED = "stored"
    ENDED_ELSEWHERE = "ended elsewhere"
    """The record was missing or ended already (cancelled, or another run recorded its result)."""
    FENCED = "fenced"
    """Another worker's run owns the job: this run is a stray copy."""


@dataclass(frozen=True)
class Outcome:
    state: JobState
    attempts: int
    answer: str = ""
    error: str = ""
    error_code: str = ""
    usage: Usage | None = None
    finish_reason: str = ""
    model: str = ""
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    """From the answering attempt's request to its stream's first piece; None unless it succeeded."""
    sources: tuple[Source, ...] | None = None
    """The knowledge chunks in the job's prompt, best first; None for a job that retrieved none."""
    attempt_ends: tuple[tuple[AttemptOutcome, str], ...] = ()
    """How each of this run's attempts ended, and its HTTP status (``common.metrics``)."""
    retried: tuple[str, ...] = ()
    """Why each of this run's attempts that was tried again failed (``worker.answering.error_reasons``)."""
    failed_reason: str = ""
    """Why the job failed, as a label of ``worker.answering.error_reasons``; empty unless it failed."""
