"""The project's exceptions. A user's mistake is an ``AskqError``: the CLI prints it in one line.

AskqError
 ├── ConfigError            jobs.yaml is missing, unreadable or invalid (names file and key path)
 ├── InputError             a question file is unusable (names file, line and problem)
 ├── RedisUnavailableError  Redis cannot be reached (names the URL, password hidden)
 │    └── RedisAuthError        Redis answered but refused the password, or wants one
 ├── NotFoundError          an unknown batch, job id or job type
 ├── KnowledgeError         a knowledge base cannot answer: not built, or built for another model
 └── ProviderError          the LLM provider refused or failed a call
      ├── RetryableProviderError   429, 408, 409, 5xx, resets, cut streams: another attempt may do
      │    ├── ProviderUnreachableError  refused, DNS failure, connect timeout, 503, gone before a
      │    │                             first byte: the server is away; jobs wait, spending no attempt
      │    ├── FirstByteTimeoutError     no first byte within provider.first_byte_timeout_s
      │    ├── StreamStalledError        silent mid-stream for provider.stall_timeout_s
      │    ├── StreamCutError            the stream ended without a finish_reason
      │    └── StreamBrokenError         dropped mid-stream, a line not a chunk, an error in the stream
      └── FatalProviderError       400, 401, 403, 404, 422, TLS certificate: attempting again cannot help
           ├── ContextOverflowError      the prompt is longer than the model's context
           └── BatchHaltedError          not sent: an earlier job of the batch got a 401
"""

from __future__ import annotations


class AskqError(Exception):
    """Base of every error askq reports to a user without a traceback."""


class ConfigError(AskqError):
    pass


class InputError(AskqError):
    pass


class RedisUnavailableError(AskqError):
    pass


class RedisAuthError(RedisUnavailableError):
    pass


class NotFoundError(AskqError):
    pass


class KnowledgeError(AskqError):
    """A job's knowledge base is not built, or its index was built with another model or dimension
    than jobs.yaml says: the job fails with the advice, never answering without its knowledge."""


class ProviderError(AskqError):
    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RetryableProviderError(ProviderError):
    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after_s = retry_after_s


class StreamBrokenError(RetryableProviderError):
    """A stream that began and broke: dropped mid-way, a line that is not a chunk, an error inside it."""


class FatalProviderError(ProviderError):
    pass


class ProviderUnreachableError(RetryableProviderError):
    """The provider cannot be reached (or answered that it is unavailable): not the answer's fault.

    Every worker shares the outage; attempts are not spent while it lasts (``provider.outage_wait_s``)."""


class FirstByteTimeoutError(RetryableProviderError):
    """The provider sent no byte of a response within ``provider.first_byte_timeout_s``."""


class StreamStalledError(RetryableProviderError):
    """A stream went silent mid-answer for ``provider.stall_timeout_s``."""


class StreamCutError(RetryableProviderError):
    """A stream ended (``[DONE]`` or the connection's end) without a finish_reason."""

    def __init__(self, message: str, *, events: int = 0) -> None:
        super().__init__(message)
        self.events = events
        """Data events the stream carried before it ended: 0 is an empty stream (a 200 with no
        answer, as llama-cpp-python sends for a prompt past the context)."""


class ContextOverflowError(FatalProviderError):
    """The prompt (with ``max_tokens``) is longer than the model's context: no attempt can fit it."""


class BatchHaltedError(FatalProviderError):
    """Not sent: the provider refused the key (401) for an earlier job of the batch, which is halted
    until ``askq retry`` (``worker.answering.gate``)."""
