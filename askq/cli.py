"""``askq``: submit question files, run workers, watch and collect results.

A user's mistake (bad file, bad config, unreachable Redis, unknown batch) is one line on stderr and
exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from redis.exceptions import RedisError

from askq.arguments import add_knowledge_parser, port, positive
from askq.render import error_json
from common.errors import AskqError
from common.redis_url import command_error, redis_url
from common.secrets import redact_secrets
from common.untrusted import visible
from producer.lines import FORMATS as QUESTION_FORMATS
from producer.result_lines import RESULT_FORMATS

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are JSON too when the command line asks for ``--json``."""

    json_errors = False  # set by main for the parser and its subparsers alike

    def error(self, message: str) -> NoReturn:
        if _Parser.json_errors:
            print(error_json("UsageError", f"{self.prog}: {message}"), file=sys.stderr)
            self.exit(EXIT_USAGE)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="askq",
        description="Durable, observable batch runner for LLM questions (Redis + arq workers).",
        epilog="Environment: REDIS_URL (default redis://localhost:6379), ASKQ_CONFIG (default ./jobs.yaml), "
        "OPENAI_API_KEY / OPENAI_BASE_URL (the provider).",
    )
    parser.add_argument("--version", action="version", version=f"askq {askq_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run an arq worker that answers queued questions")
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.add_argument("--concurrency", type=positive, metavar="N", help="provider calls in flight")
    worker.add_argument("-v", "--verbose", action="store_true", help="debug logs, and arq's own")
    worker.add_argument(
        "--no-provider-check",
        dest="provider_check",
        action="store_false",
        help="start without first asking the provider for its models",
    )

    submit = commands.add_parser("submit", help="enqueue one job per question of a .jsonl, .txt or .csv file")
    submit.add_argument("file", type=Path, help="the question file, or - for standard input (with --format)")
    submit.add_argument(
        "--format", choices=QUESTION_FORMATS, help="the file's format (default: from its extension)"
    )
    submit.add_argument("--batch", metavar="NAME", help="batch name (default: file name + content hash)")
    submit.add_argument("--job", metavar="TYPE", help="job type from jobs.yaml (default: qa)")
    submit.add_argument("--wait", action="store_true", help="show progress until the batch is done")
    submit.add_argument("--skip-invalid", action="store_true", help="enqueue the good lines, report the bad")
    submit.add_argument("--json", action="store_true", help="machine-readable output")

    status = commands.add_parser(
        "status",
        help="totals by state, tokens, latency and the first job ids of a batch (--ids: all); "
        "given a job id, that job: state, attempts, tokens, error, sources",
    )
    status.add_argument("batch", help="a batch, or one job's id (BATCH:ITEM)")
    status.add_argument(
        "--ids", action="store_true", help="print every job id instead, one a line, in input order"
    )
    status.add_argument("--json", action="store_true", help="one JSON document; with --ids, JSON lines")

    results = commands.add_parser("results", help="one line per item in input order")
    results.add_argument("batch")
    results.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    results.add_argument("--format", choices=RESULT_FORMATS, default="jsonl")

    retry = commands.add_parser("retry", help="put a batch's failed jobs back in the queue")
    retry.add_argument("batch")
    retry.add_argument("--cancelled", action="store_true", help="re-run cancelled jobs too")

    cancel = commands.add_parser("cancel", help="cancel a batch's queued jobs and abort its running ones")
    cancel.add_argument("batch")

    tail = commands.add_parser(
        "tail",
        help="print a job's answer from its start as it streams, or follow a whole batch",
        description="askq tail JOB_ID prints the job's text from its start, then follows it live. "
        "askq tail --batch BATCH shows the batch's progress and each answer as its job ends.",
    )
    tail.add_argument("job_id", nargs="?", help="BATCH:ITEM, as `askq status BATCH` lists")
    tail.add_argument("--batch", metavar="BATCH", help="follow every job of this batch")
    tail.add_argument("--follow", action="store_true", help="with --batch: stream running jobs' text too")
    tail.add_argument("--json", action="store_true", help="raw events as JSON lines")

    schedule = commands.add_parser("schedule", help="scheduled summaries from jobs.yaml")
    schedule_commands = schedule.add_subparsers(dest="schedule_command", required=True, metavar="SUBCOMMAND")
    schedule_list = schedule_commands.add_parser("list", help="each schedule with its next fire time")
    schedule_list.add_argument("--json", action="store_true")
    schedule_run = schedule_commands.add_parser(
        "run",
        help="run a schedule now and follow it",
        description="Queue a run of the schedule for "
        "the workers now, then print it as it streams (as `askq tail RUN_ID` would).",
    )
    schedule_run.add_argument("name")
    schedule_run.add_argument("--no-wait", action="store_true", help="print the run id and return")
    schedule_run.add_argument("--json", action="store_true", help="raw events as JSON lines")
    schedule_history = schedule_commands.add_parser("history", help="a schedule's past runs and their files")
    schedule_history.add_argument("name")
    schedule_history.add_argument("--limit", type=positive, default=20, help="runs shown (default 20)")
    schedule_history.add_argument("--json", action="store_true")

    add_knowledge_parser(commands)
    serve = commands.add_parser("serve", help="the HTTP API: askq's own, the OpenAI Batch API, live events")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=port, default=8700, help="port (default 8700; 0: any free one)")
    serve.add_argument("--token-file", type=Path, metavar="FILE", help="the API token (else $ASKQ_API_TOKEN)")

    batches = commands.add_parser("batches", help="recent batches with their counts and age, newest first")
    batches.add_argument("--limit", type=positive, default=20, help="batches shown (default 20)")
    batches.add_argument("--json", action="store_true")

    delete = commands.add_parser("delete", help="delete a batch: its jobs, results, events and counters")
    delete.add_argument("batch")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.add_argument("--json", action="store_true")

    demo = commands.add_parser("demo", help="run everything locally: embedded Redis, simulator, a worker")
    demo.add_argument("--questions", type=Path, help="question file (default: askq/examples/questions.jsonl)")
    demo.add_argument(
        "--serve",
        nargs="?",
        const=8700,
        type=port,
        metavar="PORT",
        help="then keep it all up behind askq serve (default port 8700) until Ctrl-C",
    )
    demo.add_argument(
        "--console",
        nargs="?",
        const=8700,
        type=port,
        metavar="PORT",
        help="as --serve, and print the web console's address: upload a file there and watch it answered",
    )
    return parser


def askq_version() -> str:
    try:
        return version("askq")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _Parser.json_errors = "--json" in (sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    if args.command == "tail" and (args.job_id is None) == (args.batch is None):
        parser.error("tail: give a JOB_ID or --batch BATCH (one of them)")
    if args.command == "tail" and args.follow and args.batch is None:
        parser.error("tail: --follow goes with --batch (a single job is always followed)")
    try:
        return _dispatch(args)
    except AskqError as exc:
        report_error(exc, as_json=as_json)
        return EXIT_ERROR
    except RedisError as exc:
        # Redis refused or dropped a command after the first contact (an ACL, maxmemory, a restart).
        report_error(command_error(redis_url(), exc), as_json=as_json)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`askq results B | head`): not an error, and no traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def report_error(exc: AskqError, *, as_json: bool) -> None:
    """One line on stderr: ``askq: message``, or with ``--json`` a JSON object scripts can read."""
    message = visible(redact_secrets(str(exc)))  # paths and ids in it come from the user's files
    if as_json:
        print(error_json(type(exc).__name__, message), file=sys.stderr)
    else:
        print(f"askq: {message}", file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    from askq import commands

    if args.command == "worker":
        from askq.run_worker import run_worker

        return run_worker(
            burst=args.burst,
            concurrency=args.concurrency,
            verbose=args.verbose,
            provider_check=args.provider_check,
        )
    if args.command == "demo":
        from askq.demo import run_demo

        serve_port = args.console if args.console is not None else args.serve
        console = args.console is not None
        return _run(run_demo, questions=args.questions, serve_port=serve_port, console=console)
    if args.command == "submit":
        return _run(
            commands.submit,
            args.file,
            batch=args.batch,
            job_type=args.job,
            wait=args.wait,
            as_json=args.json,
            skip_invalid=args.skip_invalid,
            fmt=args.format,
        )
    if args.command in ("batches", "delete"):
        from askq import manage

        if args.command == "batches":
            return _run(manage.batches, limit=args.limit, as_json=args.json)
        return _run(manage.delete, args.batch, yes=args.yes, as_json=args.json)
    if args.command == "status":
        return _run(commands.status, args.batch, as_json=args.json, ids=args.ids)
    if args.command == "retry":
        return _run(commands.retry, args.batch, include_cancelled=args.cancelled)
    if args.command == "cancel":
        return _run(commands.cancel, args.batch)
    if args.command == "schedule":
        return _schedule(args)
    if args.command == "knowledge":
        return _knowledge(args)
    if args.command == "serve":
        from askq.serve import serve  # FastAPI and uvicorn: loaded when used

        return serve(args.host, args.port, args.token_file)
    if args.command == "results":
        return _run(commands.results, args.batch, output=args.output, fmt=args.format)
    if args.batch is not None:
        from askq.tail_batch_view import tail_batch

        return _run(tail_batch, args.batch, follow=args.follow, as_json=args.json)
    from askq.tail_view import tail_job

    return _run(tail_job, args.job_id, as_json=args.json)


def _schedule(args: argparse.Namespace) -> int:
    from askq import commands

    if args.schedule_command == "run":
        return _run(commands.schedule_run, args.name, wait=not args.no_wait, as_json=args.json)
    if args.schedule_command == "history":
        return _run(commands.schedule_history, args.name, limit=args.limit, as_json=args.json)
    return _run(commands.schedule_list, as_json=args.json)


def _knowledge(args: argparse.Namespace) -> int:
    from askq import knowledge_commands

    if args.knowledge_command == "build":
        return _run(knowledge_commands.build, args.name, as_json=args.json)
    if args.knowledge_command == "search":
        return _run(knowledge_commands.search, args.name, args.question, k=args.k, as_json=args.json)
    return _run(knowledge_commands.list_bases, as_json=args.json)


def _run(command: Callable[..., Coroutine[Any, Any, int]], *args: Any, **kwargs: Any) -> int:
    return asyncio.run(command(*args, **kwargs))


if __name__ == "__main__":
    sys.exit(main())
