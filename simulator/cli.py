"""Command line: one flag per setting, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from pydantic import ValidationError

from .profiles import PROFILE, PROFILES, profile_settings
from .server import start_simulator
from .settings import SettingsError, SimulatorSettings


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # A single line keeps wrapper scripts' logs readable; usage is one `--help` away.
        self.exit(2, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port


def _flag_type(annotation: Any) -> Callable[[str], Any]:
    types: dict[Any, Callable[[str], Any]] = {int: int, float: float, bool: _yes_no}
    return types.get(annotation, str)


def _yes_no(text: str) -> bool:
    if text.lower() not in {"true", "false", "yes", "no", "1", "0"}:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in {"true", "yes", "1"}


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="python -m simulator", description="OpenAI-compatible chat-completions and embeddings simulator"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument(
        "--" + PROFILE,
        help=f"behave as a server people run: {', '.join(PROFILES)}; flags given beside it override it",
    )
    for name, field in SimulatorSettings.model_fields.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_flag_type(field.annotation),
            default=None,
            help=f"{field.description or name} (default {field.default})",
        )
    return parser


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    flags = {name: getattr(args, name) for name in SimulatorSettings.model_fields}
    given = {name: value for name, value in flags.items() if value is not None}
    profile = profile_settings(args.profile) if args.profile is not None else {}
    try:
        return SimulatorSettings.model_validate({**profile, **given})
    except ValidationError as exc:
        raise SettingsError.from_validation(exc) from None


async def serve(settings: SimulatorSettings, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Handlers go in before the announcement so a supervisor's SIGTERM is always a clean stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with await start_simulator(settings, host, port) as sim:
        print(f"simulator listening on {sim.base_url}", flush=True)
        await stop.wait()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: the simulator shares the benchmark's two cores with askq."""
    try:
        import uvloop
    except ImportError:  # not built for every platform (Windows); asyncio's loop serves
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        flag = "--" + exc.key.replace("_", "-") if exc.key else "settings"
        parser.error(f"{flag}: {exc.reason}")
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings, args.host, args.port))
    except OSError as exc:
        print(f"{parser.prog}: error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # only possible before the signal handlers are installed
        return 0
    return 0
