"""``GET /metrics``: the cluster's metrics in Prometheus's text exposition format (version 0.0.4).

Written by hand rather than with ``prometheus_client``: its collectors live in a registry, global by
default, and a custom collector yielding metric families to be rendered would be more code than these
few families, which all come from one read of Redis per scrape (``producer.metrics``); nothing is
kept in the process, so every server behind a load balancer says the same. No batch or job id is
ever a label: the series stay a few dozen however many jobs run.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from producer.metrics import ClusterMetrics, cluster_metrics
from server.state import RedisDep

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Sample = tuple[str, dict[str, str], float]


class _Exposition(PlainTextResponse):
    media_type = CONTENT_TYPE


@router.get("/metrics", response_class=_Exposition)
async def get_metrics(redis: RedisDep) -> _Exposition:
    """Jobs ended by state, queue depth, jobs running, provider attempts, tokens, job latency, workers
    alive: cluster-wide, read from Redis at each scrape."""
    return _Exposition(exposition(await cluster_metrics(redis)), media_type=CONTENT_TYPE)


def exposition(found: ClusterMetrics) -> str:
    """The text of a scrape: each family's HELP and TYPE, then its samples."""
    latency = found.latency
    families = [
        family(
            "askq_jobs_total",
            "counter",
            "Jobs that ended, by final state; a job run again by askq retry counts at each end.",
            (("askq_jobs_total", {"state": state}, count) for state, count in found.jobs_ended.items()),
        ),
        family(
            "askq_jobs_running",
            "gauge",
            "Jobs running now, from the batches' counters.",
            [("askq_jobs_running", {}, found.jobs_running)],
        ),
        family(
            "askq_queue_depth",
            "gauge",
            "Jobs waiting in an arq queue (questions, schedules).",
            (("askq_queue_depth", {"queue": queue}, depth) for queue, depth in found.queue_depth.items()),
        ),
        family(
            "askq_provider_attempts_total",
            "counter",
            "Provider attempts of ended runs, by how each ended and its HTTP status (none: no status).",
            (
                ("askq_provider_attempts_total", {"outcome": outcome, "status": status}, count)
                for (outcome, status), count in found.attempts.items()
            ),
        ),
        family(
            "askq_tokens_total",
            "counter",
            "Tokens of ended jobs, as the provider reported them.",
            (("askq_tokens_total", {"kind": kind}, count) for kind, count in found.tokens.items()),
        ),
        family(
            "askq_job_latency_seconds",
            "histogram",
            "Time from a job's start to its end, of ended jobs that made an attempt.",
            [
                *(("askq_job_latency_seconds_bucket", {"le": le}, n) for le, n in latency.buckets),
                ("askq_job_latency_seconds_sum", {}, latency.sum_s),
                ("askq_job_latency_seconds_count", {}, latency.count),
            ],
        ),
        family(
            "askq_workers_alive",
            "gauge",
            "Questions workers whose heartbeat has not expired.",
            [("askq_workers_alive", {}, found.workers_alive)],
        ),
    ]
    return "".join(families)


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> str:
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}"]
    lines += [f"{sample}{_labels(labels)} {_number(value)}" for sample, labels, value in samples]
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label(value)}"' for name, value in labels.items()) + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
