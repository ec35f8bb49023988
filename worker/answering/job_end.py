"""What a job's end writes: its record's fields, its batch's counters and the cluster's metrics, all
worked out from the run's ``Outcome`` (and what lost runs before it spent) for the job store's one
Lua call to write together."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass

from common import metrics, record
from common.sources import sources_json
from common.status import JobState
from common.usage import CUT_AT_MAX_TOKENS, Usage
from worker.answering.run_outcomes import LostRuns, Outcome


@dataclass(frozen=True)
class EndWrites:
    fields: dict[str, str]
    """The job record's fields."""
    counters: dict[str, int]
    """What the end adds to its batch's counters beyond the state's own."""
    metrics: dict[str, int]
    """What it adds to the cluster-wide counters (``common.metrics``)."""


def end_writes(
    outcome: Outcome, lost: LostRuns, prompt_tokens_per_attempt: int, seq: int | None
) -> EndWrites:
    """The writes of the end ``outcome``. ``lost``: what earlier runs that were lost spent; their
    attempts count in ``attempts``, their tokens, estimated (``prompt_tokens_per_attempt`` for each of
    their attempts), apart from the provider's usage. ``seq``: the run's last event number, if known."""
    usage = outcome.usage or Usage()
    fields = {
        record.ANSWER: outcome.answer,
        record.ERROR: outcome.error,
        record.ERROR_CODE: outcome.error_code,
        record.ATTEMPTS: str(outcome.attempts + lost.attempts),
        record.USAGE: usage.to_json(),
        record.FINISH_REASON: outcome.finish_reason,
        record.MODEL: outcome.model,
        record.LATENCY_MS: f"{outcome.latency_ms:.1f}",
        record.FINISHED_AT: str(time.time()),
    }
    if outcome.first_token_ms is not None:
        # Kept in the record: the job's events (its live timeline) leave the log after its end.
        fields[record.FIRST_TOKEN_MS] = f"{outcome.first_token_ms:.1f}"
    if outcome.sources is not None:
        fields[record.SOURCES] = sources_json(outcome.sources)
    if outcome.retried:  # bounded labels, not provider text: a few bytes a retried job, none otherwise
        fields[record.RETRIED] = json.dumps(list(outcome.retried[: record.RETRIED_KEPT]))
    counters = {
        record.PROMPT_TOKENS: usage.prompt_tokens,
        record.COMPLETION_TOKENS: usage.completion_tokens,
        record.TRUNCATED: int(outcome.finish_reason == CUT_AT_MAX_TOKENS),
        record.USAGE_ESTIMATED: int(bool(usage.estimated)),
        **error_counters(outcome),
    }
    if lost.attempts or lost.output_tokens_est:
        spent = Usage(
            prompt_tokens=lost.attempts * prompt_tokens_per_attempt,
            completion_tokens=lost.output_tokens_est,
            total_tokens=lost.attempts * prompt_tokens_per_attempt + lost.output_tokens_est,
        )
        fields[record.LOST_USAGE_EST] = spent.to_json()
        counters[record.LOST_PROMPT_TOKENS_EST] = spent.prompt_tokens
        counters[record.LOST_COMPLETION_TOKENS_EST] = spent.completion_tokens
    if seq is not None:
        fields[record.SEQ] = str(seq)
    return EndWrites(fields, counters, ended_metrics(outcome))


def error_counters(outcome: Outcome) -> dict[str, int]:
    """What the job's end adds to its batch's errors by reason: its run's retried attempts, and its
    failure. Counted once, with the end (a run lost or handed back leaves no reasons: its attempts
    count as lost runs' do)."""
    counts = Counter(record.ERRORS_RETRIED + reason for reason in outcome.retried)
    if outcome.state is JobState.FAILED:
        counts[record.ERRORS_FAILED + (outcome.failed_reason or "unknown")] += 1
    return dict(counts)


def ended_metrics(outcome: Outcome) -> dict[str, int]:
    """What the job's end adds to the cluster-wide counters (``common.metrics``). Lost runs'
    attempts are not in it: they counted when each run was found lost or handed back."""
    counts = Counter(spent_metrics(outcome))
    counts[metrics.job_ended(outcome.state.value)] += 1
    if outcome.attempts:
        # A job refused unrun (or given up before a run) has no latency to observe.
        counts.update(metrics.latency_fields(outcome.latency_ms))
    return dict(counts)


def spent_metrics(outcome: Outcome) -> dict[str, int]:
    """What a run that ran to its end spent: its attempts, by how each ended, and the provider's usage."""
    usage = outcome.usage or Usage()
    counts = Counter(
        {metrics.TOKENS_PROMPT: usage.prompt_tokens, metrics.TOKENS_COMPLETION: usage.completion_tokens}
    )
    counts.update(metrics.attempt(end, status) for end, status in outcome.attempt_ends)
    return dict(counts)
