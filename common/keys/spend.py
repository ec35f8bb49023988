"""What a batch may spend and what it need not spend again: its budget, the calls holding part of
it, and the answer cache shared by every batch."""

from __future__ import annotations

from common.keys.cluster import PREFIX

__all__ = ["answer_cache", "batch_budget", "batch_budget_holds"]


def batch_budget(batch: str) -> str:
    """Hash of the batch's budget in nano-USD (fields: ``common.record``): its cap, what was spent, what
    calls in flight hold, and when and why it ran out. Expires with the batch."""
    return f"{PREFIX}:batch:{batch}:budget"


def batch_budget_holds(batch: str) -> str:
    """Sorted set of the calls holding part of the batch's budget: ``CALL_ID:NANO_USD`` -> expiry (ms),
    renewed with the leases, so a dead worker's hold counts as spent once it expires. Expires with
    the batch."""
    return f"{PREFIX}:batch:{batch}:budget:holds"


def answer_cache(digest: str) -> str:
    """String: the JSON of a stored answer (answer, finish reason, model, usage, time) for a request
    whose endpoint, model, messages and parameters hash to ``digest`` (SHA-256, hex). Expires after
    the retention; a hit does not extend it."""
    return f"{PREFIX}:cache:{digest}"
