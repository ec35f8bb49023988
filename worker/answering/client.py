"""The provider's client: its base URL and key from the environment, askq's transport, no retries of its own.

One client per worker process (``worker.settings``); ``askq knowledge build`` and ``search`` make one too.
"""

from __future__ import annotations

import os
import urllib.request
from urllib.parse import urlsplit

import httpx2
from openai import AsyncOpenAI

from common.config import AskqConfig
from common.errors import ConfigError
from common.secrets import redact_secrets
from worker.answering.transport import AskqTransport, Timeouts

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Where the openai client sends requests when OPENAI_BASE_URL is not set."""


def provider_endpoint() -> tuple[str, str | None]:
    """(API key, base URL) from the environment; a compatible server may need no key."""
    base_url = os.environ.get("OPENAI_BASE_URL") or None
    api_key = os.environ.get("OPENAI_API_KEY") or None
    if api_key is None and base_url is None:
        raise ConfigError(
            "no provider configured: set OPENAI_API_KEY for OpenAI, or OPENAI_BASE_URL for a compatible "
            "server (`python -m simulator` starts a local one)"
        )
    if base_url is not None:
        check_base_url(base_url)
    return api_key or "not-needed", base_url


def check_base_url(base_url: str, variable: str = "OPENAI_BASE_URL") -> None:
    """Refuse what the client cannot use: it sends the key as a Bearer token (its HTTP stack refuses
    credentials in the URL beside it) and appends its paths to the URL (after a query, breaking it)."""
    shown = f"{variable}={redact_secrets(base_url)}"
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ConfigError(f"{shown}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{shown}: expected an http:// or https:// URL such as http://localhost:8000/v1")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{shown}: credentials in the URL cannot be sent; put the key in OPENAI_API_KEY")
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{shown}: the client appends its paths to this URL, so it takes no ?query or #part"
        )


EMBEDDINGS_BASE_URL_ENV = "ASKQ_EMBEDDINGS_BASE_URL"
EMBEDDINGS_API_KEY_ENV = "ASKQ_EMBEDDINGS_API_KEY"


def embeddings_client(config: AskqConfig) -> AsyncOpenAI | None:
    """A client of its own for ``/embeddings`` when ``ASKQ_EMBEDDINGS_BASE_URL`` names a server apart
    (llama-server with ``--embeddings`` and vLLM serve embeddings or chat, not both); its key is
    ``ASKQ_EMBEDDINGS_API_KEY``, else ``OPENAI_API_KEY``. None: the chat provider serves both."""
    base_url = os.environ.get(EMBEDDINGS_BASE_URL_ENV) or None
    if base_url is None:
        return None
    check_base_url(base_url, EMBEDDINGS_BASE_URL_ENV)
    api_key = os.environ.get(EMBEDDINGS_API_KEY_ENV) or os.environ.get("OPENAI_API_KEY") or "not-needed"
    return _client(config, api_key, base_url)


def provider_client(config: AskqConfig) -> AsyncOpenAI:
    """One client per worker process; tenacity owns retrying, so the client's own retries are off.

    The client keeps base URL, auth headers and status errors; askq's transport sends the requests,
    with the provider's three timeouts (connect, first byte, stall)."""
    api_key, base_url = provider_endpoint()
    return _client(config, api_key, base_url)


def _client(config: AskqConfig, api_key: str, base_url: str | None) -> AsyncOpenAI:
    provider = config.provider
    timeouts = Timeouts(provider.connect_timeout_s, provider.first_byte_timeout_s, provider.stall_timeout_s)
    # Past 100 connections (the old client's limit) every call over the limit would open a new one:
    # one kept-alive connection per semaphore slot instead.
    transport = AskqTransport(
        timeouts, max_connections=max(config.limits.concurrency, 100), proxy=environment_proxy(base_url)
    )
    return AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        # The transport enforces its own timeouts; this one is what openai's checks read.
        timeout=httpx2.Timeout(provider.stall_timeout_s, connect=provider.connect_timeout_s),
        http_client=httpx2.AsyncClient(transport=transport, follow_redirects=True),
    )


def environment_proxy(base_url: str | None) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY / ALL_PROXY name for the provider, unless NO_PROXY spares it:
    what the openai client's own stack honours, read once."""
    parts = urlsplit(base_url or DEFAULT_BASE_URL)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")
