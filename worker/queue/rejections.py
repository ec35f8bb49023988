"""Jobs a worker refuses to run: not JSON, not of arq's shape, an unknown function, the wrong
arguments, or a payload naming another job than the one it is stored as.

arq itself logs a traceback for the first ones and drops the job. Here every refusal goes the
same way: one JSON log line, an entry in ``askq:rejected``, and the job's own record (when it has
one) failed with the reason, so that nothing stays queued for ever.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from arq.worker import Function, func
from pydantic import BaseModel, ValidationError

from common.serializer import job_deserializer

log = structlog.get_logger(__name__)

Payload = TypeVar("Payload", bound=BaseModel)

UNREADABLE_FUNCTION = "askq.unreadable"
"""The function an unreadable job is handed to, in place of the one it cannot be seen to name."""

_JOB_FIELDS: dict[str, type | tuple[type, ...]] = {
    "f": str,
    "a": list,
    "k": dict,
    "t": (int, type(None)),
    "et": int,
}


def tolerant_deserializer(raw: bytes) -> dict[str, Any]:
    """arq's job, or one that hands the reason to ``UNREADABLE_FUNCTION`` when it cannot be read."""
    try:
        job = job_deserializer(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return _unreadable(f"not a JSON job ({type(exc).__name__})")
    for name, kind in _JOB_FIELDS.items():
        if not isinstance(job.get(name), kind):
            return _unreadable(f"not an arq job: field {name!r} missing or of the wrong type")
    return job


def _unreadable(reason: str) -> dict[str, Any]:
    return {"f": UNREADABLE_FUNCTION, "a": [reason], "k": {}, "t": None, "et": 0}


async def reject(ctx: Any, reason: str) -> dict[str, Any]:
    """Record the refusal of the job arq is running now; its own record, if any, fails with ``reason``."""
    arq_job_id = ctx.get("job_id", "")
    log.error("rejected job", arq_job_id=arq_job_id, error=reason)
    await ctx["store"].reject(arq_job_id, reason)
    return {"state": "rejected", "error": reason}


async def _reject_unreadable(ctx: Any, reason: str, *_: Any, **__: Any) -> dict[str, Any]:
    return await reject(ctx, f"unreadable job: {reason}")


def _reject_unknown(name: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def refuse(ctx: Any, *_: Any, **__: Any) -> dict[str, Any]:
        return await reject(ctx, f"unknown job function {name[:100]!r}")

    return refuse


class RejectingFunctions(dict[str, Any]):
    """arq's function table, answering an unknown name with a function that rejects the job."""

    def __missing__(self, name: str) -> Function:
        return func(_reject_unknown(name), name=name)  # type: ignore[arg-type]


def unreadable_function() -> Function:
    """Listed in every askq worker's functions, plain arq's included (``arq worker.WorkerSettings``)."""
    return func(_reject_unreadable, name=UNREADABLE_FUNCTION)


@dataclass(frozen=True)
class PayloadKind(Generic[Payload]):
    """What a job function takes, and how a payload says which job it belongs to."""

    model: type[Payload]
    noun: str
    """``job`` or ``run``, for messages."""
    names: Callable[[Payload], str]
    """The job or run the payload is for."""
    stored_as: Callable[[Payload], str | None]
    """The arq job id such a payload must be stored under (None: none it could be)."""


def validated(
    kind: PayloadKind[Payload], ctx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Payload | None, str]:
    """The job function's one argument read as ``kind.model``, or the reason to reject the job.

    A payload must be stored as the job it names: run under the claimed id, it would write another
    job's record (a forged or misfiled job).
    """
    what = f"{kind.noun} payload"
    if len(args) != 1 or kwargs:
        shown = json.dumps({"args": len(args), "kwargs": sorted(kwargs)[:5]})
        return None, f"expected one argument, the {what}; got {shown}"
    try:
        payload = kind.model.model_validate(args[0])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"{part}: " for part in first["loc"][:1])
        return None, f"invalid {what}: {where}{first['msg']}"
    if kind.stored_as(payload) != ctx.get("job_id"):
        named = kind.names(payload)[:200]
        return None, f"the payload names {kind.noun} {named!r}, not the job it is stored as"
    return payload, ""
