"""``askq demo``: the whole pipeline on embedded defaults, from an empty machine, leaving nothing running.

It starts a private redis-server, the simulator (unless OPENAI_API_KEY or OPENAI_BASE_URL names a
real provider) and a worker, submits the example questions, streams one answer live, prints the
results table, then builds the café menu knowledge base, streams one answer grounded in it with its
sources, and stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from redis.asyncio import Redis

from askq.commands import stderr, stdout, wait_for_batch
from askq.knowledge_view import build_bar, report_lines
from askq.render import results_table
from askq.stack import embedded_redis, simulator_process
from askq.tail_view import tail_job
from askq.terminal import markup
from common.config import AskqConfig, JobTypeConfig, load_config
from common.errors import InputError
from common.knowledge import KnowledgeConfig
from common.logs import configure_logging
from common.wording import counted
from producer.batches import BatchStatus, batch_status
from producer.connection import connect
from producer.results import iter_results
from producer.submit import submit_file
from worker.knowledge.build import build_base
from worker.queue.askq_worker import AskqWorker
from worker.settings import worker_settings

# Shipped inside the package (package data): a non-editable install has no source tree around it.
EXAMPLES = Path(__file__).resolve().parent / "examples" / "questions.jsonl"
MENU_QUESTIONS = EXAMPLES.with_name("menu_questions.jsonl")
MENU = "menu"
# The seed's prompt ("[[빽다방 메뉴 정보]]\n{지식}"), for a café of our own.
MENU_PROMPT = (
    "You answer questions about the café's menu. Use only the menu below, and say that you do not "
    "know otherwise. Answer in the language of the question.\n\n[[Menu]]\n{knowledge}"
)
DATA_DIR = Path(".askq") / "demo-redis"
# Slow enough to watch the answer stream in, with a few 500s so the retries show in the table (a
# 503 would not: it says the server is away, and jobs wait for it without spending attempts).
SIMULATOR_FLAGS = (
    "--ttft-ms",
    "400",
    "--tokens-per-s",
    "40",
    "--answer-tokens",
    "60",
    "--rate-500",
    "0.2",
    "--seed",
    "7",
)


@contextlib.contextmanager
def provider() -> Iterator[str]:
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        yield "your provider (OPENAI_API_KEY / OPENAI_BASE_URL)"
        return
    with simulator_process(*SIMULATOR_FLAGS) as base_url:
        os.environ["OPENAI_BASE_URL"] = base_url
        try:
            yield f"the simulator at {base_url}"
        finally:
            del os.environ["OPENAI_BASE_URL"]


async def run_demo(
    questions: Path | None = None, serve_port: int | None = None, console: bool = False
) -> int:
    """``serve_port``: keep the stack up behind ``askq serve`` on it after the demo (0: any free port);
    ``console``: and say where its web console is.

    SIGTERM or SIGHUP (the terminal closed) stop it as Ctrl-C does: its redis-server and simulator
    are stopped on the way out, never left running."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    stopped_by: list[int] = []

    def stop(number: int) -> None:
        stopped_by.append(number)
        task.cancel()

    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no such signal (Windows)
            loop.add_signal_handler(stop_signal, stop, stop_signal)
    try:
        return await _demo(questions, serve_port, console)
    except asyncio.CancelledError:
        if not stopped_by:
            raise  # Ctrl-C: asyncio.run turns it into KeyboardInterrupt, exit 130
        return 128 + stopped_by[0]


async def _demo(questions: Path | None, serve_port: int | None, console: bool) -> int:
    questions = questions or EXAMPLES
    if not questions.is_file():
        raise InputError(f"{questions}: no such file")
    # The simulator's 500s are on purpose, and the tries column shows their retries: no warning lines.
    configure_logging(errors_only=True, json=False)
    config = load_config()
    with embedded_redis(DATA_DIR) as url, provider() as where:
        stderr.print(f"[bold]askq demo[/]: embedded Redis at {url}, answers from {where}")
        menu_config = with_menu(config)
        worker = AskqWorker(**worker_settings(menu_config, url=url), handle_signals=False)
        worker_task = asyncio.create_task(worker.async_run())
        try:
            async with connect(url) as redis:
                report = await submit_file(redis, questions, config)
                stderr.print(
                    f"submitted {counted(report.items, 'question')} as batch [bold]{report.batch}[/]\n"
                )
                first = (await batch_status(redis, report.batch, job_id_limit=1)).job_ids[0]
                stderr.print(f"[bold]askq tail {markup(first)}[/] (live):")
                await tail_job(first, as_json=False, url=url)
                stderr.print()
                status = await wait_for_batch(redis, report.batch, show=True)
                rows = [result async for result in iter_results(redis, report.batch)]
                stdout.print(results_table(rows, width=stdout.width))
                await _knowledge_part(redis, menu_config, url)
                _said_next(status)
                if serve_port is not None:
                    from askq.demo_serve import serve_until_stopped  # FastAPI: loaded when asked

                    await serve_until_stopped(menu_config, url, serve_port, first, console=console)
        finally:
            await worker.close()
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
    return 0


def _said_next(status: BatchStatus) -> None:
    stderr.print(
        f"\n{status.finished} of {status.total} answered in batch {status.batch}, and the café's "
        f"questions from its menu. Next: "
        "`askq worker` + `askq submit FILE --wait` against your own Redis (see README), "
        "`askq knowledge build` for your own documents (docs/knowledge.md), and "
        "`askq demo --console` to watch batches in your browser (docs/console.md)."
    )


def with_menu(config: AskqConfig) -> AskqConfig:
    """``config`` with the example café menu as knowledge base ``menu`` and a ``menu`` job type."""
    examples = EXAMPLES.parent
    base = KnowledgeConfig(files="knowledge/menu/*.md", chunk_tokens=120, chunk_overlap_tokens=20)
    job_type = JobTypeConfig(system_prompt=MENU_PROMPT, knowledge=MENU, top_k=2)
    return config.model_copy(
        update={
            "knowledge": {**config.knowledge, MENU: base},
            "job_types": {**config.job_types, MENU: job_type},
            "files_root": str(examples),
        }
    )


async def _knowledge_part(redis: Redis, config: AskqConfig, url: str) -> None:
    """`askq knowledge build menu`, then the café's questions with `--job menu`, one tailed live."""
    stderr.print(
        f"\n[bold]askq knowledge build {MENU}[/] (the café menu in {EXAMPLES.parent / 'knowledge'}):"
    )
    with build_bar(stderr, MENU, show=True) as progress:
        built = await build_base(redis, config, MENU, progress)
    for line in report_lines(built)[:2]:
        stderr.print(line, markup=False)
    report = await submit_file(redis, MENU_QUESTIONS, config, job_type=MENU)
    stderr.print(
        f"\nsubmitted {counted(report.items, 'question')} with --job {MENU} as batch [bold]{report.batch}[/]"
    )
    first = (await batch_status(redis, report.batch, job_id_limit=1)).job_ids[0]
    stderr.print(f"[bold]askq tail {markup(first)}[/] (live, with the chunks its prompt got):")
    await tail_job(first, as_json=False, url=url)
    stderr.print()
    await wait_for_batch(redis, report.batch, show=True)
    rows = [result async for result in iter_results(redis, report.batch)]
    stdout.print(results_table(rows, width=stdout.width))
