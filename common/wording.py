"""How counts read in messages, summaries and tables, on every floor: ``1 question``, ``2 questions``."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """``1 question``, ``2 questions``, ``1,000 questions``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"
