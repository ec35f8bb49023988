"""What the batch page shows of a status document, worded once on the server for its first render
(``static/batch.js`` words the live updates the same way)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from common.status import JobState

ITEMS_SHOWN = 25
"""Items a page of the batch's item list shows."""


@dataclass(frozen=True)
class GateLine:
    kind: str
    """``halt``, ``outage``, ``limit``, ``cooldown`` or ``pace``: how it is styled."""
    text: str


def milliseconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def error_lines(document: dict[str, Any]) -> list[str]:
    """The batch's failed attempts and jobs by reason: ``37 × HTTP 429 (5 failed)``."""  # noqa: RUF002
    lines = []
    for error in document.get("errors", []):
        failed = f" ({error['failed']} failed)" if error["failed"] else ""
        lines.append(f"{error['retried'] + error['failed']:,} × {error['reason']}{failed}")
    return lines


def gate_lines(document: dict[str, Any]) -> list[GateLine]:
    """What holds the batch's calls back now: its halt, then each provider's outage, limit, cooldown, pace."""
    lines = []
    if document.get("halt"):
        lines.append(GateLine("halt", f"Halted: its jobs are not sent. {document['halt']}"))
    for provider in document.get("providers", []):
        lines += _provider_lines(provider)
    return lines


def _provider_lines(provider: dict[str, Any]) -> list[GateLine]:
    endpoint = provider["endpoint"]
    lines = []
    if provider.get("unreachable_since"):
        since = time.strftime("%H:%M:%S", time.localtime(provider["unreachable_since"]))
        error = provider.get("unreachable_error") or ""
        lines.append(GateLine("outage", f"{endpoint} unreachable since {since}: {error}"))
    if provider.get("in_flight_limit") is not None:
        limit, reason = provider["in_flight_limit"], provider.get("in_flight_limit_reason") or ""
        lines.append(GateLine("limit", f"{endpoint}: at most {limit} calls in flight. {reason}"))
    if provider.get("cooldown_s") is not None:
        left = provider["cooldown_s"]
        lines.append(GateLine("cooldown", f"{endpoint} asked to hold off (429): {left:.1f} s left"))
    if provider.get("pace_wait_s") is not None:
        wait = provider["pace_wait_s"]
        lines.append(GateLine("pace", f"{endpoint} paced: a call asked now goes in {wait:.1f} s"))
    return lines


def state_asked(raw: str | None) -> JobState | None:
    """The items filter from the address bar; anything else shows every item."""
    try:
        return JobState(raw) if raw else None
    except ValueError:
        return None


def index_asked(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.isdigit() else None
