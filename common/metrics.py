"""The fields of the cluster-wide metrics hash (``keys.METRICS``) and the histogram's buckets.

The worker's and the producer's Lua write these fields in the calls that end a job; the server reads
them (``producer.metrics``) for ``GET /metrics``. Every field is an integer counter that only rises:

- ``jobs:STATE``: jobs that ended in STATE (succeeded, failed, cancelled). A job that ``askq retry``
  runs again ends again, and counts again.
- ``attempts:OUTCOME:STATUS``: provider attempts of ended runs, by how each ended (``AttemptOutcome``)
  and the HTTP status it got (``NO_STATUS`` when none: a cut stream, a timeout, no connection). A
  run's attempts count in the call that records its end: the job's end, the acknowledgement of
  ``askq cancel`` by a run that went on to its end, or (``lost``) the call that records a run lost,
  handed back by its stopping worker, or stopped midway by ``askq cancel``.
- ``tokens:prompt``, ``tokens:completion``: the provider's usage of ended jobs, as the batch counters
  add it up, and of runs that answered after ``askq cancel`` ended their job. A run stopped midway
  got no usage from the provider: its tokens are only estimated, in the batch's lost estimates.
- ``latency:le:BOUND``: ended jobs whose latency fell in the bucket up to BOUND seconds (and above the
  bound below it): one field per observation, made cumulative when read. ``latency:sum_us``: their
  sum in microseconds (an integer: HINCRBYFLOAT would round differently on every worker). A job that
  made no attempt (refused unrun, or given up after its runs were lost) has no latency.
"""

from __future__ import annotations

import bisect
from enum import StrEnum

from common.errors import ProviderError

JOBS = "jobs:"
ATTEMPTS = "attempts:"
TOKENS_PROMPT = "tokens:prompt"
TOKENS_COMPLETION = "tokens:completion"
LATENCY_BUCKET = "latency:le:"
LATENCY_SUM_US = "latency:sum_us"

LATENCY_BOUNDS_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Upper bounds of the latency buckets: a streamed answer takes from a fraction of a second to
minutes (a long answer, retries with backoff, a provider's queue)."""
INF = "+Inf"
NO_STATUS = "none"
"""The status label of an attempt that got no HTTP status."""
OK_STATUS = "200"


class AttemptOutcome(StrEnum):
    OK = "ok"
    """The attempt answered."""
    RETRY = "retry"
    """It failed, and another attempt followed."""
    FAILED = "failed"
    """It failed, and the job with it (not retryable, attempts used up, or the job's time up)."""
    LOST = "lost"
    """Made by a run whose worker was lost or stopped, or that ``askq cancel`` stopped midway: how it
    ended is not known."""


def job_ended(state: str) -> str:
    return f"{JOBS}{state}"


def attempt(outcome: AttemptOutcome, status: str) -> str:
    return f"{ATTEMPTS}{outcome.value}:{status}"


def status_of(error: BaseException) -> str:
    """The status label of an attempt that failed with ``error``."""
    code = error.status_code if isinstance(error, ProviderError) else None
    return str(code) if code is not None else NO_STATUS


def bound_label(bound: float) -> str:
    return f"{bound:g}"


def latency_bucket(seconds: float) -> str:
    """The field of the one bucket an observation of ``seconds`` is counted in."""
    index = bisect.bisect_left(LATENCY_BOUNDS_S, seconds)
    return LATENCY_BUCKET + (bound_label(LATENCY_BOUNDS_S[index]) if index < len(LATENCY_BOUNDS_S) else INF)


def latency_fields(latency_ms: float) -> dict[str, int]:
    """The increments that observe one job's latency."""
    return {latency_bucket(latency_ms / 1000): 1, LATENCY_SUM_US: round(latency_ms * 1000)}
