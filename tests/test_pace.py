"""provider.requests_per_minute: attempts spaced evenly across workers, so the limit gives no 429s."""

from __future__ import annotations

import itertools
import time
from typing import Any

from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig, parse_config
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import results, run_burst_worker
from worker.answering.gate import ProviderGate

ENDPOINT = "provider:443"


def _paced(rpm: int) -> AskqConfig:
    return parse_config({"provider": {"requests_per_minute": rpm}})


async def test_admissions_reserve_evenly_spaced_send_times_across_gates(redis: Redis) -> None:
    """Two workers' gates share one pace: 600 a minute gives send times 100 ms apart, in turn."""
    config = _paced(600)
    gates = [ProviderGate(redis, "b", ENDPOINT, config), ProviderGate(redis, "c", ENDPOINT, config)]
    send_times = []
    for index in range(6):
        admission = await gates[index % 2].admit()
        send_times.append(time.monotonic() + admission.send_in_s)
    gaps = [later - earlier for earlier, later in itertools.pairwise(send_times)]
    assert all(0.09 < gap < 0.11 for gap in gaps), gaps


async def test_without_a_pace_nothing_is_reserved(redis: Redis) -> None:
    """requests_per_minute 0 (the default) admits at once and writes no pace key."""
    gate = ProviderGate(redis, "b", ENDPOINT, parse_config({}))
    assert (await gate.admit()).send_in_s == 0
    assert not await redis.exists(keys.provider_pace(ENDPOINT))


async def test_a_cooldown_is_waited_out_before_a_place_is_reserved(redis: Redis) -> None:
    """While the provider's cooldown lasts, admission says wait and takes no place in the pace."""
    await redis.set(keys.provider_cooldown(ENDPOINT), b"1", px=5000)
    admission = await ProviderGate(redis, "b", ENDPOINT, _paced(600)).admit()
    assert 4 < admission.cooldown_s <= 5
    assert not await redis.exists(keys.provider_pace(ENDPOINT))


async def test_a_batch_paced_under_the_providers_limit_gets_no_429(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """20 questions at concurrency 20 against 10 requests a second: paced at 9, none is refused."""
    sim.configure(rpm_limit=600, rpm_window_s=1.0)
    config = parse_config(
        {"provider": {"requests_per_minute": 540}, "limits": {"concurrency": 20, "max_jobs": 20}}
    )
    path = write("paced.txt", "".join(f"Paced question {index}?\n" for index in range(20)))
    await submit_file(redis, path, config, batch="paced")
    await run_burst_worker(config, redis_url)
    assert [row.status for row in await results(redis, "paced")] == ["succeeded"] * 20
    assert sim.stats()["responses_by_status"] == {"200": 20}
