"""The sse section's rows: SSE clients' latency beside a direct subscriber's, CPU, the storm's check."""

from __future__ import annotations

from typing import Any

from bench.report_row import Row


def sse_rows(sse: dict[str, Any]) -> list[Row]:
    """SSE clients' latency beside a direct subscriber's, what a delivered event costs, the storm's check."""
    live, direct, storm = sse["sse"], sse["direct"], sse["storm"]
    clients = f"{sse['clients']} clients of {sse['jobs']} jobs"
    return [
        Row("sse", f"{clients}: write -> SSE client, p50", live["p50_ms"], "ms"),
        Row("sse", "  p95", live["p95_ms"], "ms"),
        Row("sse", "  p99", live["p99_ms"], "ms"),
        Row("sse", "write -> direct pub/sub subscriber, p50", direct["p50_ms"], "ms"),
        Row("sse", "  p99", direct["p99_ms"], "ms"),
        Row("sse", "added by SSE, p50 (SSE p50 - direct p50)", sse["added_p50_ms"], "ms"),
        Row("sse", "added by SSE, p99 (SSE p99 - direct p99)", sse["added_p99_ms"], "ms", 15, "<="),
        Row("sse", "events delivered a second, live", sse["live_events_per_s"], "/s"),
        Row("sse", "server CPU per delivered event, live", sse["server_cpu_us_per_live_event"], "us"),
        Row("sse", "  over the whole run, storm included", sse["server_cpu_us_per_event"], "us"),
        Row("sse", "  server's CPU share of a core, live", sse["server_cpu_share_live"], ""),
        Row("sse", "clients' CPU per event (their one process)", sse["clients_cpu_us_per_live_event"], "us"),
        Row("sse", "  clients' CPU share of a core, live", sse["clients_cpu_share_live"], ""),
        Row("sse", "reconnect storm: events lost", storm["lost"], "", 0, "<="),
        Row("sse", "reconnect storm: events repeated", storm["repeated"], "", 0, "<="),
        Row(
            "sse",
            "streams whole (seqs, deltas = stored answer)",
            storm["whole_streams"],
            "",
            storm["streams"],
        ),
        Row("sse", "  every client back (200) after the storm", storm["reconnected_s"], "s"),
    ]
