"""The workloads the benchmark runs: the simulator's pace and limits, and askq's side of each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mix:
    name: str
    jobs: int
    concurrency: int
    """Per worker process: askq's semaphore, and the baseline script's."""
    ttft_ms: float
    answer_tokens: int
    ttft_jitter_ms: float = 0.0
    """Each first token comes up to this much earlier or later, as a real provider's do."""
    tokens_per_s: float = 0.0
    rpm_limit: int = 0
    """The simulator's limit, over a one-second window; askq paces itself a little under it."""
    workers: int = 1

    @property
    def provider_s(self) -> float:
        """The simulator's time for one answer: first token, then the rest at the pace."""
        pace_s = (self.answer_tokens - 1) / self.tokens_per_s if self.tokens_per_s else 0.0
        return self.ttft_ms / 1000 + pace_s

    @property
    def bound_jobs_per_s(self) -> float:
        """The physical limit: concurrency over provider time, or the rate limit, whichever is lower."""
        by_latency = self.concurrency * self.workers / self.provider_s if self.provider_s else float("inf")
        return min(by_latency, self.rpm_limit / 60) if self.rpm_limit else by_latency

    def simulator_flags(self) -> list[str]:
        flags = ["--ttft-ms", str(self.ttft_ms), "--tokens-per-s", str(self.tokens_per_s)]
        flags += ["--ttft-jitter-ms", str(self.ttft_jitter_ms)]
        flags += ["--answer-tokens", str(self.answer_tokens)]
        if self.rpm_limit:
            flags += ["--rpm-limit", str(self.rpm_limit), "--rpm-window-s", "1"]
        return flags

    def askq_config(self) -> dict[str, object]:
        config: dict[str, object] = {"limits": {"concurrency": self.concurrency}}
        if self.rpm_limit:
            # 2% under the provider's limit: a request's arrival varies by a few ms.
            config["provider"] = {"requests_per_minute": int(self.rpm_limit * 0.98)}
        return config


def standard_mixes(scale: float) -> dict[str, Mix]:
    def jobs(count: int) -> int:
        return max(50, int(count * scale))

    return {
        "latency": Mix(
            "latency-bound",
            jobs(2000),
            200,
            ttft_ms=900,
            answer_tokens=21,
            tokens_per_s=200,
            ttft_jitter_ms=100,
        ),
        "rate": Mix("rate-limited", jobs(1500), 64, ttft_ms=100, answer_tokens=20, rpm_limit=6000),
        "cpu": Mix("CPU-bound", jobs(1500), 32, ttft_ms=0, answer_tokens=200),
        "relay": Mix(
            "relay", jobs(200), 50, ttft_ms=200, answer_tokens=100, tokens_per_s=50, ttft_jitter_ms=100
        ),
    }
