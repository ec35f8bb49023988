"""The first pass over a question file: every line checked before anything is enqueued.

Duplicate ids are found with 8-byte digests in a numpy array, so checking a million lines costs
megabytes, not a set of strings.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from common.tokens import estimate_tokens
from producer.items import QuestionItem
from producer.lines import LineProblem
from producer.readers import Source

MAX_REPORTED_PROBLEMS = 20
PROGRESS_EVERY = 8192
"""Questions checked between two progress reports: a report costs far more than a line."""


@dataclass
class FileCheck:
    name: str
    items: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    more_problems: int = 0
    digest: str = ""

    def add(self, problem: LineProblem) -> None:
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems += 1

    def describe(self) -> str:
        lines = [f"{self.name}: line {problem.line}: {problem.message}" for problem in self.problems]
        if self.more_problems == 1:
            lines.append(f"{self.name}: ... and 1 more bad line")
        elif self.more_problems:
            lines.append(f"{self.name}: ... and {self.more_problems:,} more bad lines")
        return "\n".join(lines)


def _id_digest(item_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "little")


def check_file(
    source: Source, *, context_tokens: int | None = None, on_checked: Callable[[int], None] | None = None
) -> FileCheck:
    """Read the whole file once: count questions, collect bad lines and duplicate ids, hash the content.

    With ``context_tokens``, a question surely longer than the model's context is a bad line too.
    ``on_checked`` hears how many questions are checked, every ``PROGRESS_EVERY`` of them.
    """
    check = FileCheck(source.name)
    content = hashlib.sha256()
    digests = array("Q")
    for parsed in source.items():
        if isinstance(parsed, LineProblem):
            check.add(parsed)
            continue
        if context_tokens is not None and (problem := beyond_context(parsed, context_tokens)) is not None:
            check.add(problem)
            continue
        check.items += 1
        if on_checked is not None and check.items % PROGRESS_EVERY == 0:
            on_checked(check.items)
        content.update(f"{parsed.item_id}\x00{parsed.question}\x00".encode())
        digests.append(_id_digest(parsed.item_id))
    check.digest = content.hexdigest()
    for problem in _duplicate_ids(source, digests):
        check.add(problem)
    return check


def beyond_context(item: QuestionItem, context_tokens: int) -> LineProblem | None:
    """The problem with a question surely too long for the model; None when it may fit."""
    if not item.messages and 2 * len(item.question) <= context_tokens:
        return None  # the estimate is at most 2 tokens a character: fits without counting
    texts = [message.text() for message in item.messages] if item.messages else [item.question]
    tokens = sum(estimate_tokens(text) for text in texts)
    if tokens <= context_tokens:
        return None
    return LineProblem(
        item.line,
        f"the question is about {tokens:,} tokens, beyond the model's context of {context_tokens:,} "
        "(provider.context_tokens in jobs.yaml)",
    )


def _duplicate_ids(source: Source, digests: array[int]) -> list[LineProblem]:
    ordered = np.sort(np.frombuffer(digests, dtype=np.uint64))
    repeated = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not repeated:
        return []
    # Rare path: read again to name the lines of the repeated ids.
    seen: dict[int, int] = {}
    problems = []
    for parsed in source.items():
        if isinstance(parsed, LineProblem):
            continue
        digest = _id_digest(parsed.item_id)
        if digest not in repeated:
            continue
        if digest in seen:
            problems.append(
                LineProblem(parsed.line, f"duplicate id {parsed.item_id!r} (first on line {seen[digest]})")
            )
        else:
            seen[digest] = parsed.line
    return problems
