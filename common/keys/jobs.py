"""A job's record and its batch's: the record, the counters, the items, results and timings."""

from __future__ import annotations

from common.keys.cluster import PREFIX

__all__ = [
    "batch_first_tokens",
    "batch_halt",
    "batch_items",
    "batch_latencies",
    "batch_live",
    "batch_record",
    "batch_results",
    "job_id",
    "job_record",
    "split_job_id",
]


def job_id(batch: str, item_id: str) -> str:
    """A job's id is derived from its batch and item, so resubmitting a file enqueues nothing new."""
    return f"{batch}:{item_id}"


def job_record(job_id: str) -> str:
    """Hash holding one job's question, state, answer, error, usage and timings."""
    return f"{PREFIX}:job:{job_id}"


def batch_record(batch: str) -> str:
    """Hash holding a batch's metadata and its counters by state and tokens."""
    return f"{PREFIX}:batch:{batch}"


def batch_items(batch: str) -> str:
    """List of the batch's job ids in input order."""
    return f"{PREFIX}:batch:{batch}:items"


def batch_results(batch: str) -> str:
    """Hash of job id to a JSON object: the bulky fields (question, answer, ...) of the batch's finished
    jobs, moved out of their records so that each record stays small (see ``common.stored_jobs``)."""
    return f"{PREFIX}:results:{batch}"


def split_job_id(job_id: str) -> tuple[str, str]:
    """(batch, item id) of a job id: a batch name has no ':'. A scheduled run's id gives a name no
    batch has results under."""
    batch, _, item_id = job_id.partition(":")
    return batch, item_id


def batch_live(batch: str) -> str:
    """Sorted set of the batch's live jobs (started or queued again by ``askq retry``, not ended for
    good): job id -> Redis time (ms) of the first of its events that may still be needed. The batch's
    log is trimmed below the lowest."""
    return f"{PREFIX}:batch:{batch}:live"


def batch_latencies(batch: str) -> str:
    """List of finished jobs' latencies in milliseconds, for percentiles."""
    return f"{PREFIX}:batch:{batch}:latency_ms"


def batch_first_tokens(batch: str) -> str:
    """List of succeeded jobs' times to first token in milliseconds (their answering attempt's, from
    its request to the stream's first piece), for percentiles."""
    return f"{PREFIX}:batch:{batch}:first_token_ms"


def batch_halt(batch: str) -> str:
    """String set when the provider refused the API key for a job of the batch: why its others stop."""
    return f"{PREFIX}:batch:{batch}:halt"
