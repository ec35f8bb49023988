"""The provider gate's memory: an unpaced attempt is admitted without a round trip while the gate was
lately seen open, and never on a halt or a cooldown."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from common import keys
from common.config import parse_config
from common.errors import FatalProviderError, RetryableProviderError
from tests.helpers import eventually
from worker.answering.admission import GateMemory
from worker.answering.gate import ProviderGate

ENDPOINT = "provider:443"
UNPACED = parse_config({})


async def _scripts_run(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


class TestGateMemory:
    async def test_an_open_gate_is_read_once_per_window(self, redis: Redis) -> None:
        """50 unpaced admissions within the window cost one script call; without memory, 50."""
        remembered = ProviderGate(redis, "b", ENDPOINT, UNPACED, GateMemory(open_for_s=3600))
        unremembered = ProviderGate(redis, "b", ENDPOINT, UNPACED)
        await ProviderGate(redis, "warm-up", ENDPOINT, UNPACED).admit()  # loads the script: no NOSCRIPT
        for gate, calls in ((remembered, 1), (unremembered, 50)):
            await redis.config_resetstat()
            for _ in range(50):
                await gate.admit()
            assert await _scripts_run(redis) == calls

    async def test_a_halt_is_read_every_time_so_retry_resumes_at_once(self, redis: Redis) -> None:
        """A halted batch is never remembered: once `askq retry` clears the halt, the next attempt goes."""
        gate = ProviderGate(redis, "b", ENDPOINT, UNPACED, GateMemory(open_for_s=3600))
        await redis.set(keys.batch_halt("b"), "HTTP 401: bad key")
        with pytest.raises(FatalProviderError, match="not sent"):
            await gate.admit()
        await redis.delete(keys.batch_halt("b"))
        assert (await gate.admit()).cooldown_s == 0

    async def test_a_cooldown_is_read_every_time(self, redis: Redis) -> None:
        """While the provider's cooldown lasts, every admission says how much of it is left."""
        gate = ProviderGate(redis, "b", ENDPOINT, UNPACED, GateMemory(open_for_s=3600))
        await redis.set(keys.provider_cooldown(ENDPOINT), b"1", px=5000)
        assert 4 < (await gate.admit()).cooldown_s <= 5
        assert 4 < (await gate.admit()).cooldown_s <= 5
        await redis.delete(keys.provider_cooldown(ENDPOINT))
        assert (await gate.admit()).cooldown_s == 0

    async def test_a_refusal_in_this_process_is_seen_by_its_next_admission(self, redis: Redis) -> None:
        """The gate was remembered open; this process's 401 halts its next attempt, not the window's end."""
        memory = GateMemory(open_for_s=3600)
        gate = ProviderGate(redis, "b", ENDPOINT, UNPACED, memory)
        await gate.admit()
        await ProviderGate(redis, "b", ENDPOINT, UNPACED, memory).refused(
            FatalProviderError("HTTP 401: bad key", status_code=401)
        )
        with pytest.raises(FatalProviderError, match="not sent"):
            await gate.admit()

    async def test_a_429_elsewhere_in_the_process_holds_off_the_next_admission(self, redis: Redis) -> None:
        """Another batch's 429 with Retry-After cools down this batch's next attempt at once."""
        memory = GateMemory(open_for_s=3600)
        gate = ProviderGate(redis, "b", ENDPOINT, UNPACED, memory)
        await gate.admit()
        await ProviderGate(redis, "c", ENDPOINT, UNPACED, memory).refused(
            RetryableProviderError("HTTP 429", status_code=429, retry_after_s=2.0)
        )
        assert 1 < (await gate.admit()).cooldown_s <= 2

    async def test_a_failure_that_shares_nothing_keeps_the_memory(self, redis: Redis) -> None:
        """A 500 or a timeout sets no halt or cooldown, so the open reading still stands."""
        memory = GateMemory(open_for_s=3600)
        gate = ProviderGate(redis, "b", ENDPOINT, UNPACED, memory)
        await gate.admit()
        await gate.refused(RetryableProviderError("HTTP 500", status_code=500))
        assert memory.is_open("b", ENDPOINT)

    def test_a_reading_older_than_a_refusal_is_not_remembered(self) -> None:
        """A read sent before this process's refusal may answer after it: that stale 'open' is dropped."""
        memory = GateMemory(open_for_s=3600)
        before = memory.generation
        memory.forget()
        memory.saw_open("b", ENDPOINT, before)
        assert not memory.is_open("b", ENDPOINT)
        memory.saw_open("b", ENDPOINT, memory.generation)
        assert memory.is_open("b", ENDPOINT)

    async def test_a_paced_gate_reserves_a_place_every_attempt(self, redis: Redis) -> None:
        """With requests_per_minute set, memory never skips the reservation: 5 attempts, 5 calls."""
        paced = parse_config({"provider": {"requests_per_minute": 600}})
        gate = ProviderGate(redis, "b", ENDPOINT, paced, GateMemory(open_for_s=3600))
        await ProviderGate(redis, "warm-up", "elsewhere:443", paced).admit()  # loads the script
        await redis.config_resetstat()
        send_in = [(await gate.admit()).send_in_s for _ in range(5)]
        assert await _scripts_run(redis) == 5
        assert send_in == sorted(send_in)
        assert send_in[-1] > 0.3


class TestInFlightLimit:
    async def test_under_a_limit_each_admission_takes_a_place_until_none_is_free(self, redis: Redis) -> None:
        """With a limit of 2, two admissions get places, the third finds none, and a released one frees it."""
        await redis.hset(keys.provider_in_flight_limit(ENDPOINT), "limit", 2)
        gate = ProviderGate(redis, "b", ENDPOINT, UNPACED, GateMemory(open_for_s=3600))
        first, second, third = [await gate.admit() for _ in range(3)]
        assert first.place is not None
        assert second.place is not None
        assert third.full
        await redis.zrem(keys.provider_in_flight_calls(ENDPOINT), first.place)
        assert not (await gate.admit()).full

    async def test_a_dead_worker_s_place_frees_itself(self, redis: Redis) -> None:
        """A place never given back (its worker died) expires after twice the lease, unrenewed."""
        config = parse_config({"limits": {"lease_s": 1}})
        await redis.hset(keys.provider_in_flight_limit(ENDPOINT), "limit", 1)
        assert not (await ProviderGate(redis, "b", ENDPOINT, config).admit()).full
        other = ProviderGate(redis, "b", ENDPOINT, config)
        assert (await other.admit()).full

        async def free() -> bool:
            return not (await other.admit()).full

        await eventually(free, timeout_s=5)

    async def test_without_a_limit_nothing_is_written(self, redis: Redis) -> None:
        """No limit set: an admission takes no place and leaves no in-flight key behind."""
        admission = await ProviderGate(redis, "b", ENDPOINT, UNPACED).admit()
        assert (admission.limit, admission.place) == (None, None)
        assert not await redis.exists(keys.provider_in_flight_calls(ENDPOINT))
