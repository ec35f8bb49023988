"""One look at the provider when a worker starts, so a wrong URL, key or model is one clear line
instead of every job failing with ``HTTP 404``.

It lists the models (``GET /models``). A configured model that is listed is fine; one that is not is
tried with a one-token request, since some servers (llama.cpp) answer to any model name and list
only their file's. A provider that cannot be reached right now is only warned about: jobs wait
and retry while it is away, and a worker started before its provider must still start.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit, urlunsplit

import openai
import structlog
from openai import AsyncOpenAI

from common.config import AskqConfig
from common.errors import ConfigError
from common.secrets import error_line, redact_secrets
from worker.answering.provider_errors import translate

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_S = 15.0
SHOWN_MODELS = 8


def configured_models(config: AskqConfig) -> list[str]:
    """The provider's model and every job type's own, each once, in config order."""
    models = [config.provider.model, *(job.model for job in config.job_types.values() if job.model)]
    return list(dict.fromkeys(models))


async def check_provider(client: AsyncOpenAI, models: Iterable[str]) -> None:
    """Raise ConfigError when the provider surely cannot answer; log a warning when it cannot be asked."""
    where = redact_secrets(str(client.base_url))
    client = client.with_options(timeout=CHECK_TIMEOUT_S)
    try:
        listed: list[str] | None = [model.id async for model in client.models.list()]
    except openai.NotFoundError:
        listed = None  # no /models here: the one-token request tells whether the URL is right
    except openai.APIStatusError as exc:
        _refuse_key(exc, where)
        log.warning("provider check: could not list models", provider=where, error=error_line(exc))
        return
    except openai.APIError as exc:
        log.warning("provider check: provider unreachable; starting anyway", provider=where, error=_said(exc))
        return
    except Exception as exc:  # the check must never be what stops a worker that could serve
        log.warning("provider check failed; starting anyway", provider=where, error=error_line(exc))
        return
    for model in models:
        if listed is None or model not in listed:
            await _try_model(client, model, listed, where)
    log.info("provider check passed", provider=where, models=list(models))


async def _try_model(client: AsyncOpenAI, model: str, listed: list[str] | None, where: str) -> None:
    try:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "ping"}], max_tokens=1
        )
    except openai.NotFoundError as exc:
        raise ConfigError(_not_found(model, listed, where, exc)) from None
    except openai.BadRequestError:
        return  # the route and the model exist; a parameter (max_tokens=1) was refused
    except openai.APIStatusError as exc:
        _refuse_key(exc, where)
        log.warning(
            "provider check: a test request failed", provider=where, model=model, error=error_line(exc)
        )
    except openai.APIError as exc:
        log.warning("provider check: provider unreachable; starting anyway", provider=where, error=_said(exc))
    except Exception as exc:  # the check must never be what stops a worker that could serve
        log.warning("provider check failed; starting anyway", provider=where, error=error_line(exc))


def _said(exc: openai.APIError) -> str:
    """What the transport said happened (refused, DNS, TLS, ...), else the client's own line."""
    return error_line(translate(exc))


def _not_found(model: str, listed: list[str] | None, where: str, exc: openai.NotFoundError) -> str:
    if listed is not None or exc.code == "model_not_found":
        served = ", ".join(sorted(listed or [])[:SHOWN_MODELS]) or "none listed"
        return (
            f"the provider at {where} does not serve model {model!r} (it lists: {served}); "
            "set provider.model (or the job type's model) in jobs.yaml"
        )
    parts = urlsplit(where)
    served_under_v1 = parts.path.rstrip("/").endswith("/v1")
    hint = "" if served_under_v1 else f"; OpenAI-compatible servers serve under /v1: try {_with_v1(parts)}"
    return (
        f"the provider at {where} answered 404 to /models and /chat/completions: check OPENAI_BASE_URL{hint}"
    )


def _with_v1(parts: SplitResult) -> str:
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/v1"))


def _refuse_key(exc: openai.APIStatusError, where: str) -> None:
    if exc.status_code in (401, 403):
        raise ConfigError(
            f"the provider at {where} refused the API key ({exc.status_code}: {error_line(exc)}); "
            "check OPENAI_API_KEY"
        ) from None
