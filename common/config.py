"""The ``jobs.yaml`` model, validated at load; every error names the file and the key path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator

from common.errors import ConfigError, NotFoundError
from common.knowledge import (
    DEFAULT_TOP_K,
    KNOWLEDGE_PLACEHOLDER,
    MAX_TOP_K,
    KnowledgeConfig,
    check_base_name,
)
from common.knowledge_files import check_knowledge_files
from common.prices import PriceConfig, with_defaults
from common.retired_keys import refuse_retired_keys
from common.schedules import ScheduleConfig, check_schedule_name
from common.strict import Strict
from common.tokens import BudgetError, call_budget

CONFIG_ENV = "ASKQ_CONFIG"
DEFAULT_CONFIG_FILE = "jobs.yaml"

QA_SYSTEM_PROMPT = (
    "You are a careful assistant. Answer the user's question accurately and concisely. "
    "If you do not know the answer, say that you do not know rather than guessing."
)


class ProviderConfig(Strict):
    model: str = Field(default="gpt-4o-mini", min_length=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=1024, ge=1)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """Longest wait to open a connection to the provider; past it the provider counts as unreachable."""
    first_byte_timeout_s: float = Field(default=300.0, gt=0)
    """Longest wait for a response's first byte. A server with fewer free slots than askq has calls
    in flight (llama.cpp, vLLM, Ollama) queues requests silently: a waiting server is not a dead one."""
    stall_timeout_s: float = Field(
        default=60.0, gt=0, validation_alias=AliasChoices("stall_timeout_s", "request_timeout_s")
    )
    """Longest silence between two chunks of a stream once it has begun (``request_timeout_s``,
    its name before, is still read)."""
    outage_wait_s: float = Field(default=600.0, ge=0)
    """How long jobs wait, without spending attempts, for a provider that cannot be reached."""
    context_tokens: int = Field(default=128_000, ge=1)
    """The model's context window: `askq submit` refuses a question surely longer than this."""
    requests_per_minute: int = Field(default=0, ge=0)
    """Requests a minute askq sends, spaced evenly across every worker (0: no limit but concurrency).
    Set it a little under the provider's limit: a request's arrival time varies by a few ms."""
    tokens_per_minute: int = Field(default=0, ge=0)
    """Tokens a minute askq sends, across every worker, counted as providers count them: at send, the
    prompt's estimate plus ``max_tokens``, the unused part given back when the usage comes (0: none).
    With neither this nor ``requests_per_minute`` set, askq paces from the provider's headers."""
    rate_burst_s: float = Field(default=30.0, gt=0, le=60)
    """Of ``tokens_per_minute``, how many seconds' worth may go at once: it must cover the tokens
    reserved by calls in flight beyond what they use, and stay under the provider's own burst."""


class LimitsConfig(Strict):
    concurrency: int = Field(default=32, ge=1, le=10_000)
    """Provider calls in flight per worker process: the semaphore."""
    max_jobs: int = Field(default=64, ge=1, le=100_000)
    """arq jobs a worker holds at once; jobs beyond `concurrency` wait for a slot or sleep in backoff."""
    job_timeout_s: float = Field(default=600.0, gt=0)
    poll_delay_s: float = Field(default=0.05, gt=0, le=10)
    lease_s: float = Field(default=15.0, ge=1, le=3600)
    """A running job's claim, renewed by its worker every third of this: a job whose worker died is
    picked up again by another within this long. Also ``askq serve``'s claim on a Batch API batch it is
    validating: one whose server died mid-submit is failed by the first read after this long."""
    max_job_runs: int = Field(default=10, ge=1, le=1000)
    """Times a job may be started (its worker lost or stopped each time) before it is recorded failed."""
    shutdown_grace_s: float = Field(default=30.0, ge=0, le=3600)
    """On SIGTERM/SIGINT, how long running jobs may take to finish before they go back to the queue."""


class RetryConfig(Strict):
    attempts: int = Field(default=5, ge=1, le=100)
    initial_wait_s: float = Field(default=0.5, ge=0)
    max_wait_s: float = Field(default=30.0, ge=0)
    jitter_s: float = Field(default=0.5, ge=0)

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryConfig:
        if self.max_wait_s < self.initial_wait_s:
            raise ValueError("max_wait_s must be >= initial_wait_s")
        return self


class StreamConfig(Strict):
    flush_interval_ms: int = Field(default=40, ge=0, le=10_000)
    """A worker process sends the events of all its jobs, in one round trip, at most this often..."""
    flush_chars: int = Field(default=65_536, ge=1)
    """...or as soon as this many characters of text are waiting."""
    log_max_entries: int = Field(default=1_000_000, ge=100)
    """A batch's (or a run's) event log keeps about this many latest entries (approximate ``MAXLEN``);
    each entry is one flush of one worker."""
    keep_ended_events: bool = False
    """Keep every event of a batch's ended jobs for the retention (audit, debugging), about 1.8 KB a
    job for 200-token answers. By default a job's events leave the log once it has ended for good:
    its stored result holds its answer, and the log keeps only what running jobs may still need."""


class RetentionConfig(Strict):
    results_days: float = Field(default=7.0, gt=0)

    @property
    def ttl_s(self) -> int:
        # At least a second: EXPIRE with 0 would delete a result the moment it is written.
        return max(round(self.results_days * 86_400), 1)


class JobTypeConfig(Strict):
    system_prompt: str = Field(min_length=1)
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    knowledge: str | None = None
    """A base of ``knowledge:``: the chunks closest to each question fill ``{knowledge}`` in the prompt."""
    top_k: int = Field(default=DEFAULT_TOP_K, ge=1, le=MAX_TOP_K)
    """How many chunks a question gets, best first."""


def _default_job_types() -> dict[str, JobTypeConfig]:
    return {"qa": JobTypeConfig(system_prompt=QA_SYSTEM_PROMPT)}


class AskqConfig(Strict):
    provider: ProviderConfig = ProviderConfig()
    limits: LimitsConfig = LimitsConfig()
    retry: RetryConfig = RetryConfig()
    stream: StreamConfig = StreamConfig()
    retention: RetentionConfig = RetentionConfig()
    job_types: dict[str, JobTypeConfig] = Field(default_factory=_default_job_types, min_length=1)
    default_job_type: str = "qa"
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict)
    knowledge: dict[str, KnowledgeConfig] = Field(default_factory=dict)
    prices: dict[str, PriceConfig | None] = Field(default_factory=lambda: with_defaults({}))
    """USD per million tokens by model: askq's defaults (``common.prices``), each model given here
    replacing its default, and one given as null having no price."""
    files_root: str | None = None
    """The folder schedules read (``source.glob``) and write (``output``) in, and never leave: relative
    to the folder of jobs.yaml, which is the default. Resolved to an absolute path at load."""

    @property
    def root(self) -> Path:
        return Path(self.files_root) if self.files_root is not None else Path.cwd()

    @model_validator(mode="before")
    @classmethod
    def _no_retired_keys(cls, raw: Any) -> Any:
        refuse_retired_keys(raw)
        return raw

    @field_validator("prices", mode="after")
    @classmethod
    def _over_the_defaults(cls, prices: dict[str, PriceConfig | None]) -> dict[str, PriceConfig | None]:
        return with_defaults(prices)

    @model_validator(mode="after")
    def _default_job_type_exists(self) -> AskqConfig:
        if self.default_job_type not in self.job_types:
            raise ValueError(f"default_job_type {self.default_job_type!r} is not one of job_types")
        for name, schedule in self.schedules.items():
            check_schedule_name(name)
            try:
                call_budget(schedule.context_tokens, self.provider.max_tokens, schedule.prompt)
            except BudgetError as exc:
                raise ValueError(f"schedules.{name}.context_tokens: {exc}") from None
        for name in self.knowledge:
            check_base_name(name)
        for name, job_type in self.job_types.items():
            _check_knowledge_use(name, job_type, self.knowledge)
        return self

    def job_type(self, name: str) -> JobTypeConfig:
        try:
            return self.job_types[name]
        except KeyError:
            known = ", ".join(sorted(self.job_types))
            raise NotFoundError(f"unknown job type {name!r} (jobs.yaml defines: {known})") from None


def _check_knowledge_use(name: str, job_type: JobTypeConfig, bases: dict[str, KnowledgeConfig]) -> None:
    where = f"job_types.{name}"
    has_placeholder = KNOWLEDGE_PLACEHOLDER in job_type.system_prompt
    if job_type.knowledge is None:
        if has_placeholder:
            raise ValueError(
                f"{where}.system_prompt: has {KNOWLEDGE_PLACEHOLDER} but the job type names no knowledge base"
            )
        return
    if job_type.knowledge not in bases:
        known = ", ".join(sorted(bases)) or "none"
        raise ValueError(
            f"{where}.knowledge: unknown knowledge base {job_type.knowledge!r} (knowledge: defines {known})"
        )
    if not has_placeholder:
        raise ValueError(
            f"{where}.system_prompt: must contain {KNOWLEDGE_PLACEHOLDER}, where the retrieved chunks go"
        )


def config_path() -> Path | None:
    """The file to load: $ASKQ_CONFIG, else ./jobs.yaml if present, else None (built-in defaults)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    local = Path(DEFAULT_CONFIG_FILE)
    return local if local.is_file() else None


def load_config(path: Path | None = None, *, check_files: bool = False) -> AskqConfig:
    """``check_files``: refuse a knowledge base whose files are missing, as ``askq submit`` does. Other
    commands need no file: a worker reads the built index from Redis, and `askq cancel` must work
    whatever became of a base's folder (``askq knowledge build`` checks its own base)."""
    path = path if path is not None else config_path()
    if path is None:
        return AskqConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}:{line} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_config(raw, source=str(path), base_dir=path.parent, check_files=check_files)


def parse_config(
    raw: Any, *, source: str = DEFAULT_CONFIG_FILE, base_dir: Path | None = None, check_files: bool = False
) -> AskqConfig:
    """The validated config; ``files_root`` made absolute against ``base_dir`` (default: this folder)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    try:
        config = AskqConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(source, exc)) from None
    root = (base_dir or Path.cwd()) / (config.files_root or ".")
    config = config.model_copy(update={"files_root": os.path.abspath(root)})
    if check_files:
        problem = check_knowledge_files(config.root, config.knowledge)
        if problem is not None:
            raise ConfigError(f"{source}: {problem}")
    return config


def describe_validation_error(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not path:  # a rule across keys: its message names them
            lines.append(f"{source}: {message}")
            continue
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        # A value error of ours names the value already; pydantic's own type errors do not.
        quiet = ("extra_forbidden", "missing", "value_error")
        got = "" if error["type"] in quiet else f" (got {error['input']!r})"
        lines.append(f"{source}: {path}: {message}{got}")
    return "\n".join(lines)
