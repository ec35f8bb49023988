"""The token pace at the gate, with a real Redis: an admission reserves its tokens on a GCRA shared by
every worker, and its settle gives back the unused part (signed), never below now."""

from __future__ import annotations

from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig, parse_config
from common.tokens import prompt_tokens_ceiling
from common.usage import Usage
from worker.answering.gate import ProviderGate
from worker.answering.provider import ChatRequest

ENDPOINT = "provider:443"
MS_PER_TOKEN = 100.0
# Both dimensions configured: nothing is learned from headers, no probe goes first.
CONFIGURED = parse_config(
    {"provider": {"tokens_per_minute": 600, "requests_per_minute": 600_000, "rate_burst_s": 30}}
)
REQUEST = ChatRequest(
    messages=[{"role": "user", "content": "How far is the moon?"}], model="gpt-4o", params={"max_tokens": 100}
)


async def _now_ms(redis: Redis) -> int:
    """Redis's clock in whole ms, as the scripts read it."""
    seconds, micros = await redis.time()
    return int(seconds * 1000 + micros // 1000)


async def _pace(redis: Redis) -> float:
    return float(await redis.get(keys.provider_token_pace(ENDPOINT)) or 0)


def _gate(redis: Redis, config: AskqConfig = CONFIGURED) -> ProviderGate:
    return ProviderGate(redis, "b", ENDPOINT, config)


async def test_an_admission_reserves_the_prompt_estimate_plus_max_tokens(redis: Redis) -> None:
    """The reservation is the prompt's estimate plus max_tokens; each admission books it ahead."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    assert reservation.tokens == reservation.prompt.tokens + 100
    before = await _now_ms(redis)
    first = await gate.admit(reservation)
    after_first = await _pace(redis)
    second = await gate.admit(reservation)
    assert (first.reserved, second.reserved) == (reservation.tokens, reservation.tokens)
    assert first.per_token_ms == MS_PER_TOKEN
    assert before + reservation.tokens * MS_PER_TOKEN <= after_first
    assert await _pace(redis) == after_first + reservation.tokens * MS_PER_TOKEN


async def test_max_completion_tokens_is_reserved_and_a_strange_value_is_not_believed(redis: Redis) -> None:
    """max_completion_tokens counts as max_tokens; a line's non-count max_tokens reserves the default."""
    gate = _gate(redis)
    newer = ChatRequest(REQUEST.messages, "gpt-4o", {"max_completion_tokens": 7})
    assert gate.reservation(newer).completion == 7
    odd = ChatRequest(REQUEST.messages, "gpt-4o", {"max_tokens": "lots"})
    assert gate.reservation(odd).completion == CONFIGURED.provider.max_tokens


async def test_the_burst_goes_at_once_then_calls_wait_for_their_tokens(redis: Redis) -> None:
    """rate_burst_s of tokens go at once; past it, an admission's send time is its tokens' time."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    booked_s = reservation.tokens * MS_PER_TOKEN / 1000
    fitting = int(30 // booked_s)
    sends = [(await gate.admit(reservation)).send_in_s for _ in range(fitting + 2)]
    assert all(send < 0.01 for send in sends[:fitting]), sends  # (the request pace spaces them 0.1 ms)
    assert sends[-1] > booked_s / 2  # the second past the burst waits for at least most of one call


async def test_a_settle_gives_back_and_never_moves_the_pace_below_now(redis: Redis) -> None:
    """10 unused tokens move the pace back 1 s; 1,000 more would go past now: it stops at now."""
    gate = _gate(redis)
    key = keys.provider_token_pace(ENDPOINT)
    await redis.set(key, str(await _now_ms(redis) + 5000))
    booked = await _pace(redis)
    await gate.pacing.settle(ENDPOINT, 10, MS_PER_TOKEN, -1)
    assert await _pace(redis) == booked - 1000
    before = await _now_ms(redis)
    await gate.pacing.settle(ENDPOINT, 1000, MS_PER_TOKEN, -1)
    assert before - 1 <= await _pace(redis) <= await _now_ms(redis)


async def test_an_under_estimate_moves_the_pace_forward(redis: Redis) -> None:
    """20 tokens more than reserved move a booked pace 2 s forward, an idle one to 2 s from now."""
    gate = _gate(redis)
    key = keys.provider_token_pace(ENDPOINT)
    await redis.set(key, str(await _now_ms(redis) + 5000))
    booked = await _pace(redis)
    await gate.pacing.settle(ENDPOINT, -20, MS_PER_TOKEN, -1)
    assert await _pace(redis) == booked + 2000
    await redis.delete(key)
    before = await _now_ms(redis)
    await gate.pacing.settle(ENDPOINT, -20, MS_PER_TOKEN, -1)
    assert before + 2000 - 1 <= await _pace(redis) <= await _now_ms(redis) + 2000


async def test_the_provider_s_own_pace_only_pushes_askq_s_forward(redis: Redis) -> None:
    """A reset-tokens 7 s ahead moves a pace booked 1 s ahead to 7 s; one booked 9 s ahead stays."""
    gate = _gate(redis)
    key = keys.provider_token_pace(ENDPOINT)
    await redis.set(key, str(await _now_ms(redis) + 1000))
    before = await _now_ms(redis)
    await gate.pacing.settle(ENDPOINT, 0, MS_PER_TOKEN, 7000)
    assert await _pace(redis) >= before + 7000
    await redis.set(key, str(await _now_ms(redis) + 9000))
    booked = await _pace(redis)
    await gate.pacing.settle(ENDPOINT, 0, MS_PER_TOKEN, 7000)
    assert await _pace(redis) == booked


async def test_an_answer_settles_what_it_did_not_use(redis: Redis) -> None:
    """Reported 10 + 20 tokens: the rest of the reservation is given back when the call ends."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    await gate.admit(reservation)
    admission = await gate.admit(reservation)
    booked = await _pace(redis)
    spend = gate.spend(admission, reservation)
    spend.on_headers({}, 200)
    spend.answered(Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30))
    spend.end()
    await gate.pacing.drain()
    assert await _pace(redis) == booked - (reservation.tokens - 30) * MS_PER_TOKEN


async def test_a_refusal_before_any_byte_gives_everything_back(redis: Redis) -> None:
    """A 429 with a status (the provider took nothing): the whole reservation comes back."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    await gate.admit(reservation)
    admission = await gate.admit(reservation)
    booked = await _pace(redis)
    spend = gate.spend(admission, reservation)
    spend.on_headers({}, 429)
    spend.end()
    await gate.pacing.drain()
    assert await _pace(redis) == booked - reservation.tokens * MS_PER_TOKEN


async def test_a_stream_broken_without_usage_keeps_its_reservation(redis: Redis) -> None:
    """Headers came, then no usage (a cut, or a server that reports none): nothing is given back."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    admission = await gate.admit(reservation)
    booked = await _pace(redis)
    cut = gate.spend(admission, reservation)
    cut.on_headers({}, 200)
    cut.end()
    unreported = gate.spend(admission, reservation)
    unreported.on_headers({}, 200)
    unreported.answered(Usage(prompt_tokens=5, completion_tokens=5, estimated=True))
    unreported.end()
    await gate.pacing.drain()
    assert await _pace(redis) == booked


async def test_a_prompt_larger_than_its_estimate_takes_more_and_raises_the_estimate(redis: Redis) -> None:
    """A prompt reported past its reservation: the pace moves forward by the difference, and the
    model's next reservations are raised to what was reported."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    admission = await gate.admit(reservation)
    booked = await _pace(redis)
    spend = gate.spend(admission, reservation)
    spend.on_headers({}, 200)
    prompt = prompt_tokens_ceiling(REQUEST.messages)  # what no tokenizer exceeds
    over = prompt - reservation.prompt.tokens
    spend.answered(Usage(prompt_tokens=prompt, completion_tokens=100, total_tokens=prompt + 100))
    spend.end()
    await gate.pacing.drain()
    assert over > 0
    assert await _pace(redis) == booked + over * MS_PER_TOKEN
    assert gate.pacing.prompt_tokens.factor("gpt-4o") > 1
    assert gate.reservation(REQUEST).prompt.tokens == prompt


async def test_an_embeddings_call_takes_no_tokens(redis: Redis) -> None:
    """An admission without a reservation (an embeddings call) leaves the token pace alone."""
    admission = await _gate(redis).admit()
    assert admission.reserved == 0
    assert not await redis.exists(keys.provider_token_pace(ENDPOINT))


async def test_a_call_cancelled_before_its_send_time_gives_everything_back(redis: Redis) -> None:
    """Past the burst, a call waits for its send time; cancelled meanwhile, it was never sent."""
    gate = _gate(redis)
    reservation = gate.reservation(REQUEST)
    admission = await gate.admit(reservation)
    while admission.send_in_s < 1:
        admission = await gate.admit(reservation)
    booked = await _pace(redis)
    gate.spend(admission, reservation).end()  # no headers: it ended asleep
    await gate.pacing.drain()
    assert await _pace(redis) == booked - reservation.tokens * MS_PER_TOKEN


async def test_an_embeddings_call_does_not_change_the_pace_status_shows(redis: Redis) -> None:
    """Status shows the chat calls' paces: an embeddings call paced by requests alone leaves them."""
    gate = _gate(redis)
    await gate.admit(gate.reservation(REQUEST))
    shown = await redis.hget(keys.provider_rate_limits(ENDPOINT), "paced")
    assert shown == b"600000 jobs.yaml 600 jobs.yaml 30000"
    await gate.admit()
    assert await redis.hget(keys.provider_rate_limits(ENDPOINT), "paced") == shown
