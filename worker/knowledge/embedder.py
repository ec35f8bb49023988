"""The provider's ``/v1/embeddings``: one request for a list of texts, checked, retried by policy.

Each request holds one place of the process's semaphore (the one chat calls hold) and passes the
provider gate, so a shared cooldown (429 Retry-After), the pace of ``provider.requests_per_minute``
and the in-flight limit apply to embeddings as to answers. Vectors are asked for in base64, as the
stock openai client asks (so every compatible server takes it), and decoded straight into numpy;
a server that answers lists of floats is read too. A response with the wrong count or dimension is
a failed attempt, retried: a vector missing would shift every chunk's meaning by one.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import httpx2
import numpy as np
import openai
import orjson
import structlog
from openai import AsyncOpenAI
from tenacity import RetryCallState

from common.config import AskqConfig
from common.errors import FatalProviderError, ProviderError, ProviderUnreachableError, RetryableProviderError
from worker.answering.admission import Admission
from worker.answering.gate import ProviderGate
from worker.answering.in_flight import PLACE_POLL_S
from worker.answering.outage import Outage, backoff_s
from worker.answering.provider_errors import translate
from worker.answering.retry import retrying
from worker.knowledge.index import Matrix, normalised

log = structlog.get_logger(__name__)

_EMBEDDINGS_PATH = "/embeddings"
NO_ENDPOINT_STATUS = frozenset({404, 501})
"""A server without embeddings: 404 (no such route), 501 (llama-server started without --embeddings)."""
MAX_INPUTS = 2048
"""OpenAI's limit of inputs a request."""


class Embedder:
    """Embeds texts with ``model`` (at ``dimensions``, when set) for one knowledge base."""

    def __init__(
        self,
        client: AsyncOpenAI,
        config: AskqConfig,
        semaphore: asyncio.Semaphore,
        gate: ProviderGate,
        *,
        model: str,
        dimensions: int | None,
    ) -> None:
        self._client = client
        self._config = config
        self._semaphore = semaphore
        self._gate = gate
        self.model = model
        self.dimensions = dimensions
        self.requests = 0
        """Requests sent, retries included."""
        self.one_input_a_request = False
        """Learned from a server answering a vector per token (see ``embed``)."""

    async def embed(self, texts: Sequence[str], *, expect_dimensions: int | None = None) -> Matrix:
        """Unit vectors of ``texts``, one row each, in order; ``expect_dimensions``: what each must have
        (an index's), else ``dimensions``, else whatever the first vector has.

        A server that answers a vector per token (llama-cpp-python, for a model without pooling) gets
        one input a request from then on: for a request of several, its vectors of the second input
        onwards are another input's (measured: cosine 0.05 with the same text sent alone)."""
        if not 0 < len(texts) <= MAX_INPUTS:
            raise ValueError(f"{len(texts)} texts: a request takes 1 to {MAX_INPUTS}")
        if self.one_input_a_request and len(texts) > 1:
            alone = [await self.embed([text], expect_dimensions=expect_dimensions) for text in texts]
            return np.vstack(alone)
        async for attempt in retrying(self._config.retry, self._on_retry):
            with attempt:
                matrix, per_token = await self._request(texts, expect_dimensions or self.dimensions)
        if per_token and len(texts) > 1:
            self.one_input_a_request = True
            log.warning(
                "the provider answers a vector per token (a model without pooling): its answers to "
                "several inputs at once cannot be trusted, so askq sends one input a request to it",
                model=self.model,
            )
            return await self.embed(texts, expect_dimensions=expect_dimensions)
        return matrix

    async def _request(self, texts: Sequence[str], dimensions: int | None) -> tuple[Matrix, bool]:
        """One attempt, however long it waits: for a cooldown, a place, or a provider that is away (as
        an answer waits, spending no attempt, up to ``provider.outage_wait_s``). Waits hold no slot."""
        outages = 0
        while True:
            async with self._semaphore:
                admission = await self._gate.admit()
                wait, probe = self._wait_before(admission, outages)
                if wait is None:
                    sent = time.monotonic()
                    try:
                        body = await self._admitted(texts, admission)
                        return normalised(vectors(body, len(texts), dimensions)), per_token(body)
                    except ProviderUnreachableError as exc:
                        wait = await self._unreachable(exc, sent, outages)
                    finally:
                        if probe:
                            self._gate.outage.end_probe()
            outages += 1 if admission.outage is not None or probe or wait is not None else 0
            await wait

    def _wait_before(self, admission: Admission, outages: int) -> tuple[Awaitable[None] | None, bool]:
        """(what to wait for before calling, or None to call now; whether the call is the probe)."""
        if admission.cooldown_s > 0:
            return asyncio.sleep(admission.cooldown_s), False
        if admission.outage is not None:
            self._gate.outage.saw(admission.outage)
            self._give_up_if_overdue(admission.outage)
            if self._gate.outage.take_probe():
                return None, True  # this request looks whether the provider is back
            return self._gate.outage.wait(backoff_s(outages)), False
        if admission.full:
            return asyncio.sleep(PLACE_POLL_S), False
        return None, False

    async def _unreachable(
        self, error: ProviderUnreachableError, sent: float, outages: int
    ) -> Awaitable[None]:
        """Every worker is told the provider is away; this attempt waits, unspent."""
        if self._gate.outage.predates_end(sent):
            return asyncio.sleep(0)  # refused before an outage ended: send again, no new outage
        outage = await self._gate.unreachable(error)
        self._gate.outage.saw(outage)
        self._give_up_if_overdue(outage, error)
        return self._gate.outage.wait(backoff_s(outages))

    def _give_up_if_overdue(self, outage: Outage, cause: BaseException | None = None) -> None:
        if outage.age_ms > self._config.provider.outage_wait_s * 1000:
            raise outage.too_long() from cause

    async def _admitted(self, texts: Sequence[str], admission: Admission) -> Any:
        in_flight = self._gate.in_flight
        call = in_flight.begin(admission.place, admission.limit, admission.used, admission.send_in_s)
        try:
            if admission.send_in_s > 0:
                await asyncio.sleep(admission.send_in_s)
            self.requests += 1
            body = await self._post(texts)
        except ProviderUnreachableError:
            raise  # shared by the caller, as an outage
        except ProviderError as exc:
            if exc.status_code is not None:
                await self._gate.reachable(call.sent)  # it answered, if not with vectors
            await self._gate.refused(exc)
            raise
        finally:
            in_flight.end(call)
        await self._gate.reachable(call.sent)
        return body

    async def _post(self, texts: Sequence[str]) -> Any:
        body: dict[str, Any] = {"model": self.model, "input": list(texts), "encoding_format": "base64"}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        try:
            response = await self._client.post(_EMBEDDINGS_PATH, cast_to=httpx2.Response, body=body)
            return orjson.loads(await response.aread())
        except openai.APIStatusError as exc:
            if exc.status_code in NO_ENDPOINT_STATUS:
                raise self._not_found(exc) from exc
            raise translate(exc) from exc
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise translate(exc) from exc
        except orjson.JSONDecodeError as exc:
            raise RetryableProviderError(f"the embeddings response is not JSON: {exc}") from exc

    def _not_found(self, exc: openai.APIStatusError) -> FatalProviderError:
        error = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
        if isinstance(error, dict) and error.get("code") == "model_not_found":
            return FatalProviderError(f"HTTP 404: embedding model {self.model!r} not found", status_code=404)
        where = str(self._client.base_url).rstrip("/")
        return FatalProviderError(
            f"the provider at {where} has no /embeddings endpoint (HTTP {exc.status_code}): knowledge "
            "bases need one (llama-server: start it with --embeddings)",
            status_code=exc.status_code,
        )

    async def _on_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait_s = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "embeddings retrying", attempt=state.attempt_number, retry_in_s=round(wait_s, 3), error=str(error)
        )


def vectors(body: Any, count: int, dimensions: int | None) -> Matrix:
    """The matrix of an embeddings response for ``count`` inputs; a wrong one raises a retryable error."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != count:
        got = len(data) if isinstance(data, list) else "no"
        raise RetryableProviderError(f"the embeddings response had {got} vectors for {count} inputs")
    rows: list[np.ndarray[Any, Any] | None] = [None] * count
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or rows[index] is not None:
            raise RetryableProviderError(f"the embeddings response has a bad or repeated index {index!r}")
        rows[index] = _decoded(item.get("embedding"))
    width = dimensions or len(rows[0])  # type: ignore[arg-type]
    if width == 0:
        raise RetryableProviderError("the embeddings response has empty vectors")
    for row in rows:
        if row is None or len(row) != width:
            raise RetryableProviderError(
                f"the embeddings response has a vector of {0 if row is None else len(row)} dimensions, "
                f"not {width} (a server that ignores `dimensions` answers so: then leave it out of the "
                "base's settings)"
            )
    matrix: Matrix = np.vstack(rows).astype(np.float32, copy=False)  # type: ignore[arg-type]
    if not np.isfinite(matrix).all():
        # A NaN row would win every search (argmax takes NaN first): one bad vector, every answer's source.
        raise RetryableProviderError("the embeddings response has a vector with NaN or infinite values")
    return matrix


def _decoded(embedding: Any) -> np.ndarray[Any, Any]:
    if isinstance(embedding, str):
        try:
            return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4")
        except ValueError as exc:
            raise RetryableProviderError(f"an embedding is not base64 float32: {exc}") from exc
    if isinstance(embedding, list) and all(isinstance(value, int | float) for value in embedding):
        return np.asarray(embedding, dtype=np.float32)
    if isinstance(embedding, list) and embedding and all(_numbers(token) for token in embedding):
        # One vector per token: llama-cpp-python's server for a model without pooling (a chat model
        # such as Gemma). Their mean is the usual pooling of such vectors (as sentence-transformers').
        tokens = np.asarray(embedding, dtype=np.float32)
        if tokens.ndim == 2:
            pooled: np.ndarray[Any, Any] = tokens.mean(axis=0)
            return pooled
    raise RetryableProviderError("an embedding is neither base64 nor a list of numbers")


def per_token(body: Any) -> bool:
    """Whether a (well-formed) embeddings response holds a vector per token rather than per input."""
    first = body["data"][0].get("embedding") if isinstance(body["data"][0], dict) else None
    return isinstance(first, list) and bool(first) and isinstance(first[0], list)


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(value, int | float) for value in values)
