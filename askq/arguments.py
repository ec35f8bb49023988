"""Argument types and the ``askq knowledge`` parser: what ``askq.cli`` builds its parser from."""

from __future__ import annotations

import argparse
from typing import Any

from common.knowledge import DEFAULT_TOP_K


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def add_knowledge_parser(commands: Any) -> None:
    knowledge = commands.add_parser("knowledge", help="knowledge bases from jobs.yaml: build, list, search")
    subcommands = knowledge.add_subparsers(dest="knowledge_command", required=True, metavar="SUBCOMMAND")
    build = subcommands.add_parser(
        "build",
        help="read, chunk and embed a base's files into Redis (a rebuild embeds only changed files)",
    )
    build.add_argument("name")
    build.add_argument("--json", action="store_true", help="the report as one JSON document, no progress bar")
    listing = subcommands.add_parser("list", help="each base with its files, chunks, model and size")
    listing.add_argument("--json", action="store_true")
    search = subcommands.add_parser("search", help="the chunks closest to a question, with their scores")
    search.add_argument("name")
    search.add_argument("question")
    search.add_argument(
        "-k", type=positive, default=DEFAULT_TOP_K, metavar="N", help="chunks shown (default 4)"
    )
    search.add_argument("--json", action="store_true")
