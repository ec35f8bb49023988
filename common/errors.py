"""The project's exceptions. A user's mistake is an ``AskqError``: the CLI prints it in one line.

AskqError
 ├── ConfigError            jobs.yaml is missing, unreadable or invalid (names file and key path)
 ├── InputError             a question file is unusable (names file, line and problem)
 ├── RedisUnavailableError  Redis cannot be reached (names the URL, password hidden)
 │    └── RedisAuthError        Redis answered but refused the password, or wants one
 ├── NotFoundError          an unknown batch, job id or job type
 └── ProviderError          the LLM provider refused or failed a call
      ├── RetryableProviderError   429, 408, 409, 5xx, timeouts, resets, cut streams
      └── FatalProviderError       400, 401, 403, 404, 422: attempting again cannot help
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


class FatalProviderError(ProviderError):
    pass
