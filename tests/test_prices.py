"""prices: askq's dated defaults, the user's entries over them, a model's price, and what a call costs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from common.config import AskqConfig, parse_config
from common.prices import (
    DEFAULT_PRICES,
    DEFAULT_PRICES_CHECKED,
    PriceConfig,
    cost_nusd,
    price_for,
    with_defaults,
    worst_case_nusd,
)
from common.usage import Usage
from worker.schedules.output import RunReport, render

MINI = PriceConfig(input=0.15, cached_input=0.075, output=0.60)


def test_the_defaults_price_common_openai_models_and_say_when_checked() -> None:
    """Without prices:, the common OpenAI models have their dated prices; the default model is priced."""
    prices = AskqConfig().prices
    assert prices["gpt-4o-mini"] == MINI
    assert prices["gpt-4o"] == PriceConfig(input=2.5, cached_input=1.25, output=10)
    assert {"gpt-4.1", "gpt-4.1-mini", "o4-mini", "gpt-5", "gpt-5-mini"} <= set(prices)
    assert price_for(prices, AskqConfig().provider.model) is not None
    assert datetime.strptime(DEFAULT_PRICES_CHECKED, "%Y-%m-%d")
    for name, price in DEFAULT_PRICES.items():
        assert price.cached <= price.input <= price.output, name


def test_a_users_price_replaces_its_default_and_null_removes_one() -> None:
    """A model under prices: replaces its default, a new model is added, MODEL: null has no price."""
    prices = parse_config(
        {
            "prices": {
                "gpt-4o": {"input": 1, "output": 2},
                "llama-3.1-8b": {"input": 0, "output": 0},
                "gpt-4o-mini": None,
            }
        }
    ).prices
    assert prices["gpt-4o"] == PriceConfig(input=1, output=2)
    assert prices["gpt-4o"].cached == 1  # no cached price: the input price
    assert price_for(prices, "llama-3.1-8b") == PriceConfig(input=0, output=0)
    assert price_for(prices, "gpt-4o-mini") is None
    assert price_for(prices, "gpt-4o-mini-2024-07-18") is None  # removed, snapshots too
    assert prices["gpt-4.1"] == DEFAULT_PRICES["gpt-4.1"]  # the others kept


def test_a_dated_snapshot_takes_its_models_price_unless_it_has_its_own() -> None:
    """gpt-4o-2024-08-06 is priced as gpt-4o; its own entry wins; other names are unknown."""
    prices = with_defaults({"gpt-4o-2024-05-13": PriceConfig(input=5, output=15)})
    assert price_for(prices, "gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert price_for(prices, "gpt-4o-2024-05-13") == PriceConfig(input=5, output=15)
    assert price_for(prices, "gpt-4o-mini-2024-07-18") == MINI
    assert price_for(prices, "gemma-3-270m") is None
    assert price_for(prices, "gpt-4o-latest") is None  # only a date is a snapshot suffix
    assert price_for(prices, "gpt-4o-2024-08") is None


def test_cost_prices_fresh_prompt_cached_prompt_and_completion_tokens_apart() -> None:
    """cost_nusd = (prompt - cached) x input + cached x cached_input + completion x output, in nano-USD."""
    assert cost_nusd(Usage(prompt_tokens=1_000_000), MINI) == 150_000_000
    assert cost_nusd(Usage(completion_tokens=1_000_000), MINI) == 600_000_000
    # 7 fresh at 0.15 (1050), 3 cached at 0.075 (225), 11 out at 0.60 (6600): exact, not 8875.000001.
    usage = Usage(prompt_tokens=10, cached_tokens=3, completion_tokens=11, total_tokens=21)
    assert cost_nusd(usage, MINI) == 1050 + 225 + 6600
    no_cached_price = PriceConfig(input=0.15, output=0.60)
    assert cost_nusd(usage, no_cached_price) == 1500 + 6600
    assert cost_nusd(Usage(prompt_tokens=1), PriceConfig(input=0.005, output=0)) == 5  # never rounded away


def test_cost_takes_no_provider_count_below_zero_nor_cached_above_the_prompt() -> None:
    """Untrusted counts: negative ones count as none, and cached tokens never exceed the prompt."""
    assert cost_nusd(Usage(prompt_tokens=-5, completion_tokens=-5, cached_tokens=-5), MINI) == 0
    assert cost_nusd(Usage(prompt_tokens=10, cached_tokens=50), MINI) == 10 * 75


def test_the_worst_case_is_the_whole_prompt_at_input_price_and_max_tokens_of_output() -> None:
    """worst_case_nusd assumes nothing cached and a full max_tokens, rounded up, never down."""
    assert worst_case_nusd(1000, 500, MINI) == 1000 * 150 + 500 * 600
    assert worst_case_nusd(7, 0, MINI) == 1050  # float noise (1050.0000000000002) not rounded up
    assert worst_case_nusd(1, 0, PriceConfig(input=0.0001, output=0)) == 1  # 0.1 nano-USD: up
    assert worst_case_nusd(0, 0, MINI) == 0


def _report(model: str, usage: Usage, **changes: object) -> RunReport:
    report = RunReport(
        schedule="nightly",
        run_id="run-1",
        trigger="cron",
        window_start=None,
        window_end=datetime(2026, 11, 30, 2, tzinfo=UTC),
        counts={"answers": 3},
        chunks=1,
        calls=1,
        reduce_levels=0,
        usage=usage,
        map_usage=Usage(),
        batch_api=False,
        model=model,
    )
    return replace(report, **changes)


def test_a_summary_of_a_priced_model_shows_its_cost() -> None:
    """The summary file's cost line prices the run's usage at its model's price, cached tokens apart."""
    usage = Usage(prompt_tokens=1_000_000, cached_tokens=200_000, completion_tokens=100_000)
    prices = AskqConfig().prices
    text = render(_report("gpt-4o-mini", usage), "All good.", prices)
    assert "- tokens: 1000000 in, 100000 out; estimated cost $0.1950\n" in text
    snapshot = render(_report("gpt-4o-mini-2024-07-18", usage), "All good.", prices)
    assert "estimated cost $0.1950" in snapshot
    batch = render(_report("gpt-4o-mini", usage, batch_api=True, map_usage=usage), "All good.", prices)
    assert "estimated cost $0.0975" in batch  # the map step at the Batch API's half price


def test_a_summary_of_an_unpriced_model_says_its_cost_is_unknown() -> None:
    """A model with no price gets "unknown" and the reason, never a cost of zero."""
    usage = Usage(prompt_tokens=120, completion_tokens=30, total_tokens=150)
    text = render(_report("gemma-3-270m", usage), "All good.", AskqConfig().prices)
    assert (
        "- tokens: 120 in, 30 out; estimated cost unknown (no price for model gemma-3-270m in prices:)"
        in text
    )
    assert "$" not in text
    guessed = render(
        _report("gemma-3-270m", usage.model_copy(update={"estimated": True})),
        "All good.",
        AskqConfig().prices,
    )
    assert "~120 in, ~30 out (estimated: the provider reported no usage); estimated cost unknown" in guessed
