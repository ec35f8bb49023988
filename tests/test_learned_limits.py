"""Limits learned from the provider's headers, at the gate with a real Redis: one call goes first (the
probe), its headers pace every worker at 97% of them; a provider without headers keeps the no-Redis
path."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from common import keys
from common.config import parse_config
from common.errors import RetryableProviderError
from common.provider_state import provider_states
from worker.answering.admission import Admission, GateMemory
from worker.answering.gate import ProviderGate
from worker.answering.pacing import OWN_PROBE_WAIT_S
from worker.answering.provider import ChatRequest

ENDPOINT = "provider:443"
NOTHING_SET = parse_config({})
REQUEST = ChatRequest(
    messages=[{"role": "user", "content": "Hi?"}], model="gpt-4o", params={"max_tokens": 50}
)
HEADERS = {
    "x-ratelimit-limit-requests": "3000",
    "x-ratelimit-limit-tokens": "600000",
    "x-ratelimit-remaining-requests": "2999",
    "x-ratelimit-remaining-tokens": "99000",
    "x-ratelimit-reset-requests": "20ms",
    "x-ratelimit-reset-tokens": "100ms",
}


def _gate(redis: Redis, memory: GateMemory | None = None, batch: str = "b") -> ProviderGate:
    return ProviderGate(redis, batch, ENDPOINT, NOTHING_SET, memory)


async def _scripts_run(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


async def test_one_call_goes_first_and_its_headers_pace_every_worker(redis: Redis) -> None:
    """The first admission is the probe, the others wait; its headers are stored and the next
    admissions are paced at 97% of them, requests and tokens."""
    probe_gate, other = _gate(redis), _gate(redis, batch="c")
    reservation = probe_gate.reservation(REQUEST)
    probe = await probe_gate.admit(reservation)
    assert probe.probe is not None
    waiting = await other.admit(other.reservation(REQUEST))
    assert (waiting.learning, waiting.probe, waiting.reserved) == (True, None, 0)
    spend = probe_gate.spend(probe, reservation)
    spend.on_headers(HEADERS, 200)
    await probe_gate.pacing.drain()
    learned = await redis.hgetall(keys.provider_rate_limits(ENDPOINT))
    assert (learned[b"requests"], learned[b"tokens"], learned[b"tokens_burst_ms"]) == (
        b"3000",
        b"600000",
        b"10000",
    )
    assert not await redis.exists(keys.provider_probe(ENDPOINT))  # freed by what it learned
    paced = await other.admit(other.reservation(REQUEST))
    assert not paced.learning
    assert paced.paced
    assert paced.reserved == other.reservation(REQUEST).tokens
    assert paced.per_token_ms == pytest.approx(60_000 / (0.97 * 600_000))  # as Lua prints it: 14 digits
    assert await redis.exists(keys.provider_pace(ENDPOINT))  # requests too: 3000 a minute at 97%


async def test_status_says_the_pace_was_learned_from_headers(redis: Redis) -> None:
    """askq status: the paces in force, at 97% of what the headers gave, and when they were learned."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    probe = await gate.admit(reservation)
    gate.spend(probe, reservation).on_headers(HEADERS, 200)
    await gate.pacing.drain()
    await gate.admit(reservation)
    [state] = await provider_states(redis)
    [line] = state.lines()
    assert line.startswith(f"askq paces its calls to {ENDPOINT} at 2,910 requests/min (97% of the limit its")
    assert "and 582,000 tokens/min (97% of the limit its x-ratelimit headers gave at" in line
    document = state.to_json()
    assert document["pace"]["tokens_per_minute"] == 582_000
    assert document["pace"]["tokens_by"] == "headers"
    assert document["pace"]["token_burst_s"] == 9.0  # 90% of the provider's 10 s bucket
    assert document["rate_limits"]["tokens_per_minute"] == 600_000
    assert document["rate_limits"]["learned_at"] is not None


async def test_a_configured_dimension_wins_over_the_headers(redis: Redis) -> None:
    """tokens_per_minute in jobs.yaml: the tokens are paced by it; requests are learned."""
    config = parse_config({"provider": {"tokens_per_minute": 120_000}})
    gate = ProviderGate(redis, "b", ENDPOINT, config)
    reservation = gate.reservation(REQUEST)
    probe = await gate.admit(reservation)
    assert probe.per_token_ms == 0.5  # configured, while requests are still to be learned
    gate.spend(probe, reservation).on_headers(HEADERS, 200)
    await gate.pacing.drain()
    await gate.admit(reservation)
    [state] = await provider_states(redis)
    [line] = state.lines()
    assert "2,910 requests/min (97% of the limit its x-ratelimit headers gave at" in line
    assert "120,000 tokens/min (provider.tokens_per_minute in jobs.yaml)" in line


async def test_a_provider_without_headers_keeps_the_no_redis_path(redis: Redis) -> None:
    """Its probe's answer had no rate-limit headers: that is stored, nothing is paced (status lists
    nothing), and a process admits 20 calls on one reading of Redis."""
    memory = GateMemory(open_for_s=3600)
    gate = _gate(redis, memory)
    reservation = gate.reservation(REQUEST)
    probe = await gate.admit(reservation)
    gate.spend(probe, reservation).on_headers({"content-type": "text/event-stream"}, 200)
    await gate.pacing.drain()
    assert await redis.hget(keys.provider_rate_limits(ENDPOINT), "none") == b"1"
    await redis.config_resetstat()
    admissions = [await gate.admit(gate.reservation(REQUEST)) for _ in range(20)]
    assert set(admissions) == {admissions[0]}
    assert not admissions[0].paced
    assert await _scripts_run(redis) == 1
    assert not await redis.exists(keys.provider_token_pace(ENDPOINT), keys.provider_pace(ENDPOINT))
    unremembered = ProviderGate(redis, "c", ENDPOINT, NOTHING_SET, memory)  # another batch: not open yet
    reservation = unremembered.reservation(REQUEST)
    assert (await unremembered.admit(reservation)) == admissions[0]
    assert "prompt" not in reservation.__dict__  # nothing to reserve for: no estimate made
    assert await provider_states(redis) == []  # nothing holds it back: status lists nothing
    await gate.refused(RetryableProviderError("HTTP 429", status_code=429, retry_after_s=30.0))
    [state] = await provider_states(redis)  # a cooldown now: why nothing else paces it is said beside
    assert state.lines()[1].startswith(f"{ENDPOINT} sends no x-ratelimit headers (seen at ")
    assert state.lines()[1].endswith("): askq paces it only as jobs.yaml sets")
    assert state.to_json()["rate_limits"]["sends_none"] is True


async def test_a_probe_that_learned_nothing_lets_another_go(redis: Redis) -> None:
    """A probe cut before any answer (no headers heard) frees its place: the next call probes."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    probe = await gate.admit(reservation)
    gate.spend(probe, reservation).end()
    await gate.pacing.drain()
    assert (await gate.admit(reservation)).probe is not None


async def test_a_refusal_with_headers_teaches_them_too(redis: Redis) -> None:
    """The probe got a 429 carrying the headers: the limits are learned from it."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    probe = await gate.admit(reservation)
    spend = gate.spend(probe, reservation)
    spend.on_headers(HEADERS, 429)
    spend.end()
    await gate.pacing.drain()
    assert await redis.hget(keys.provider_rate_limits(ENDPOINT), "tokens") == b"600000"


async def test_an_embeddings_call_neither_probes_nor_waits(redis: Redis) -> None:
    """A call that reserves no tokens (embeddings) is not held back to learn the chat limits."""
    gate = _gate(redis)
    await gate.admit(gate.reservation(REQUEST))  # a chat call probes
    admission = await gate.admit()
    assert (admission.learning, admission.probe, admission.paced) == (False, None, False)


async def test_answers_with_the_same_limits_write_nothing_more(redis: Redis) -> None:
    """What is left changes with every answer: only a change of the limits is written (or a minute on)."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    probe = await gate.admit(reservation)
    gate.spend(probe, reservation).on_headers(HEADERS, 200)
    await gate.pacing.drain()
    await redis.config_resetstat()
    for remaining in ("98000", "97000"):
        gate.spend(Admission(), reservation).on_headers(
            {**HEADERS, "x-ratelimit-remaining-tokens": remaining}, 200
        )
    await gate.pacing.drain()
    assert await _scripts_run(redis) == 0
    gate.spend(Admission(), reservation).on_headers({**HEADERS, "x-ratelimit-limit-tokens": "900000"}, 200)
    await gate.pacing.drain()
    assert await redis.hget(keys.provider_rate_limits(ENDPOINT), "tokens") == b"900000"


async def test_a_probe_done_wakes_the_calls_of_its_process_waiting_for_it(redis: Redis) -> None:
    """Calls of the probe's own process wait for it, not for a poll: its answer's headers wake them."""
    gate = _gate(redis, GateMemory())
    reservation = gate.reservation(REQUEST)
    probe = await gate.admit(reservation)
    spend = gate.spend(probe, reservation)
    waiting = asyncio.create_task(gate.pacing.learned(1))
    await asyncio.sleep(0)  # it starts waiting
    assert not waiting.done()
    spend.on_headers(HEADERS, 200)
    await gate.pacing.drain()
    await asyncio.wait_for(waiting, OWN_PROBE_WAIT_S / 2)  # woken, not timed out
