"""The faults, one scenario each: what is injected into a running batch, and when.

Each ``inject`` returns what it injected; the runner then waits for the batch and counts what was
lost (``bench.chaos.account``). Provider faults come from the simulator's flags.
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.chaos.scene import BATCH, Scene, eventually
from common import keys
from common.config import load_config
from producer.control import cancel_batch
from producer.retry import retry_batch

AOF = ("--appendonly", "yes", "--appendfsync", "everysec")
NO_PERSISTENCE = ("--appendonly", "no", "--save", "")
EVICTING = (*AOF, "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
PROVIDER_FAULTS = (
    *("--rate-429", "0.03", "--rate-500", "0.03", "--rate-503", "0.02", "--rate-cut", "0.03"),
    *("--rate-error-in-stream", "0.02"),
)
LEASE_S = 3.0
"""The scenarios' lease (the default is 15 s): a lost job comes back within seconds, not minutes."""
RESETS_EVERY_S = "0.02,0.1"
"""Dense enough that resets land on connections in use: idle pooled ones reconnect unnoticed."""
FULL_S = 8.0
"""How long Redis stays full in the out-of-memory scenario."""
STEP_TIMEOUT_S = 120.0

Inject = Callable[[Scene], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str
    """One line for the table: what goes wrong."""
    inject: Inject
    sim_flags: tuple[str, ...] = ()
    redis_args: tuple[str, ...] = AOF
    workers: int = 2
    proxy: bool = False
    """Workers reach Redis through a proxy that resets connections at random."""
    refused: bool = False
    """The setup must be refused: submit and worker start both say why."""
    loses_data: bool = False
    """Redis forgets everything by design: what counts is that the loss is reported."""


async def _nothing(scene: Scene) -> dict[str, Any]:
    return {}


async def _mix(scene: Scene) -> dict[str, Any]:
    """kill -9 one worker, SIGTERM the other (each replaced at once), restart Redis from its AOF file."""
    await scene.wait_finished(scene.jobs // 10, STEP_TIMEOUT_S)
    scene.signal_worker("w0", signal.SIGKILL)
    scene.start_worker("w0-again")
    await scene.wait_finished(scene.jobs // 3, STEP_TIMEOUT_S)
    scene.signal_worker("w1", signal.SIGTERM)
    scene.start_worker("w1-again")
    await scene.wait_finished(scene.jobs // 2, STEP_TIMEOUT_S)
    await scene.restart_redis()
    return {"worker_kill_9": 1, "worker_sigterm": 1, "redis_restart": 1}


async def _stall(scene: Scene) -> dict[str, Any]:
    """Redis stopped (SIGSTOP) for twice the lease: every lease expires while workers stream on."""
    await scene.wait_finished(scene.jobs // 5, STEP_TIMEOUT_S)
    paused_s = 2 * LEASE_S + 1
    await scene.pause_redis(paused_s)
    return {"redis_paused_s": paused_s}


async def _full(scene: Scene) -> dict[str, Any]:
    """maxmemory set below what Redis holds (noeviction): every write is refused for FULL_S."""
    await scene.wait_finished(scene.jobs // 5, STEP_TIMEOUT_S)
    used = int((await scene.redis.info("memory"))["used_memory"])
    await scene.redis.config_set("maxmemory", used // 2)
    await asyncio.sleep(FULL_S)  # the fault's duration
    await scene.redis.config_set("maxmemory", 0)
    return {"redis_full_s": FULL_S}


async def _cancel_retry(scene: Scene) -> dict[str, Any]:
    """``cancel`` then at once ``retry --cancelled``, three times; once with the worker killed between."""
    config = load_config(scene.config_path)
    for step, kill in ((6, False), (3, True), (2, False)):
        await scene.wait_finished(scene.jobs // step, STEP_TIMEOUT_S)
        await eventually(lambda: _some_running(scene), STEP_TIMEOUT_S)
        await cancel_batch(scene.redis, BATCH, config)
        if kill:
            scene.signal_worker("w0", signal.SIGKILL)
        await retry_batch(scene.redis, BATCH, config, include_cancelled=True)
        if kill:
            scene.start_worker("w0-again")
    return {"cancel_then_retry": 3, "worker_kill_9": 1}


async def _some_running(scene: Scene) -> bool:
    return await scene.running_jobs() > 0


async def _kill_after_store(scene: Scene) -> dict[str, Any]:
    """kill -9 the worker within milliseconds of a result being stored, three times."""
    name = "w0"
    for round_ in range(3):
        before = await _succeeded(scene)
        # Looked at every millisecond: as close behind the store as the bench can get.
        await eventually(functools.partial(_grew, scene, before), STEP_TIMEOUT_S, poll_s=0.001)
        scene.signal_worker(name, signal.SIGKILL)
        name = f"w0-after-{round_}"
        scene.start_worker(name)
    return {"worker_kill_9_after_store": 3}


async def _grew(scene: Scene, before: int) -> bool:
    return await _succeeded(scene) > before


async def _succeeded(scene: Scene) -> int:
    raw = await scene.redis.hget(keys.batch_record(BATCH), "succeeded")  # type: ignore[misc]  # redis-py types sync and async alike
    return int(raw or 0)


async def _forgetful(scene: Scene) -> dict[str, Any]:
    """Redis without persistence restarted mid-batch: everything is gone; askq must say so."""
    await scene.wait_finished(scene.jobs // 3, STEP_TIMEOUT_S)
    await scene.restart_redis()
    said = await eventually(lambda: _workers_said_lost(scene), 30)
    status = scene.askq("status", BATCH)
    return {
        "redis_restart_without_persistence": 1,
        "workers_reported_loss": said,
        "status_says": (status.stderr or status.stdout).strip().splitlines()[-1:],
    }


async def _workers_said_lost(scene: Scene) -> bool:
    return any("lost askq's data" in log for log in scene.worker_logs().values())


SCENARIOS = (
    Scenario("mix", "provider faults, kill -9, SIGTERM, Redis restart (AOF)", _mix, PROVIDER_FAULTS),
    Scenario("resets", "a Redis connection reset every 0.02-0.1 s", _nothing, proxy=True),
    Scenario("stall", f"Redis paused {2 * LEASE_S + 1:g} s (lease {LEASE_S:g} s)", _stall),
    Scenario("full", f"Redis at maxmemory (noeviction) for {FULL_S:g} s", _full),
    Scenario("evicting", "maxmemory-policy allkeys-lru", _nothing, redis_args=EVICTING, refused=True),
    Scenario("cancel-retry", "cancel then retry --cancelled, x3, a worker killed once", _cancel_retry),
    Scenario("badline", "5 % of streams carry a malformed data: line", _nothing, ("--rate-badline", "0.05")),
    Scenario("kill-after-store", "kill -9 right after a result is stored, x3", _kill_after_store, workers=1),
    Scenario(
        "no-persistence",
        "Redis without AOF or RDB restarted mid-batch",
        _forgetful,
        redis_args=NO_PERSISTENCE,
        loses_data=True,
    ),
)
