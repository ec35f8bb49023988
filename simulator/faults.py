"""Fault directives: the `[sim:SPEC]` grammar, per-attempt lookup and random fault draws."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Literal, cast, get_args

from .settings import SimulatorSettings

Kind = Literal[
    "ok",
    "echo",
    "slow",
    "429",
    "500",
    "503",
    "cut",
    "error",
    "badline",
    "nofinish",
    "400",
    "401",
    "404",
    "422",
    "echo-error",
]

PERMANENT_KINDS: frozenset[str] = frozenset({"400", "401", "404", "422", "echo-error"})
"""echo-error: a 400 whose message is the question's text, as a provider quoting the input back."""
ANSWER_KINDS: frozenset[str] = frozenset({"ok", "echo", "slow"})
"""Kinds that answer with a 200 and text (echo: the question's own text, for hostile-text tests)."""
_SIMPLE_KINDS: frozenset[str] = frozenset(get_args(Kind)) - {"slow"}
"""Kinds written without a value (``slow=MS`` takes one)."""
_SPEC = re.compile(r"\[sim:([^\]]*)\]")
_REPEAT = re.compile(r"^(?P<body>.+?)x(?P<count>\d+)$")
MAX_REPEAT = 1_000_000
_GRAMMAR = (
    "429[@S], 500, 503, cut, error, badline, nofinish, slow=MS, ok, echo (each optionally xN), "
    "400, 401, 404, 422, echo-error"
)


@dataclass(frozen=True, slots=True)
class Directive:
    """What one attempt gets; `retry_after_s` None means "use the settings value"."""

    kind: Kind
    retry_after_s: float | None = None
    slow_ms: float = 0.0


OK = Directive("ok")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Directives with repeat counts, applied to successive attempts of one request key."""

    steps: tuple[tuple[Directive, int], ...]

    def for_attempt(self, attempt: int) -> Directive:
        """Directive for the 1-based `attempt`; a permanent step sticks, past the end everything is ok."""
        seen = 0
        for directive, count in self.steps:
            if directive.kind in PERMANENT_KINDS:
                return directive
            seen += count
            if attempt <= seen:
                return directive
        return OK


class DirectiveError(ValueError):
    """A `[sim:...]` spec could not be parsed; `directive` is the offending item."""

    def __init__(self, directive: str, reason: str) -> None:
        super().__init__(f"invalid simulator directive {directive!r}: {reason}")
        self.directive = directive


def without_directive(question: str) -> str:
    """The question with its first `[sim:SPEC]` removed: what an `echo` answer repeats."""
    return _SPEC.sub("", question, count=1)


def find_plan(question: str) -> FaultPlan | None:
    """Plan from the first `[sim:SPEC]` in the question, or None when it has no directive."""
    match = _SPEC.search(question)
    if match is None:
        return None
    items = match.group(1).split(",")
    return FaultPlan(tuple(_parse_item(item.strip()) for item in items))


def _parse_item(item: str) -> tuple[Directive, int]:
    if not item:
        raise DirectiveError(item, "empty directive")
    body, count = item, 1
    repeat = _REPEAT.match(item)
    if repeat is not None:
        body, count = repeat.group("body"), int(repeat.group("count"))
        if not 1 <= count <= MAX_REPEAT:
            raise DirectiveError(item, f"repeat count must be 1..{MAX_REPEAT}")
    directive = _parse_body(item, body)
    if repeat is not None and directive.kind in PERMANENT_KINDS:
        raise DirectiveError(item, "permanent statuses apply to every attempt and take no repeat count")
    return directive, count


def _parse_body(item: str, body: str) -> Directive:
    if body in _SIMPLE_KINDS:
        return Directive(cast(Kind, body))
    if body.startswith("429@"):
        return Directive("429", retry_after_s=_non_negative(item, body[4:]))
    if body.startswith("slow="):
        return Directive("slow", slow_ms=_non_negative(item, body[5:]))
    raise DirectiveError(item, f"expected one of {_GRAMMAR}")


def _non_negative(item: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DirectiveError(item, f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise DirectiveError(item, "must be a finite number >= 0")
    return value


def draw_random_fault(settings: SimulatorSettings, rng: random.Random) -> Directive:
    """One uniform draw against the cumulative fault rates; no draw at all when every rate is zero."""
    if settings.fault_rate_total() <= 0.0:
        return OK
    rates: tuple[tuple[float, Kind], ...] = (
        (settings.rate_429, "429"),
        (settings.rate_500, "500"),
        (settings.rate_503, "503"),
        (settings.rate_cut, "cut"),
        (settings.rate_error_in_stream, "error"),
        (settings.rate_badline, "badline"),
    )
    draw = rng.random()
    for rate, kind in rates:
        if draw < rate:
            return Directive(kind)
        draw -= rate
    return OK
