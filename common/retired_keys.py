"""jobs.yaml keys askq no longer reads, refused with what replaced them: an "unknown key" alone would
leave the user guessing, and silently ignoring one would leave a setting they believe in unused."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from common.prices import DEFAULT_PRICES

_PRICE_KEYS = {"input_usd_per_mtok": "input", "output_usd_per_mtok": "output"}
"""provider.* keys of one price for every model, replaced by ``prices:``, a price per model."""
_PLAIN_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}")
_DEFAULT_MODEL = "gpt-4o-mini"


def refuse_retired_keys(raw: Any) -> None:
    """Raise ValueError naming each retired key of the raw config and showing its replacement."""
    provider = raw.get("provider") if isinstance(raw, dict) else None
    if not isinstance(provider, dict):
        return
    retired = [key for key in _PRICE_KEYS if key in provider]
    if not retired:
        return
    named = ", ".join(f"provider.{key}" for key in retired)
    raise ValueError(
        f"{named}: replaced by `prices:`, a price per model in USD per million tokens, e.g. "
        f"prices: {_example(provider)} (docs/configuration.md#prices)"
    )


def _example(provider: dict[Any, Any]) -> str:
    """``{MODEL: {input: X, output: Y}}`` with the user's model and prices where they are plain."""
    model = provider.get("model")
    model = model if isinstance(model, str) and _PLAIN_MODEL.fullmatch(model) else _DEFAULT_MODEL
    default = DEFAULT_PRICES.get(model, DEFAULT_PRICES[_DEFAULT_MODEL])
    prices = {"input": default.input, "output": default.output}
    for key, kind in _PRICE_KEYS.items():
        value = _plain_price(provider.get(key))
        if value is not None:
            prices[kind] = value
    shown = ", ".join(f"{kind}: {json.dumps(value)}" for kind, value in prices.items())
    return f"{{{model}: {{{shown}}}}}"


def _plain_price(value: object) -> float | None:
    """The value as a price to show, if it is one (a number, finite, not negative)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None
