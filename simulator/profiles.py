"""Provider profiles: the settings that make the simulator behave as a server people actually run.

Each was observed against the real server with a small model (Gemma 3 270M); the tests drive askq
against each profile, and against the real llama-cpp-python server where it is installed.
"""

from __future__ import annotations

from typing import Any

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
