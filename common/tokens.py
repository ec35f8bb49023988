"""A cheap token estimate, for checks that must not call a tokenizer per line.

About four bytes of UTF-8 make a token in English text; scripts with multi-byte characters make
more tokens per byte, so this errs low there. A check built on it refuses only text that is surely
too long, never text that would fit.
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


INSTRUCTION_TOKENS = 60
"""Room for the instruction line each summary call adds before its input."""


class BudgetError(ValueError):
    """A context too small for a schedule's prompt and output."""


@dataclass(frozen=True)
class Budget:
    input_tokens: int
    """Input per call, after the prompt and the instruction."""
    output_tokens: int
    """``max_tokens`` of each call."""


def call_budget(context_tokens: int, max_tokens: int, prompt: str) -> Budget:
    output = min(max_tokens, context_tokens // 4)
    room = context_tokens - output - estimate_tokens(prompt) - INSTRUCTION_TOKENS
    if room < 2 * output:
        raise BudgetError(
            f"context_tokens {context_tokens} leaves {max(room, 0)} tokens of input per call after the "
            f"prompt and {output} tokens of output; at least {2 * output} are needed: raise context_tokens "
            "or shorten the prompt"
        )
    return Budget(input_tokens=room, output_tokens=output)
