"""jobs.yaml: defaults, validation messages naming file and key path, and ASKQ_CONFIG."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.config import AskqConfig, load_config
from common.errors import ConfigError, NotFoundError

REPO = Path(__file__).resolve().parents[1]


def test_shipped_jobs_yaml_equals_the_defaults() -> None:
    """The repository's jobs.yaml documents the defaults: loading it gives the same config as none."""
    shipped = load_config(REPO / "jobs.yaml")
    assert shipped.files_root == str(REPO)  # the folder of jobs.yaml
    assert shipped.model_copy(update={"files_root": None}) == AskqConfig()


def test_defaults_match_the_spec() -> None:
    """gpt-4o-mini at temperature 0, a qa job type that admits not knowing, 7 days of retention."""
    config = AskqConfig()
    assert (config.provider.model, config.provider.temperature) == ("gpt-4o-mini", 0.0)
    assert "do not know" in config.job_types["qa"].system_prompt
    assert config.retention.ttl_s == 7 * 86_400


def _schedule(*, cron: str, tz: str, kind: str) -> str:
    return (
        f'schedules:\n  nightly:\n    cron: "{cron}"\n    timezone: {tz}\n'
        f"    prompt: Summarize\n    source: {{kind: {kind}}}\n"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("limits:\n  concurency: 4\n", "limits.concurency: unknown key"),
        ("limits:\n  concurrency: lots\n", "limits.concurrency: Input should be a valid integer"),
        ("limits:\n  concurrency: 0\n", "limits.concurrency: Input should be greater than or equal to 1"),
        (
            "retry:\n  initial_wait_s: 5\n  max_wait_s: 1\n",
            "retry: max_wait_s must be >= initial_wait_s",
        ),
        ("job_types:\n  qa:\n    prompt: hi\n", "job_types.qa.prompt: unknown key"),
        ("- just\n- a list\n", "expected a mapping of settings at the top level"),
        (
            "prices:\n  m: {input: -1, output: 1}\n",
            "prices.m.input: Input should be greater than or equal to 0",
        ),
        ("prices:\n  m: {input: 1, output: 1, reasoning: 2}\n", "prices.m.reasoning: unknown key"),
        ("prices:\n  m: {input: 1}\n", "prices.m.output: Field required"),
        (
            "prices:\n  m: {input: 1, output: 1.0e+9}\n",
            "prices.m.output: Input should be less than or equal to",
        ),
        (
            "provider:\n  input_usd_per_mtok: 0.5\n",
            "provider.input_usd_per_mtok: replaced by `prices:`, a price per model in USD per million "
            "tokens, e.g. prices: {gpt-4o-mini: {input: 0.5, output: 0.6}} (docs/configuration.md#prices)",
        ),
        (
            "provider:\n  model: gpt-4o\n  input_usd_per_mtok: 3\n  output_usd_per_mtok: 12\n",
            "provider.input_usd_per_mtok, provider.output_usd_per_mtok: replaced by `prices:`, a price per "
            "model in USD per million tokens, e.g. prices: {gpt-4o: {input: 3.0, output: 12.0}}",
        ),
        (
            'provider:\n  model: "a\\e[31m"\n  output_usd_per_mtok: lots\n',
            "provider.output_usd_per_mtok: replaced by `prices:`, a price per model in USD per million "
            "tokens, e.g. prices: {gpt-4o-mini: {input: 0.15, output: 0.6}}",
        ),
        ("provider: [unclosed\n", "is not valid YAML"),
        (
            "provider:\n  tokens_per_minute: -1\n",
            "provider.tokens_per_minute: Input should be greater than or equal to 0",
        ),
        (
            "provider:\n  requests_per_minute: -5\n",
            "provider.requests_per_minute: Input should be greater than or equal to 0",
        ),
        ("provider:\n  rate_burst_s: -2\n", "provider.rate_burst_s: Input should be greater than 0"),
        (
            "provider:\n  rate_burst_s: 90\n",
            "provider.rate_burst_s: Input should be less than or equal to 60",
        ),
        (
            _schedule(cron="0 2 * *", tz="Europe/Paris", kind="answers"),
            "schedules.nightly.cron: invalid cron expression '0 2 * *': expected 5 fields",
        ),
        (
            _schedule(cron="0 25 * * *", tz="Europe/Paris", kind="answers"),
            "schedules.nightly.cron: invalid cron expression '0 25 * * *': hour: 25 is outside",
        ),
        (
            _schedule(cron="0 2 * * *", tz="Mars/Olympus", kind="answers"),
            "schedules.nightly.timezone: unknown timezone 'Mars/Olympus'",
        ),
        (
            _schedule(cron="0 2 * * *", tz="Europe/Paris", kind="emails"),
            "schedules.nightly.source: Input tag 'emails' found using 'kind' does not match",
        ),
        (
            _schedule(cron="0 2 * * *", tz="UTC", kind="answers").replace("nightly", "bad name"),
            "schedule name 'bad name': use 1-64 letters",
        ),
        (
            _schedule(cron="0 2 * * *", tz="UTC", kind="answers").replace("Summarize", "Summarize " * 120)
            + "    context_tokens: 600\n",
            "schedules.nightly.context_tokens: context_tokens 600 leaves",
        ),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    """Each invalid jobs.yaml is refused with the file name and the offending key path."""
    path = tmp_path / "jobs.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_askq_config_env_points_at_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$ASKQ_CONFIG is read instead of ./jobs.yaml, and a missing one is an error, not the defaults."""
    other = tmp_path / "other.yaml"
    other.write_text("provider:\n  model: gpt-4o\n")
    monkeypatch.setenv("ASKQ_CONFIG", str(other))
    assert load_config().provider.model == "gpt-4o"
    monkeypatch.setenv("ASKQ_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_config()


def test_unknown_job_type_lists_the_known_ones() -> None:
    """Asking for a job type jobs.yaml does not define names the ones it does."""
    with pytest.raises(NotFoundError, match=r"unknown job type 'summarize' \(jobs.yaml defines: qa\)"):
        AskqConfig().job_type("summarize")


def test_default_job_type_must_exist(tmp_path: Path) -> None:
    """default_job_type naming an undefined type is refused at load."""
    path = tmp_path / "jobs.yaml"
    path.write_text("default_job_type: nope\n")
    with pytest.raises(ConfigError, match="default_job_type 'nope' is not one of job_types"):
        load_config(path)


def test_a_schedule_reads_with_its_defaults(tmp_path: Path) -> None:
    """A minimal schedule gets UTC-less defaults filled in: output folder, budget, catch-up on."""
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "schedules:\n  docs:\n    cron: '30 2 * * 1-5'\n    timezone: America/New_York\n"
        "    prompt: Digest the changes\n    source: {kind: files, glob: 'docs/**/*.md'}\n"
    )
    schedule = load_config(path).schedules["docs"]
    assert (schedule.output, schedule.context_tokens, schedule.catch_up) == ("summaries", 8000, True)
    assert schedule.source.kind == "files"
    assert schedule.next_fire(datetime(2026, 11, 21, tzinfo=UTC)).isoformat() == "2026-11-23T02:30:00-05:00"
