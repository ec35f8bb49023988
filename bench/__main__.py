"""askq's benchmark: every figure of the performance targets, measured side by side in one run.

    .venv/bin/python -m bench [--scale 1.0] [--sections ...] [--out bench/results/latest.json]

Each section starts its own redis-server, simulator and processes, and stops them after. Ratios
are what to read: the machine is shared and noisy, so both sides of each run back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.api import run_api
from bench.footprint import run_footprint
from bench.idle import run_idle
from bench.knowledge_batching import run_knowledge_batching
from bench.knowledge_build import run_knowledge_build
from bench.knowledge_search import run_knowledge
from bench.mixes import Mix, standard_mixes
from bench.queue import run_queue
from bench.relay import run_relay
from bench.report import rows, table
from bench.sse import run_sse
from bench.submit import run_submit
from bench.throughput import run_askq, run_baseline
from bench.token_estimate import run_estimate
from bench.tpm import run_tpm
from bench.transport import run_transport

SECTIONS = (
    "throughput",
    "transport",
    "queue",
    "idle",
    "relay",
    "submit",
    "scale_out",
    "footprint",
    "knowledge",
    "knowledge_batching",
    "knowledge_build",
    "sse",
    "api",
    "estimate",
    "tpm",
)


def side_by_side(mix: Mix, folder: Path, *, baseline: bool) -> dict[str, Any]:
    askq = asyncio.run(run_askq(mix, folder))
    askq["of_bound"] = askq["jobs_per_s"] / mix.bound_jobs_per_s
    askq["steady_of_bound"] = askq["steady_jobs_per_s"] / mix.bound_jobs_per_s
    askq["share_429"] = askq["refused_429"] / max(askq["requests"], 1)
    result: dict[str, Any] = {"mix": mix.__dict__, "bound_jobs_per_s": mix.bound_jobs_per_s, "askq": askq}
    if baseline:
        script = run_baseline(mix, folder)
        result["script"] = script
        result["jobs_ratio"] = askq["jobs_per_s"] / script["jobs_per_s"]
        result["cpu_ratio"] = askq["cpu_ms_per_job"] / script["cpu_ms_per_job"]
    return result


def scale_out(mix: Mix, folder: Path) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for workers in (1, 2, 4):
        sized = Mix(**{**mix.__dict__, "workers": workers})
        runs[str(workers)] = asyncio.run(run_askq(sized, folder))
    cores = os.cpu_count() or 1
    for run in runs.values():
        run["speedup"] = run["jobs_per_s"] / runs["1"]["jobs_per_s"]
        # Workers, Redis and the simulator share the machine: the most it could do at this CPU per job.
        cpu_ms = run["cpu_ms_per_job"] + run["simulator_cpu_ms_per_job"]
        run["ceiling_speedup"] = cores * 1000 / cpu_ms / runs["1"]["jobs_per_s"]
    return runs


def run(sections: list[str], scale: float, folder: Path) -> dict[str, Any]:
    mixes = standard_mixes(scale)
    results: dict[str, Any] = {}
    for section in sections:
        print(f"running {section} ...", flush=True)
        if section == "throughput":
            results[section] = {
                "latency": side_by_side(mixes["latency"], folder, baseline=True),
                "rate": side_by_side(mixes["rate"], folder, baseline=False),
                "cpu": side_by_side(mixes["cpu"], folder, baseline=True),
            }
        elif section == "transport":
            results[section] = run_transport(scale)
        elif section == "queue":
            jobs = max(1000, int(10_000 * scale))
            results[section] = asyncio.run(run_queue(folder, jobs, arq_jobs=jobs, pickups=200))
        elif section == "idle":
            results[section] = asyncio.run(run_idle(folder, pickup_count=max(20, int(200 * scale))))
        elif section == "relay":
            results[section] = asyncio.run(run_relay(mixes["relay"], folder))
        elif section == "submit":
            results[section] = run_submit(folder, [100_000, 1_000_000] if scale >= 1 else [100_000])
        elif section == "scale_out":
            cpu = mixes["cpu"]
            results[section] = scale_out(Mix(**{**cpu.__dict__, "jobs": cpu.jobs * 2}), folder)
        elif section == "footprint":
            results[section] = asyncio.run(run_footprint(folder))
        elif section == "knowledge":
            results[section] = run_knowledge(folder)  # its sizes are the targets': not scaled
        elif section == "knowledge_batching":
            questions = max(200, int(1000 * scale))
            results[section] = run_knowledge_batching(folder, mixes["latency"], questions=questions)
        elif section == "knowledge_build":
            results[section] = run_knowledge_build(folder)  # 2,000 chunks: about a second, not scaled
        elif section == "sse":
            results[section] = asyncio.run(run_sse(folder))  # the target's 500 clients: not scaled
        elif section == "api":
            # The targets' sizes at --scale 1 (a 1,000,000-item batch's status); fewer below it.
            size = min(scale, 1.0)
            results[section] = run_api(
                folder,
                status_items=max(10_000, int(1_000_000 * size)),
                result_items=max(10_000, int(200_000 * size)),
                upload_lines=max(10_000, int(100_000 * size)),
            )
        elif section == "estimate":
            results[section] = run_estimate()  # every question of its sets: not scaled
        elif section == "tpm":
            # At least a minute at the limit: past the bucket's first burst, a steady stretch to measure.
            results[section] = run_tpm(folder, jobs=max(2400, int(3000 * scale)))
    return results


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="job counts x this (1M-line submit only at >= 1)"
    )
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="askq-bench-") as tmp:
        results = run(args.sections, args.scale, Path(tmp))
    report = rows(results)
    print(table(report))
    document = {
        "machine": machine(),
        "scale": args.scale,
        "took_s": round(time.monotonic() - started, 1),
        "rows": [row.as_dict() for row in report],
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    host = document["machine"]
    print(f"wrote {args.out} ({document['took_s']} s on {host['cpu']}, {host['cores']} cores)")


if __name__ == "__main__":
    main()
