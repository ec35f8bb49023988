"""Provider profiles: the settings that make the simulator behave as a server people actually run.

Each was observed against the real server with a small model (Gemma 3 270M); the tests drive askq
against each profile, and against the real llama-cpp-python server where it is installed.
"""

from __future__ import annotations

from typing import Any

from .settings import SettingsError, SimulatorSettings

PROFILE = "profile"
"""The key that names a profile: a flag of ``python -m simulator`` and a key of ``/_sim/settings``."""

PROFILES: dict[str, dict[str, Any]] = {
    "openai": {},
    "llama-server": {
        # cpp-httplib closes the socket after each streamed response while sending Keep-Alive.
        "close_after_response": True,
        # --parallel 4: a request beyond the slots gets no byte, not even headers, until one frees.
        "slots": 4,
        "context_tokens": 4096,
    },
    "llama-cpp-python": {
        # --interrupt_requests True (its default): a waiting request ends the running stream.
        "interrupt_on_wait": True,
        "slots": 1,
        # stream_options is ignored: no usage chunk.
        "usage_chunk": False,
        # Streamed, a prompt past the context gets 200 and an empty body.
        "context_tokens": 4096,
    },
}
"""Profile name -> settings; flags given beside ``--profile`` override it."""


def profile_settings(name: object) -> dict[str, Any]:
    """The settings of profile ``name``, with what the other profiles set back at its default, so that
    switching profiles at runtime leaves nothing of the one before; SettingsError for an unknown one."""
    if not isinstance(name, str) or name not in PROFILES:
        raise SettingsError(PROFILE, f"unknown profile {name!r} (known: {', '.join(PROFILES)})")
    keys = sorted({key for settings in PROFILES.values() for key in settings})
    defaults = {key: SimulatorSettings.model_fields[key].default for key in keys}
    return {**defaults, **PROFILES[name]}


def with_profile(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` with a ``profile`` key replaced by its settings; the other keys given win over them."""
    if PROFILE not in changes:
        return changes
    rest = {key: value for key, value in changes.items() if key != PROFILE}
    return {**profile_settings(changes[PROFILE]), **rest}
