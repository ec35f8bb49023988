"""How counts and lists read in messages, summaries and tables, on every floor: ``1 question``,
``2 questions``, ``a, b, c and 4 more``."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """``1 question``, ``2 questions``, ``1,000 questions``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def first_few(items: list[str], *, shown: int = 5, sep: str = ", ", more: str = " and {n} more") -> str:
    """The first ``shown`` items joined by ``sep``, then how many more there are."""
    text = sep.join(items[:shown])
    return text + (more.format(n=len(items) - shown) if len(items) > shown else "")
