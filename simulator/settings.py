"""Runtime settings of the simulator: one frozen pydantic model, replaced wholesale on update."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FAULT_RATES = ("rate_429", "rate_500", "rate_503", "rate_cut", "rate_error_in_stream", "rate_badline")
"""Random faults, drawn together: one uniform draw per request picks at most one of them."""


def _probability(what: str) -> Any:
    return Field(default=0.0, ge=0.0, le=1.0, description=f"probability of {what} per request")


class SimulatorSettings(BaseModel):
    """Latency, answer size and fault rates; every field is a CLI flag and a /_sim/settings key."""

    # strict: a JSON "5" for a number is a client bug we want reported, not coerced.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    ttft_ms: float = Field(default=50.0, ge=0.0, description="delay before the first content token")
    ttft_jitter_ms: float = Field(
        default=0.0, ge=0.0, description="each first token comes up to this much earlier or later (uniform)"
    )
    tokens_per_s: float = Field(default=200.0, ge=0.0, description="token pace; 0 = no inter-token delay")
    answer_tokens: int = Field(default=40, ge=1, le=1_000_000, description="tokens in a full answer")
    seed: int = Field(default=0, description="seed of the random fault generator")
    rate_429: float = _probability("a 429")
    rate_500: float = _probability("a 500")
    rate_503: float = _probability("a 503")
    rate_cut: float = _probability("a cut connection")
    rate_error_in_stream: float = _probability("an error inside a 200 stream")
    rate_badline: float = _probability("a malformed data: line inside a 200 stream")
    retry_after_s: float = Field(default=1.0, ge=0.0, description="Retry-After sent with simulated 429s")
    cut_after_chunks: int = Field(default=3, ge=0, description="content chunks sent before a cut or error")
    slow_start_ms: float = Field(default=0.0, ge=0.0, description="extra delay before response headers")
    rpm_limit: int = Field(default=0, ge=0, description="requests per sliding minute; 0 = unlimited")
    rpm_window_s: float = Field(
        default=60.0,
        gt=0.0,
        le=60.0,
        description="the limit's window: it holds rpm_limit x rpm_window_s / 60",
    )
    tpm_limit: int = Field(
        default=0,
        ge=0,
        description="tokens per minute (prompt + max_tokens taken at admission, the unused part given "
        "back at the answer's end); 0 = unlimited",
    )
    tpm_window_s: float = Field(
        default=60.0,
        gt=0.0,
        le=60.0,
        description="the token limit's window: the bucket holds tpm_limit x tpm_window_s / 60",
    )
    ratelimit_headers: bool = Field(
        default=True,
        description="send OpenAI's x-ratelimit-* headers on answers and 429s when rpm_limit or tpm_limit "
        "is set (false: a provider that sends none)",
    )
    overload_in_flight: int = Field(
        default=0,
        ge=0,
        description="past this many requests in flight, a bare 429 (no Retry-After, no x-ratelimit-*), "
        "before the body is read; 0 = no limit",
    )
    strict_models: bool = Field(
        default=False, description="answer 404 model_not_found for a model /v1/models does not list"
    )
    require_api_key: str | None = Field(default=None, description="expected Bearer token; unset = any")
    record_requests: bool = Field(
        default=False, description="keep each request's last user message and answer for /_sim/requests"
    )
    stamp_tokens: bool = Field(
        default=False, description="each content token is the wall time it was written, for relay latency"
    )
    batch_delay_ms: float = Field(default=0.0, ge=0.0, description="time a Batch API batch takes to complete")
    # Behaviours of the servers people run locally (see simulator/profiles.py, `--profile`).
    close_after_response: bool = Field(
        default=False,
        description="give up the connection after each response while advertising keep-alive (llama-server)",
    )
    slots: int = Field(
        default=0, ge=0, description="requests answered at once; the rest wait without a byte (0 = no limit)"
    )
    interrupt_on_wait: bool = Field(
        default=False,
        description="end a running stream with [DONE] and no finish_reason when another request waits "
        "(llama-cpp-python's --interrupt_requests)",
    )
    usage_chunk: bool = Field(
        default=True, description="send the usage chunk stream_options asks for (false: ignore it)"
    )
    context_tokens: int = Field(
        default=0,
        ge=0,
        description="the model's context: a longer prompt gets an empty 200 stream, or a 400 "
        "context_length_exceeded without streaming (0 = no limit)",
    )

    embeddings: bool = Field(
        default=True, description="serve POST /v1/embeddings (false: it answers 404, as a server without it)"
    )
    bad_embeddings: int = Field(
        default=0,
        ge=0,
        description="the next N embeddings responses are wrong: alternately a vector missing and a vector "
        "of the wrong size (counts down)",
    )

    @model_validator(mode="after")
    def _rates_fit_in_one_draw(self) -> SimulatorSettings:
        # One uniform draw picks at most one fault, so the rates share the unit interval.
        if self.fault_rate_total() > 1.0 + 1e-9:
            raise ValueError(f"the fault rates ({' + '.join(FAULT_RATES)}) must add up to <= 1")
        return self

    @model_validator(mode="after")
    def _jitter_within_ttft(self) -> SimulatorSettings:
        if self.ttft_jitter_ms > self.ttft_ms:
            raise ValueError(
                "ttft_jitter_ms must be <= ttft_ms: a first token cannot come before the request"
            )
        return self

    def fault_rate_total(self) -> float:
        return float(sum(getattr(self, name) for name in FAULT_RATES))

    def updated(self, changes: dict[str, Any]) -> SimulatorSettings:
        """Return a validated copy with `changes` applied; raises SettingsError naming the key."""
        try:
            return SimulatorSettings.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise SettingsError.from_validation(exc) from None


class SettingsError(ValueError):
    """A settings update was refused; `key` is the offending field (or "" for a cross-field rule)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.reason = message

    @classmethod
    def from_validation(cls, exc: ValidationError) -> SettingsError:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        return cls(key, first["msg"])
