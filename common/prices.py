"""What tokens cost: ``prices:`` in jobs.yaml (USD per million tokens, per model) over askq's defaults,
and a call's cost from its usage, in nano-USD.

Money is counted in nano-USD (1e-9 USD) integers: exact when added up (``HINCRBY``, Lua's doubles hold
every integer up to 9e15, 9 million USD), and fine enough that a token at the cheapest price (0.005 USD
a million: 5 nano-USD) is never rounded to nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType

from pydantic import Field

from common.strict import Strict
from common.usage import Usage

MAX_USD_PER_MTOK = 100_000.0
"""A bound on any price, far above any model's (o1-pro's output was 600): a typo of orders of
magnitude is refused, and costs stay within what nano-USD integers hold exactly."""
NANO_USD_PER_TOKEN_AT_1_USD_PER_MTOK = 1000
"""One token at 1 USD a million tokens costs 1e-6 USD: 1,000 nano-USD."""
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


class PriceConfig(Strict):
    """A model's prices in USD per million tokens, as providers publish them."""

    input: float = Field(ge=0, le=MAX_USD_PER_MTOK)
    """Prompt tokens the provider did not read from its prompt cache."""
    cached_input: float | None = Field(default=None, ge=0, le=MAX_USD_PER_MTOK)
    """Prompt tokens read from the provider's prompt cache (``prompt_tokens_details.cached_tokens``);
    None: the same as ``input``."""
    output: float = Field(ge=0, le=MAX_USD_PER_MTOK)
    """Completion tokens, reasoning tokens included (providers count them among completion tokens)."""

    @property
    def cached(self) -> float:
        """The price of a cached prompt token, ``input`` when none is given."""
        return self.input if self.cached_input is None else self.cached_input


def _price(input: float, cached_input: float, output: float) -> PriceConfig:
    return PriceConfig(input=input, cached_input=cached_input, output=output)


# OpenAI's standard prices for chat completions in USD per million tokens (input, cached input,
# output), checked on 2026-11-30 against OpenAI's model pages (developers.openai.com/api/docs/models)
# and, where those were not at hand, price tables that quote them. Prices change: jobs.yaml's
# `prices:` replaces any of them (docs/configuration.md#prices).
DEFAULT_PRICES_CHECKED = "2026-11-30"
DEFAULT_PRICES: Mapping[str, PriceConfig] = MappingProxyType(
    {
        "gpt-4o-mini": _price(0.15, 0.075, 0.60),
        "gpt-4o": _price(2.50, 1.25, 10.00),
        "gpt-4.1": _price(2.00, 0.50, 8.00),
        "gpt-4.1-mini": _price(0.40, 0.10, 1.60),
        "gpt-4.1-nano": _price(0.10, 0.025, 0.40),
        "o3": _price(2.00, 0.50, 8.00),
        "o4-mini": _price(1.10, 0.275, 4.40),
        "gpt-5": _price(1.25, 0.125, 10.00),
        "gpt-5-mini": _price(0.25, 0.025, 2.00),
        "gpt-5-nano": _price(0.05, 0.005, 0.40),
        "gpt-5.4": _price(2.50, 0.25, 15.00),
        "gpt-5.4-mini": _price(0.75, 0.075, 4.50),
        "gpt-5.4-nano": _price(0.20, 0.02, 1.25),
        "gpt-5.5": _price(5.00, 0.50, 30.00),
    }
)


def with_defaults(prices: Mapping[str, PriceConfig | None]) -> dict[str, PriceConfig | None]:
    """The price table: askq's defaults, each model the user gave replaced by theirs. A user's None
    stays in the table: that model has no price, whatever the defaults or its base name say."""
    return {**DEFAULT_PRICES, **prices}


def price_for(prices: Mapping[str, PriceConfig | None], model: str) -> PriceConfig | None:
    """The model's price: its own name's, else (a dated snapshot, ``gpt-4o-2024-08-06``) its name's
    without the date, else None (unknown, never zero)."""
    if model in prices:
        return prices[model]
    base = _SNAPSHOT_SUFFIX.sub("", model)
    return prices.get(base) if base != model else None


def cost_nusd(usage: Usage, price: PriceConfig) -> int:
    """What a call with this usage cost, in nano-USD: its cached prompt tokens at the cached-input price,
    the rest of its prompt at the input price, its completion at the output price. Counts from the
    provider are untrusted: none is taken below zero, nor cached tokens above the prompt."""
    prompt = max(usage.prompt_tokens, 0)
    cached = min(max(usage.cached_tokens or 0, 0), prompt)
    completion = max(usage.completion_tokens, 0)
    usd_per_mtok_tokens = (prompt - cached) * price.input + cached * price.cached + completion * price.output
    return round(usd_per_mtok_tokens * NANO_USD_PER_TOKEN_AT_1_USD_PER_MTOK)


def worst_case_nusd(prompt_tokens: int, max_tokens: int, price: PriceConfig) -> int:
    """The most a call can cost, in nano-USD: every prompt token at the input price (none assumed
    cached) and ``max_tokens`` of completion, rounded up."""
    usd_per_mtok_tokens = max(prompt_tokens, 0) * price.input + max(max_tokens, 0) * price.output
    # Rounded to a millionth first: 7 tokens at 0.15 is 1050.0000000000002 in floats, not 1051.
    return math.ceil(round(usd_per_mtok_tokens * NANO_USD_PER_TOKEN_AT_1_USD_PER_MTOK, 6))
