"""One figure of the benchmark beside its target: a line of the table and a row of the JSON file."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    section: str
    measure: str
    figure: float
    unit: str = ""
    target: float | None = None
    better: str = ">="

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        compare: Callable[[float, float], bool] = operator.ge if self.better == ">=" else operator.le
        return compare(self.figure, self.target)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "met": self.met}
