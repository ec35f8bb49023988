"""Every Redis key and pub/sub channel name askq uses; nothing else spells one.

askq's own keys live under ``askq:``. arq's keys (``arq:job:``, ``arq:in-progress:``, ``arq:retry:``,
``arq:result:``, ``arq:abort``) are fixed by arq and re-exported here so they too have one home.
"""

from __future__ import annotations

from arq.constants import (
    abort_jobs_ss,
    health_check_key_suffix,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

PREFIX = "askq"
QUEUE = f"{PREFIX}:queue"
BATCHES = f"{PREFIX}:batches"

ARQ_JOB_PREFIX = job_key_prefix
ARQ_IN_PROGRESS_PREFIX = in_progress_key_prefix
ARQ_RETRY_PREFIX = retry_key_prefix
ARQ_RESULT_PREFIX = result_key_prefix
ARQ_ABORT = abort_jobs_ss
"""arq's sorted set of job ids to abort; workers cancel a running job listed there."""


def queue_wake(queue: str) -> str:
    """Channel a producer publishes to after enqueueing: idle workers poll at once, not at their next poll."""
    return f"{queue}:wake"


WAKE_FROM_HEAD = b"head"
"""A wake-up saying a job went back to its old place in the queue: read it again from its head."""


SCHEDULE_QUEUE = f"{PREFIX}:schedules"
"""arq queue of scheduled summary runs, served apart so that a backlog of questions never delays one."""
SCHEDULE_HEALTH = f"{SCHEDULE_QUEUE}{health_check_key_suffix}"
"""arq's health record of a worker serving the schedules queue; it lapses when none is up."""
FINISHED = f"{PREFIX}:finished"
"""Sorted set of job ids by finish time (unix seconds): an ``answers`` schedule reads its window here."""

METRICS = f"{PREFIX}:metrics"
"""Hash of cluster-wide counters for ``GET /metrics`` (fields: ``common.metrics``): jobs ended by state,
provider attempts by outcome and status, tokens, the job latency histogram. Written by the same Lua
calls that end a job, so it never drifts from the job records. Never expires: a counter must only
rise (a scrape computes rates from it), and its fields are a few dozen, however many jobs run."""
WORKERS = f"{PREFIX}:workers"
"""Sorted set of the live questions workers: worker id -> expiry (Redis time, ms), renewed by each
worker's heartbeat and removed at its clean shutdown; ``askq_workers_alive`` counts the unexpired.
Never expires as a whole: each heartbeat drops the members long expired."""

LINEAGE = f"{PREFIX}:lineage"
"""Hash with a random token, never expiring, written by the first submit or worker: when it vanishes
or changes under a worker, Redis lost askq's data (``common.redis_health``)."""

REJECTED = f"{PREFIX}:rejected"
"""Stream of jobs a worker refused to run (unreadable, an unknown function, a payload not of askq's
schema or naming another job): arq job id and reason."""

ANSWER_FUNCTION = "answer"
"""Name of the arq job function that answers one question."""
SUMMARIZE_FUNCTION = "summarize"
"""Name of the arq job function that runs a schedule now (``askq schedule run``, or a catch-up)."""


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


def provider_cooldown(endpoint: str) -> str:
    """Set for as long as the provider at ``endpoint`` asked (429 Retry-After): every worker holds off."""
    return f"{PREFIX}:cooldown:{endpoint}"


def provider_pace(endpoint: str) -> str:
    """The next free send time (ms) under ``provider.requests_per_minute``, shared by every worker."""
    return f"{PREFIX}:pace:{endpoint}"


def provider_outage(endpoint: str) -> str:
    """Hash (``since_ms``, ``error``) held while the provider at ``endpoint`` cannot be reached: every
    worker's jobs wait, spending no attempt. The first call that reaches it deletes it."""
    return f"{PREFIX}:outage:{endpoint}"


def provider_in_flight_limit(endpoint: str) -> str:
    """Hash (``limit``, ``was``, ``reason``, ``since_ms``): the calls in flight to ``endpoint`` that every
    worker together keeps to, fitted to what the server answers at once. Absent: no limit but each
    worker's ``limits.concurrency``."""
    return f"{PREFIX}:in_flight:{endpoint}:limit"


def provider_in_flight_calls(endpoint: str) -> str:
    """Sorted set of the calls holding a place under the in-flight limit: call id -> expiry (ms), so a
    dead worker's places free themselves."""
    return f"{PREFIX}:in_flight:{endpoint}:calls"


PROVIDERS = f"{PREFIX}:providers"
"""Set of the endpoints that had an outage or an in-flight limit lately: where ``askq status`` looks."""


def schedule_record(name: str) -> str:
    """Hash of a schedule's last run: its state, fire time, output path."""
    return f"{PREFIX}:schedule:{name}"


def schedule_cron(name: str) -> str:
    """arq's name for the schedule's cron job; arq's job id for a fire is this, ':', the fire's unix ms."""
    return f"cron:schedule:{name}"


def schedule_of_cron_job(arq_job_id: str) -> tuple[str, int]:
    """(schedule name, fire unix ms) from arq's id for a cron fire of ``schedule_cron(name)``."""
    name, _, fire_ms = arq_job_id.removeprefix(schedule_cron("")).rpartition(":")
    return name, int(fire_ms)


def schedule_fire(name: str, fire_ms: int) -> str:
    """String naming the run that claimed this fire time: each tick runs once, however many workers."""
    return f"{PREFIX}:schedule:{name}:fire:{fire_ms}"


def schedule_history(name: str) -> str:
    """List of the schedule's finished runs as JSON, newest first."""
    return f"{PREFIX}:schedule:{name}:runs"


def schedule_files(name: str) -> str:
    """Hash of file path to content digest as of the schedule's last successful run (``files`` sources)."""
    return f"{PREFIX}:schedule:{name}:files"


KNOWLEDGE_BASES = f"{PREFIX}:knowledge"
"""Set of the names of the knowledge bases built in this Redis (``askq knowledge list``)."""


def knowledge_meta(name: str) -> str:
    """Hash describing the base's current version (``common.knowledge.KnowledgeMeta``); never expires."""
    return f"{PREFIX}:knowledge:{name}"


def knowledge_data(name: str, version: int) -> str:
    """Hash of one version of a base: its matrix in segments, each chunk's text and the file table
    (``common.knowledge``). A version replaced by a rebuild expires a little later, so a worker
    loading it meanwhile finishes."""
    return f"{PREFIX}:knowledge:{name}:v{version}"


def knowledge_versions(name: str) -> str:
    """Counter of the base's versions: each build takes the next, so a worker's copy of an older one
    is never mistaken for the current."""
    return f"{PREFIX}:knowledge:{name}:versions"


def knowledge_build_lock(name: str) -> str:
    """String held while a build of the base runs: two builds at once would each replace the other's."""
    return f"{PREFIX}:knowledge:{name}:building"


def job_events_channel(job_id: str) -> str:
    """Pub/sub channel of a scheduled run's events (a run has no batch); see ``event_feed``."""
    return f"{PREFIX}:events:{job_id}"


def job_log(job_id: str) -> str:
    """Stream of a scheduled run's events (a run has no batch); see ``event_feed``."""
    return f"{PREFIX}:log:{job_id}"


def batch_log(batch: str) -> str:
    """Stream of every event of every job of a batch: its event log."""
    return f"{PREFIX}:batch:{batch}:log"


def batch_events_channel(batch: str) -> str:
    """Pub/sub channel carrying the same entries as the batch's log, live only."""
    return f"{PREFIX}:batch:{batch}:events"


def event_feed(job_id: str, batch: str | None) -> tuple[str, str]:
    """Where a job's events go: its batch's log and channel, or a scheduled run's own."""
    if batch is None:
        return job_log(job_id), job_events_channel(job_id)
    return batch_log(batch), batch_events_channel(batch)


LOG_FIELD = "events"
"""The one field of an event-log entry: a JSON array of events, the same bytes the channel carries."""


def arq_job(job_id: str) -> str:
    return f"{ARQ_JOB_PREFIX}{job_id}"


def arq_in_progress(job_id: str) -> str:
    """arq's claim on a running job; askq keeps it short-lived (see ``worker.queue.leases``)."""
    return f"{ARQ_IN_PROGRESS_PREFIX}{job_id}"


def arq_retry(job_id: str) -> str:
    """arq's count of the job's starts."""
    return f"{ARQ_RETRY_PREFIX}{job_id}"


OPENAI_BATCHES = f"{PREFIX}:openai:batches"
"""Sorted set of the OpenAI Batch API's batch ids by creation time (ms): ``GET /v1/batches`` pages it,
newest first. It has no expiry of its own: a listing drops the ids whose batch expired."""


def openai_file(file_id: str) -> str:
    """Hash of a file of the OpenAI Batch API (``/v1/files``): its id, size, name, purpose, creation and
    expiry times."""
    return f"{PREFIX}:openai:file:{file_id}"


def openai_file_parts(file_id: str) -> str:
    """List of a file's content (an upload, or a batch's output or error file as it was written when the
    batch ended) in parts of at most 1 MiB, in order: any server process reads it, and none holds a
    whole file in one Redis value."""
    return f"{PREFIX}:openai:file:{file_id}:parts"


def openai_file_draft(file_id: str, claim: str) -> str:
    """List of a batch's output or error file's parts while the finalize that claimed it as ``claim``
    writes them; renamed to ``openai_file_parts`` in the transaction that ends the batch, so two
    processes finalizing at once never write one file twice. Expires with the retention."""
    return f"{PREFIX}:openai:file:{file_id}:draft:{claim}"


def openai_batch(batch_id: str) -> str:
    """Hash of what the OpenAI Batch API says of a batch beyond askq's counters: its input file,
    endpoint, metadata, and the times it failed, was cancelled or completed. The askq batch it runs as
    has the batch id for its name."""
    return f"{PREFIX}:openai:batch:{batch_id}"


def openai_batch_lease(batch_id: str) -> str:
    """String held, with a TTL of ``limits.lease_s``, by the server creating the batch while it checks
    and enqueues the input file (renewed every third of that): a batch still validating without it
    had its creator die mid-submit, and the next read fails it (``server.openai_validating``)."""
    return f"{PREFIX}:openai:batch:{batch_id}:lease"
