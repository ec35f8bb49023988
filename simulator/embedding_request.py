"""Validation of an embeddings request body into a typed `EmbeddingRequest`, refusing what OpenAI refuses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .chat_request import RequestError
from .models import EMBEDDING_MODELS

MAX_INPUTS = 2048
DEFAULT_DIMENSIONS = 1536
"""The size for a model the simulator does not know (a local server's, say)."""
MAX_DIMENSIONS = 16384
"""The most an unknown model may ask for: a bound on the memory one request can make the simulator use."""
FIXED_SIZE_MODELS = frozenset({"text-embedding-ada-002"})
"""Models that refuse `dimensions` at all, as OpenAI's ada-002 does."""

Encoding = Literal["float", "base64"]


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]
    dimensions: int
    """The size of the vectors served."""
    requested_dimensions: int | None
    """`dimensions` as the client sent it; None when it did not."""
    encoding: Encoding

    def recorded(self) -> dict[str, Any]:
        """What ``record_requests`` keeps of an answered request."""
        return {"model": self.model, "inputs": self.inputs, "dimensions": self.requested_dimensions}


def parse_embedding_request(body: object) -> EmbeddingRequest:
    if not isinstance(body, dict):
        raise RequestError("We could not parse the JSON body of your request: expected a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter", "model", "missing_required_parameter")
    requested = _requested_dimensions(body, model)
    return EmbeddingRequest(
        model=model,
        inputs=_inputs(body),
        dimensions=requested if requested is not None else EMBEDDING_MODELS.get(model, DEFAULT_DIMENSIONS),
        requested_dimensions=requested,
        encoding=_encoding(body),
    )


def _inputs(body: dict[str, Any]) -> list[str]:
    if "input" not in body:
        raise RequestError("you must provide an input parameter", "input", "missing_required_parameter")
    given = body["input"]
    inputs = [given] if isinstance(given, str) else given
    if not isinstance(inputs, list):
        raise RequestError("'input' must be a string or an array of strings", "input")
    if not inputs:
        raise RequestError("'input' must not be an empty array", "input")
    if len(inputs) > MAX_INPUTS:
        raise RequestError(f"'input' has {len(inputs)} items; at most {MAX_INPUTS} are allowed", "input")
    for index, item in enumerate(inputs):
        if not isinstance(item, str):
            # Token arrays are valid for OpenAI, but the simulator has no tokenizer to read them with.
            raise RequestError(f"'input[{index}]' must be a string (token arrays are not supported)", "input")
        if not item:
            raise RequestError(f"'input[{index}]' must not be an empty string", "input")
    return inputs


def _requested_dimensions(body: dict[str, Any], model: str) -> int | None:
    value = body.get("dimensions")
    if value is None:
        return None
    if model in FIXED_SIZE_MODELS:
        raise RequestError(f"The model {model} does not support specifying dimensions.", "dimensions")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RequestError(f"'dimensions' must be a positive integer, got {value!r}", "dimensions")
    most = EMBEDDING_MODELS.get(model, MAX_DIMENSIONS)
    if value > most:
        raise RequestError(f"'dimensions' is {value}; the model {model} gives at most {most}", "dimensions")
    return value


def _encoding(body: dict[str, Any]) -> Encoding:
    value = body.get("encoding_format", "float")
    if value is None or value == "float":
        return "float"
    if value == "base64":
        return "base64"
    raise RequestError(f"'encoding_format' must be 'float' or 'base64', got {value!r}", "encoding_format")
