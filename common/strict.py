"""The base of every jobs.yaml model: unknown keys are errors, and loaded settings never change."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
