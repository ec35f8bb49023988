"""Each figure beside its target, as a table on screen and rows in the JSON file."""

from __future__ import annotations

from typing import Any

from bench.report_estimate import estimate_rows
from bench.report_row import Row
from bench.report_sse import sse_rows
from bench.report_tpm import tpm_rows


def rows(results: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    if "throughput" in results:
        out += _throughput_rows(results["throughput"])
    if "transport" in results:
        out += _transport_rows(results["transport"])
    if "queue" in results:
        queue = results["queue"]
        out += [
            Row("queue", "10k no-op jobs, askq / arq defaults (jobs/s)", queue["speedup"], "x", 10),
            Row("queue", "askq no-op jobs/s", queue["askq"]["jobs_per_s"], "/s"),
            Row("queue", "arq defaults no-op jobs/s", queue["arq"]["jobs_per_s"], "/s"),
            Row("queue", "pick-up p50 (enqueue to start)", queue["askq"]["pickup_p50_ms"], "ms", 5, "<="),
            Row("queue", "pick-up p99", queue["askq"]["pickup_p99_ms"], "ms", 50, "<="),
            Row("queue", "pick-up p50, arq defaults", queue["arq"]["pickup_p50_ms"], "ms"),
        ]
    if "idle" in results:
        idle = results["idle"]
        out += [
            Row("idle", "idle worker: Redis commands/s", idle["default"]["commands_per_s"], "/s", 2, "<="),
            Row(
                "idle",
                "idle worker with a schedule: commands/s",
                idle["with_schedule"]["commands_per_s"],
                "/s",
            ),
            Row(
                "idle",
                "pick-up p50, idle worker (submit to start)",
                idle["default"]["pickup_p50_ms"],
                "ms",
                5,
                "<=",
            ),
            Row("idle", "pick-up p95, idle worker", idle["default"]["pickup_p95_ms"], "ms"),
        ]
    if "relay" in results:
        relay = results["relay"]
        out += [
            Row("relay", "simulator write -> subscriber, p50", relay["relay_p50_ms"], "ms"),
            Row("relay", "simulator write -> subscriber, p99", relay["relay_p99_ms"], "ms", 60, "<="),
            Row("relay", "added time to first token, p50", relay["added_ttft_p50_ms"], "ms"),
            Row("relay", "added time to first token, p99", relay["added_ttft_p99_ms"], "ms"),
            Row(
                "relay",
                "relay flushes' XADD+PUBLISH per 1k tokens, 50 tokens/s streams",
                relay["publish_commands_per_1000_tokens"],
                "",
                30,
                "<=",
            ),
            Row(
                "relay",
                "the same with each job's end (2 inside its store call)",
                relay["all_publish_commands_per_1000_tokens"],
                "",
            ),
        ]
    if "submit" in results:
        for lines, run in results["submit"].items():
            if lines == "100000":
                out.append(Row("submit", "questions/s, 100k-line file", run["questions_per_s"], "/s", 20_000))
            out.append(
                Row("submit", f"peak memory, {int(lines):,}-line file", run["peak_mb"], "MB", 150, "<=")
            )
    if "scale_out" in results:
        scale = results["scale_out"]
        for workers in ("2", "4"):
            target = 1.7 if workers == "2" else None
            out.append(
                Row(
                    "scale-out", f"{workers} processes / 1, CPU-bound", scale[workers]["speedup"], "x", target
                )
            )
        ceiling = scale["2"]["ceiling_speedup"]
        out.append(Row("scale-out", "the machine's ceiling at that CPU per job", ceiling, "x"))
    if "footprint" in results:
        out += _footprint_rows(results["footprint"])
    if "knowledge" in results:
        out += _knowledge_rows(results["knowledge"])
    if "knowledge_batching" in results:
        out += _batching_rows(results["knowledge_batching"])
    if "knowledge_build" in results:
        out += _build_rows(results["knowledge_build"])
    if "sse" in results:
        out += sse_rows(results["sse"])
    if "api" in results:
        out += _api_rows(results["api"])
    if "estimate" in results:
        out += estimate_rows(results["estimate"])
    if "tpm" in results:
        out += tpm_rows(results["tpm"])
    return out


def _api_rows(api: dict[str, Any]) -> list[Row]:
    """``askq serve`` measured from outside: a large batch's status, a results download, an upload."""
    status, download, upload = api["status"], api["results"], api["upload"]
    items, lines = f"{status['items']:,}", f"{upload['lines']:,}"
    queued, finished = status["queued"], status["finished"]
    return [
        Row("api", f"GET a batch of {items} queued: p50", queued["p50_ms"], "ms", 5, "<="),
        Row("api", "  p95", queued["p95_ms"], "ms"),
        Row("api", f"GET a batch of {items} finished: p50", finished["p50_ms"], "ms", 5, "<="),
        Row("api", "  p95", finished["p95_ms"], "ms"),
        Row("api", "  its first GET (reads every latency)", finished["first_ms"], "ms"),
        Row("api", f"results of {download['lines']:,} jobs: lines/s", download["lines_per_s"], "/s", 50_000),
        Row("api", "  server CPU a line (user + system)", download["server_cpu_us_per_line"], "us"),
        Row("api", "  Redis CPU a line", download["redis_cpu_us_per_line"], "us"),
        Row("api", "  server RSS growth at the peak", download["peak_growth_mb"], "MB"),
        Row("api", "  the download's size", download["mb"], "MB"),
        Row(
            "api",
            f"upload + submit, {lines}-line file: questions/s",
            upload["api_questions_per_s"],
            "/s",
            15_000,
        ),
        Row("api", "  askq submit, the same file: questions/s", upload["cli_questions_per_s"], "/s"),
        Row("api", "  upload's rate / askq submit's", upload["ratio"], "x"),
    ]


def _batching_rows(batching: dict[str, Any]) -> list[Row]:
    """Questions per embeddings request and answers a second with knowledge over without, round by round."""
    concurrency = batching["mix"]["concurrency"]
    out = [
        Row(
            "knowledge",
            f"questions per embeddings request, concurrency {concurrency}",
            batching["questions_per_request"],
            "",
            16,
        ),
        Row("knowledge", "questions/s with knowledge / without", batching["ratio"], "x", 0.9),
        Row("knowledge", "  questions/s without knowledge", batching["plain_questions_per_s"], "/s"),
        Row("knowledge", "  questions/s with knowledge", batching["knowledge_questions_per_s"], "/s"),
    ]
    for run in batching["runs"]:
        side = "with" if run["job_type"] != "qa" else "without"
        measure = f"  round {run['round']}, {side}: questions/s"
        out.append(Row("knowledge", measure, run["questions_per_s"], "/s"))
        if side == "with":
            measure = f"  round {run['round']}: questions per request"
            out.append(Row("knowledge", measure, run["questions_per_request"], ""))
    out.append(Row("knowledge", "every question answered", float(batching["all_succeeded"]), "", 1))
    same = float(batching["same_answer_tokens"])
    out.append(Row("knowledge", "answers as many tokens with knowledge as without", same, "", 1))
    return out


def _build_rows(build: dict[str, Any]) -> list[Row]:
    """A build's chunks a second, and the rebuild's inputs against the edited file's chunks."""
    first, rebuild = build["build"], build["rebuild"]
    return [
        Row(
            "knowledge",
            f"build: chunks/s, {first['chunks']:,} chunks (whole build)",
            first["chunks_per_s"],
            "/s",
        ),
        Row("knowledge", "  of which embedding: chunks/s", first["embedding_chunks_per_s"], "/s"),
        Row(
            "knowledge",
            "rebuild, 1 file edited: inputs the simulator embedded",
            rebuild["simulator_inputs"],
            "",
        ),
        Row("knowledge", "  that file's chunks", rebuild["edited_file_chunks"], ""),
        Row("knowledge", "rebuild embedded only that file's chunks", float(rebuild["only_that_file"]), "", 1),
    ]


def _knowledge_rows(knowledge: dict[str, Any]) -> list[Row]:
    """Search on one core (the targets') beside BLAS's default threads, then a worker's index memory."""
    one, default, memory = knowledge["one_core"], knowledge["default"], knowledge["memory"]
    size = f"{knowledge['rows']:,} x {knowledge['dimensions']}"
    return [
        Row("knowledge", f"search {size}, 1 question, 1 core: p50", one["single"]["p50_ms"], "ms", 10, "<="),
        Row("knowledge", "  p95", one["single"]["p95_ms"], "ms"),
        Row("knowledge", "32 questions a call, 1 core: p50", one["batch"]["p50_ms"], "ms", 40, "<="),
        Row("knowledge", "  p95", one["batch"]["p95_ms"], "ms"),
        Row("knowledge", "  CPU the calls got / their wall time (of 1)", one["batch"]["cpu_per_wall"], ""),
        Row("knowledge", "  the product alone at the core's peak rate", one["batch_product_floor_ms"], "ms"),
        Row("knowledge", "  the core's peak rate (1024^2 float32 product)", one["peak_gflops"], "GFLOP/s"),
        Row("knowledge", "1 question, BLAS's default threads: p50", default["single"]["p50_ms"], "ms"),
        Row("knowledge", "32 questions, BLAS's default threads: p50", default["batch"]["p50_ms"], "ms"),
        Row("knowledge", "  CPU the calls got / their wall time", default["batch"]["cpu_per_wall"], ""),
        Row("knowledge", "worker's memory growth by load_index / matrix", memory["ratio"], "x", 1.2, "<="),
        Row("knowledge", "  at the load's peak / matrix", memory["peak_ratio"] or 0.0, "x"),
        Row(
            "knowledge",
            f"load_index of {memory['matrix_bytes'] / 1e6:.0f} MB from Redis",
            memory["load_s"],
            "s",
        ),
        Row("knowledge", "loaded matrix equals the written one", float(memory["loaded_intact"]), "", 1),
    ]


def _transport_rows(transport: dict[str, Any]) -> list[Row]:
    """askq's transport beside openai's aiohttp one (askq's before issue 18), and dead connections."""
    speed, closing = transport["speed"], transport["closing"]
    old, new = speed["openai_aiohttp"], speed["askq"]
    return [
        Row("transport", "streamed calls/s, askq's transport", new["calls_per_s"], "/s"),
        Row("transport", "streamed calls/s, openai's aiohttp transport", old["calls_per_s"], "/s"),
        Row("transport", "calls/s, askq / openai aiohttp", speed["calls_ratio"], "x", 1.0),
        Row("transport", "client CPU per call, askq's transport", new["cpu_ms_per_call"], "ms"),
        Row("transport", "client CPU per call, openai's aiohttp", old["cpu_ms_per_call"], "ms"),
        Row("transport", "CPU per call, askq / openai aiohttp", speed["cpu_ratio"], "x", 1.0, "<="),
        Row(
            "transport",
            "calls failed, server closing kept-alive, askq",
            closing["askq"]["failed"],
            "",
            0,
            "<=",
        ),
        Row("transport", "the same, openai's aiohttp transport", closing["openai_aiohttp"]["failed"], ""),
    ]


def _footprint_rows(footprint: dict[str, Any]) -> list[Row]:
    """Redis bytes per finished job beside the target, then where they are."""
    out = [
        Row(
            "footprint",
            "Redis memory per finished job",
            footprint["bytes_per_job"],
            "B",
            round(footprint["target_bytes_per_job"]),
            "<=",
        ),
        Row("footprint", "question + answer bytes per job", footprint["question_answer_bytes_per_job"], "B"),
    ]
    for name, size in footprint["by_family_bytes_per_job"].items():
        out.append(Row("footprint", f"  of which {name} (MEMORY USAGE)", size, "B"))
    out += [
        Row("footprint", "  batch log: answer text in it", footprint["batch_log_text_bytes_per_job"], "B"),
        Row("footprint", "per job without the batch log", footprint["bytes_per_job_without_batch_log"], "B"),
    ]
    return out


def _throughput_rows(results: dict[str, Any]) -> list[Row]:
    latency, rate, cpu = results["latency"], results["rate"], results["cpu"]
    return [
        Row(
            "throughput", "latency-bound: steady jobs/s / bound", latency["askq"]["steady_of_bound"], "", 0.97
        ),
        Row("throughput", "latency-bound: whole run's jobs/s / bound", latency["askq"]["of_bound"], ""),
        Row("throughput", "rate-limited: jobs/s / limit", rate["askq"]["of_bound"], "", 0.95),
        Row(
            "throughput", "rate-limited: requests answered 429", rate["askq"]["share_429"] * 100, "%", 1, "<="
        ),
        Row("baseline", "latency-bound: jobs/s, askq / script", latency["jobs_ratio"], "x", 0.98),
        Row("baseline", "latency-bound: CPU per job, askq / script", latency["cpu_ratio"], "x", 0.5, "<="),
        Row("baseline", "CPU-bound: jobs/s, askq / script", cpu["jobs_ratio"], "x", 2),
        Row("baseline", "CPU-bound: CPU per job, askq / script", cpu["cpu_ratio"], "x", 0.5, "<="),
        Row(
            "relay",
            "XADD+PUBLISH per 1k tokens, CPU-bound mix",
            cpu["askq"]["publish_commands_per_1000_tokens"],
            "",
            30,
            "<=",
        ),
        Row(
            "submit",
            "Redis memory per finished job (CPU-bound mix)",
            cpu["askq"]["redis_bytes_per_job"] / 1024,
            "KiB",
        ),
    ]


def table(report: list[Row]) -> str:
    lines = [f"{'section':11} {'measure':52} {'figure':>10} {'target':>10}  met"]
    for row in report:
        target = "" if row.target is None else f"{row.better} {row.target:g}"
        met = {True: "yes", False: "NO", None: ""}[row.met]
        lines.append(
            f"{row.section:11} {row.measure:52} {row.figure:10.2f} {target:>10}  {met} {row.unit}".rstrip()
        )
    return "\n".join(lines)
