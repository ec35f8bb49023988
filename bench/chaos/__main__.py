"""Faults a batch must survive, one scenario each, and what was lost, stuck or done twice.

    .venv/bin/python -m bench.chaos [--jobs 300] [--scenarios mix stall ...] [--out FILE]

Each scenario starts its own redis-server (AOF on unless the scenario is about persistence), the
simulator and ``askq worker`` processes with the default ``jobs.yaml`` limits but a 3 s lease,
submits ``--jobs`` questions with ``askq submit``, injects its fault while the batch runs, waits for
the batch to end, and counts from the results, the records and the event log (see
``bench.chaos.account``). Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from askq.stack import free_port, simulator_process
from bench.chaos.account import account
from bench.chaos.scenarios import LEASE_S, RESETS_EVERY_S, SCENARIOS, Scenario
from bench.chaos.scene import Scene
from bench.procs import write_config
from bench.reset_proxy import reset_proxy

SIMULATOR = (
    *("--ttft-ms", "100", "--tokens-per-s", "40", "--answer-tokens", "120"),
    *("--seed", "7", "--retry-after-s", "0.3"),
)
SETTLE_TIMEOUT_S = 300.0
"""Longest wait for the batch to end once the fault is over; what is left then is stuck."""
COLUMNS = (
    ("scenario", "scenario"),
    ("fault", "fault"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("lost", "lost"),
    ("stuck", "stuck"),
    ("duplicated", "duplicated"),
    ("seq_reused", "seq reused"),
    ("ends_missing_from_log", "ends missing"),
    ("counters_match_results", "counters = results"),
    ("tracebacks", "tracebacks"),
    ("worker_exits", "workers exited"),
    ("provider_requests", "provider requests"),
    ("said", "what askq said"),
)


async def run_scenario(scenario: Scenario, jobs: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"askq-chaos-{scenario.name}-"))
    config = write_config(
        work,
        # The log is read whole at the end (reused seqs, missing ends): ended jobs' events are kept.
        {"limits": {"lease_s": LEASE_S, "shutdown_grace_s": 5}, "stream": {"keep_ended_events": True}},
    )
    with simulator_process(*SIMULATOR, *scenario.sim_flags) as base_url, contextlib.ExitStack() as stack:
        scene = Scene(work, jobs, scenario.redis_args, free_port(), base_url, config)
        scene.start_redis()
        proxy = None
        if scenario.proxy:
            proxy = stack.enter_context(reset_proxy(scene.redis_port, seed=7, reset_every_s=RESETS_EVERY_S))
            scene.worker_url = proxy.url(scene.redis_url)
        try:
            outcome = await _run(scene, scenario, base_url)
        finally:
            await scene.close()
        if proxy is not None:
            outcome["faults"]["connection_resets"] = proxy.stop()["resets"]
        return {"scenario": scenario.name, "fault": scenario.fault, **outcome}


async def _run(scene: Scene, scenario: Scenario, base_url: str) -> dict[str, Any]:
    submitted = scene.submit()
    if scenario.refused:
        return _refusal(scene, submitted.code, submitted.stderr)
    if submitted.code != 0:
        return {"error": f"submit failed: {submitted.stderr.strip()[-300:]}"}
    for n in range(scenario.workers):
        scene.start_worker(f"w{n}")
    faults = await scenario.inject(scene)
    report: dict[str, Any] = {}
    if not scenario.loses_data:
        report["settled"] = await scene.wait_finished(scene.jobs, SETTLE_TIMEOUT_S)
    report.update(await account(scene))
    logs = scene.worker_logs()
    report["tracebacks"] = sum(log.count("Traceback") for log in logs.values())
    report["worker_exits"] = len(scene.exited_unasked())
    sim = _sim_stats(base_url)
    report["provider_requests"] = sim["requests_total"]
    report["faults"] = {**_provider_faults(sim), **faults}
    if scenario.loses_data:
        told = faults["workers_reported_loss"] and "lost" in " ".join(faults["status_says"])
        report["said"] = f"loss reported by workers and status: {_yes(told)}"
    return report


def _refusal(scene: Scene, code: int, stderr: str) -> dict[str, Any]:
    """An evicting Redis: submit and worker start must both refuse, naming the setting to change."""
    worker = scene.start_worker("w0")
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(60)
    log = scene.worker_logs().get("w0", "")
    submit_refused = code != 0 and "noeviction" in stderr
    worker_refused = worker.poll() not in (None, 0) and "noeviction" in log
    return {
        "lost": 0,
        "tracebacks": stderr.count("Traceback") + log.count("Traceback"),
        "said": f"submit refused: {_yes(submit_refused)}, worker refused: {_yes(worker_refused)}",
        "submit_says": stderr.strip().splitlines()[-1:],
    }


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _sim_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/_sim/stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
        return stats


def _provider_faults(sim: dict[str, Any]) -> dict[str, int]:
    by_status = sim["responses_by_status"]
    counts = {
        "429": by_status.get("429", 0),
        "500": by_status.get("500", 0),
        "503": by_status.get("503", 0),
        "cut_streams": sim["streams_cut"],
        "errors_in_stream": sim["streams_errored"],
        "malformed_lines": sim["streams_malformed"],
    }
    return {name: count for name, count in counts.items() if count}


def table(reports: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for report in reports:
        cells = [str(report.get(name, "-")) for name, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    names = [scenario.name for scenario in SCENARIOS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--scenarios", nargs="+", choices=names, default=names)
    parser.add_argument("--out", type=Path, default=Path("bench/results/chaos.json"))
    args = parser.parse_args()
    for variable in ("ASKQ_CONFIG", "OPENAI_API_KEY"):
        os.environ.pop(variable, None)
    reports = []
    for scenario in SCENARIOS:
        if scenario.name in args.scenarios:
            print(f"running {scenario.name}: {scenario.fault}", flush=True)
            report = asyncio.run(run_scenario(scenario, args.jobs))
            print(json.dumps(report), flush=True)
            reports.append(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reports, indent=2))
    print(table(reports))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
