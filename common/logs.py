"""structlog setup for every askq process (workers, the CLI, the server): JSON lines for machines,
console rendering on a terminal, secrets masked.

arq and the libraries under it log through the standard library; their records go through the
same processors and renderer, so a worker's stderr is one JSON object a line, whoever wrote it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from common.secrets import redact_secrets
from common.untrusted import json_line, visible


def _mask_secrets(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    return {key: redact_secrets(value) if isinstance(value, str) else value for key, value in event.items()}


def _visible_values(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """On a terminal, provider text in a value (an error quoting the input) is shown, never obeyed."""
    return {key: visible(value) if isinstance(value, str) else value for key, value in event.items()}


def configure_logging(
    *, verbose: bool = False, quiet: bool = False, errors_only: bool = False, json: bool | None = None
) -> None:
    """``quiet``: warnings and errors; ``errors_only``: errors (the demo, whose retries its table shows)."""
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_dumps)
        if as_json
        else _ConsoleRenderer(colors=os.environ.get("NO_COLOR", "") == "")
    )
    level = (
        logging.DEBUG
        if verbose
        else logging.ERROR
        if errors_only
        else logging.WARNING
        if quiet
        else logging.INFO
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _mask_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(shared, renderer, verbose=verbose)


class _ConsoleRenderer(structlog.dev.ConsoleRenderer):
    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> str:
        return super().__call__(logger, name, _visible_values(logger, name, event))


def _json_dumps(document: Any, **options: Any) -> str:
    return json_line(json.dumps(document, **options))


def _route_standard_logging(shared: list[Processor], renderer: Any, *, verbose: bool) -> None:
    """arq's own lines (connection retries, job failures) rendered like askq's, with the logger named."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _mask_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    # arq logs every job start and end at INFO: too loud for batches of thousands.
    root.setLevel(logging.INFO if verbose else logging.WARNING)
