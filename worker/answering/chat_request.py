"""A job's chat request: its job type's system prompt (with the retrieved knowledge in it, for a job
type with a base), its question or its own messages, its sampling parameters and its model, each the
line's own before the job type's before ``provider``'s."""

from __future__ import annotations

from common.config import AskqConfig
from common.knowledge import fill_knowledge
from common.payload import JobPayload
from worker.answering.provider import ChatRequest


def build_request(payload: JobPayload, config: AskqConfig, knowledge: str | None = None) -> ChatRequest:
    """``knowledge``: the retrieved chunks, for a job type with a base: they fill its prompt's
    ``{knowledge}``. A line with its own messages gets that prompt first, before its own."""
    job_type = config.job_type(payload.job_type)
    system = job_type.system_prompt
    if knowledge is not None:
        system = fill_knowledge(system, knowledge)
    if payload.messages is not None:
        messages = [message.model_dump() for message in payload.messages]
        if knowledge is not None:
            messages.insert(0, {"role": "system", "content": system})
    else:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": payload.question}]
    params = {
        "temperature": job_type.temperature
        if job_type.temperature is not None
        else config.provider.temperature,
        "max_tokens": job_type.max_tokens or config.provider.max_tokens,
        **payload.params,
    }
    if "max_completion_tokens" in params:
        params.pop("max_tokens")  # the API refuses both at once
    model = payload.model or job_type.model or config.provider.model
    return ChatRequest(messages=messages, model=model, params=params)
