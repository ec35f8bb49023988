"""The models the simulator lists at `/v1/models`, and whether it refuses others as OpenAI does."""

from __future__ import annotations

from aiohttp import web

from .errors import error_response

EMBEDDING_MODELS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
"""OpenAI's embedding models and the size of their vectors (the most `dimensions` may ask for)."""
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1", *EMBEDDING_MODELS)


def unknown_model(model: str, strict: bool) -> web.Response | None:
    """OpenAI's 404 for a model it does not serve, under ``strict_models``; None when it is served."""
    if not strict or model in MODELS:
        return None
    message = f"The model `{model}` does not exist or you do not have access to it."
    return error_response(404, message, param="model", code="model_not_found")
