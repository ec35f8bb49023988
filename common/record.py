"""Field names of the per-job and per-batch Redis hashes, written by one side and read by the other."""

from __future__ import annotations

from typing import Final

from common.status import JobState

# Job record (keys.job_record): one hash per job.
BATCH: Final = "batch"
ITEM_ID: Final = "item_id"
QUESTION: Final = "question"
JOB_TYPE: Final = "job_type"
CUSTOM_ID: Final = "custom_id"
"""Set when the item came from an OpenAI Batch API line, so results can be written back in that format."""
REQUEST: Final = "request"
"""JSON of the line's own messages, model and params (OpenAI Batch API lines), so a retry can rebuild it."""
STATE: Final = "state"
ANSWER: Final = "answer"
ERROR: Final = "error"
ERROR_CODE: Final = "error_code"
ATTEMPTS: Final = "attempts"
USAGE: Final = "usage"
MODEL: Final = "model"
FINISH_REASON: Final = "finish_reason"
SOURCES: Final = "sources"
"""JSON array of the knowledge chunks in the job's prompt (``common.sources``); set when retrieved."""
LATENCY_MS: Final = "latency_ms"
FIRST_TOKEN_MS: Final = "first_token_ms"
"""The answering attempt's time from its request to its stream's first piece (ms); set when known."""
RETRIED: Final = "retried"
"""JSON array of the reasons its last run's attempts were retried, in order (``error_reasons`` labels, at
most ``RETRIED_KEPT``): the job page's timeline once the job's events have left the log."""
RETRIED_KEPT: Final = 20
ENQUEUED_AT: Final = "enqueued_at"
STARTED_AT: Final = "started_at"
FINISHED_AT: Final = "finished_at"
SEQ: Final = "seq"
"""The last event number the job's runs have used or reserved; the next writer numbers on from it."""
LOG_FROM: Final = "log_from"
"""Redis time (ms) before the job's first event: where a reader starts in the batch's log."""
STOPPING: Final = "stopping"
"""Set by ``askq cancel`` on a running job until its run says it stopped: until then the run may have
logged events past ``seq``, so ``askq retry`` lets that run go on rather than number after ``seq``."""
END_ENTRY: Final = "end_entry"
"""The id of the batch log's entry that holds the job's final event, written in the call that logs it: a
client resuming after that entry had the end from the log (``producer.batch_tail``)."""
OWNER: Final = "owner"
"""The lease token of the worker whose run the record follows: a run's end or hand-back is refused
when another worker's token is here (``askq worker`` only; arq's own worker sets none)."""
LOST_ATTEMPTS: Final = "lost_attempts"
"""Provider attempts started by runs that were lost (their worker died or lost its lease), as their
logged events tell; ``attempts`` counts them too once the job ends."""
LOST_OUTPUT_TOKENS_EST: Final = "lost_output_tokens_est"
"""An estimate (4 bytes of text a token) of the completion tokens lost runs received before they stopped."""
LOST_USAGE_EST: Final = "lost_usage_est"
"""Set at the job's end when runs were lost: JSON like ``usage``, an estimate of what they spent."""
COST_USD: Final = "cost_usd"
"""What the job's calls cost, in USD as a decimal string (``f"{nano_usd / 1e9:.9f}"``, exact to the
nano-dollar); absent when it is unknown (no price for its model in ``prices:``), never a zero."""
CACHED: Final = "cached"
"""``1`` when the job's answer came from the answer cache: no call, no cost."""

RESULT_FIELDS: Final = (QUESTION, REQUEST, CUSTOM_ID, ANSWER, ERROR, USAGE, MODEL, SOURCES)
"""The fields that can exceed 64 bytes (text, JSON, names the user or the provider chose). When a
job ends they move to its batch's results hash (``keys.batch_results``), so that Redis keeps the
record as a compact listpack; ``common.stored_jobs.read_jobs`` puts the two parts together."""
ID_FIELDS: Final = (BATCH, ITEM_ID)
"""Also long when the user names them so, and spelled by the job id (``BATCH:ITEM_ID``): an ended
job keeps them nowhere, and a reader takes them from the id."""

# Batch record (keys.batch_record): metadata, then one counter per state and per token kind.
CREATED_AT: Final = "created_at"
SOURCE: Final = "source"
TOTAL: Final = "total"
PROMPT_TOKENS: Final = "prompt_tokens"
COMPLETION_TOKENS: Final = "completion_tokens"
LOST_PROMPT_TOKENS_EST: Final = "lost_prompt_tokens_est"
LOST_COMPLETION_TOKENS_EST: Final = "lost_completion_tokens_est"
"""Estimated tokens spent by runs that were lost, over the batch: not in the provider-reported counters."""
TRUNCATED: Final = "truncated"
"""Answers that ended at ``max_tokens`` (finish_reason ``length``): complete as stored, cut as written."""
USAGE_ESTIMATED: Final = "usage_estimated"
"""Jobs whose usage askq estimated, the provider having reported none: their estimates are in
``prompt_tokens`` and ``completion_tokens``, which are then approximate."""
LOG_TRIMMED_TO: Final = "log_trimmed_to"
"""The floor of the last trim that dropped entries from the batch's log (an entry id, or its ms): the
log holds every entry from there on (``common.live_log``); absent while it was never trimmed."""
ERRORS_RETRIED: Final = "errors:retried:"
"""With a reason after it (``HTTP 429``, ``timeout``: ``worker.answering.error_reasons``): the batch's
provider attempts that failed that way and were tried again, counted when their job ends."""
ERRORS_FAILED: Final = "errors:failed:"
"""With a reason after it: the batch's jobs that failed that way (a job run again by ``askq retry``
counts at each failure)."""
COST_NUSD: Final = "cost_nusd"
"""The batch's cost so far in nano-USD (1e-9 USD, an integer: exact, and ``HINCRBY`` adds it): the sum
of its priced jobs' ``cost_usd``."""
UNPRICED: Final = "unpriced"
"""Jobs of the batch that used tokens of a model with no price: their cost is unknown, not in
``cost_nusd``."""
CACHED_JOBS: Final = "cached"
"""Jobs of the batch answered from the answer cache."""
NO_CACHE: Final = "no_cache"
"""``1`` when the batch was submitted with ``--no-cache``: its jobs, retried too, bypass the cache."""
BUDGET_CANCELLED: Final = "budget_cancelled"
"""Jobs of the batch cancelled because its budget was spent (their ``error_code`` is ``budget``)."""
STATE_COUNTERS: Final = tuple(state.value for state in JobState)

# Batch budget (keys.batch_budget): amounts in nano-USD.
BUDGET_CAP_NUSD: Final = "cap_nusd"
"""What the batch may spend."""
BUDGET_SPENT_NUSD: Final = "spent_nusd"
"""What its settled calls spent, and the holds of calls whose worker died (they may have been billed)."""
BUDGET_HELD_NUSD: Final = "held_nusd"
"""The worst cases reserved by the calls in flight (``keys.batch_budget_holds``), not yet settled."""
BUDGET_SPENT_MS: Final = "spent_ms"
"""Redis time (ms) the budget ran out: set by the first call that could not fit with nothing held;
raising the cap clears it."""
BUDGET_EXHAUSTED_REASON: Final = "exhausted_reason"
"""Why the budget stopped the batch, when not the sum (a model with no price, say)."""
