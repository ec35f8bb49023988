"""The OpenAI-compatible simulator, exercised over real HTTP with the openai client and aiohttp."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from simulator import RunningSimulator, SimulatorSettings, start_simulator
from simulator.answers import answer_tokens
from simulator.settings import SettingsError

FAST = SimulatorSettings(ttft_ms=0, tokens_per_s=0, answer_tokens=12)
REPO_ROOT = Path(__file__).resolve().parents[1]


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with await start_simulator(FAST) as running:
        yield running


@pytest_asyncio.fixture
async def client(sim: RunningSimulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="sim", max_retries=0) as oai:
        yield oai


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post_chat(
    http: aiohttp.ClientSession, sim: RunningSimulator, body: dict[str, Any]
) -> tuple[int, Any]:
    async with http.post(f"{sim.base_url}/chat/completions", json=body) as resp:
        return resp.status, await resp.json()


async def admin(
    http: aiohttp.ClientSession, sim: RunningSimulator, path: str, body: Any = None
) -> tuple[int, Any]:
    method = "GET" if body is None else "POST"
    async with http.request(method, f"{sim.url}/_sim/{path}", json=body) as resp:
        return resp.status, await resp.json()


async def stream_chunks(
    client: openai.AsyncOpenAI, question: str, *, include_usage: bool = False, max_tokens: int | None = None
) -> list[ChatCompletionChunk]:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=user(question),
        stream=True,
        stream_options={"include_usage": True} if include_usage else openai.omit,
        max_tokens=max_tokens if max_tokens is not None else openai.omit,
    )
    return [chunk async for chunk in stream]


@pytest.mark.asyncio
async def test_stream_parses_and_matches_non_streamed_answer(client: openai.AsyncOpenAI) -> None:
    """Streamed deltas parse as typed chunks and concatenate to the non-streamed answer, usage last."""
    chunks = await stream_chunks(client, "What is 2+2?", include_usage=True)
    whole = await client.chat.completions.create(model="gpt-4o-mini", messages=user("What is 2+2?"))

    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert text.startswith('Simulated answer to "What is 2+2?":')
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == 12
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 12
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {"gpt-4o-mini"}
    assert whole.choices[0].finish_reason == "stop"


@pytest.mark.asyncio
async def test_usage_chunk_only_when_requested(client: openai.AsyncOpenAI) -> None:
    """Without stream_options.include_usage no chunk carries usage and every chunk has a choice."""
    chunks = await stream_chunks(client, "No usage please")
    assert all(c.usage is None for c in chunks)
    assert all(len(c.choices) == 1 for c in chunks)


@pytest.mark.asyncio
async def test_answer_is_deterministic_per_request(client: openai.AsyncOpenAI) -> None:
    """The same (model, messages) always yields the same text; another question or model does not."""

    async def ask(model: str, question: str) -> str | None:
        reply = await client.chat.completions.create(model=model, messages=user(question))
        return reply.choices[0].message.content

    first = await ask("gpt-4o", "Why is the sky blue?")
    assert first == await ask("gpt-4o", "Why is the sky blue?")
    assert first != await ask("gpt-4o", "Why is grass green?")
    assert first != await ask("gpt-4o-mini", "Why is the sky blue?")
    assert first == "".join(answer_tokens("gpt-4o", user("Why is the sky blue?"), 12))


@pytest.mark.asyncio
async def test_korean_question_gets_korean_answer(client: openai.AsyncOpenAI) -> None:
    """A question containing Hangul is answered with a Korean lead-in and Korean filler words."""
    reply = await client.chat.completions.create(model="gpt-4o", messages=user("서울의 인구는?"))
    text = reply.choices[0].message.content or ""
    assert text.startswith('"서울의 인구는?"에 대한 시뮬레이션 답변입니다:')
    assert all("\uac00" <= word[0] <= "\ud7a3" for word in text.split(":", 1)[1].split())


@pytest.mark.asyncio
async def test_stamped_tokens_carry_the_time_they_were_written(
    sim: RunningSimulator, client: openai.AsyncOpenAI
) -> None:
    """With stamp_tokens, each content token is the Unix time of its write, paced tokens later ones."""
    sim.update_settings(stamp_tokens=True, tokens_per_s=50, answer_tokens=3)
    before = time.time()
    chunks = await stream_chunks(client, "When?", include_usage=False)
    after = time.time()
    stamps = [float(c.choices[0].delta.content) for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(stamps) == 3
    assert before <= stamps[0] < stamps[1] < stamps[2] <= after
    assert stamps[2] - stamps[0] >= 0.03  # 20 ms apart at 50 tokens/s, not written together


@pytest.mark.asyncio
async def test_max_tokens_truncates_with_finish_reason_length(client: openai.AsyncOpenAI) -> None:
    """max_tokens (or max_completion_tokens) below the answer length ends it early with "length"."""
    chunks = await stream_chunks(client, "Long one", max_tokens=5, include_usage=True)
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(contents) == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    whole = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("Long one"), max_completion_tokens=3
    )
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 3


@pytest.mark.asyncio
async def test_429_directive_repeats_then_succeeds(
    sim: RunningSimulator, http: aiohttp.ClientSession, client: openai.AsyncOpenAI
) -> None:
    """`[sim:429x2]` refuses two attempts with Retry-After headers, then succeeds; stats count 3 attempts."""
    question = "Retry me [sim:429@0.25x2]"
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model="gpt-4o", messages=user(question))
        assert refused.value.response.headers["Retry-After"] == "0.25"
        assert refused.value.response.headers["retry-after-ms"] == "250"
    reply = await client.chat.completions.create(model="gpt-4o", messages=user(question))
    assert reply.choices[0].finish_reason == "stop"
    _, stats = await admin(http, sim, "stats")
    assert stats["attempts"][question] == 3
    assert stats["responses_by_status"] == {"200": 1, "429": 2}


@pytest.mark.asyncio
async def test_429_directive_uses_settings_retry_after(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """A bare `429` directive sends the retry_after_s setting as Retry-After."""
    body = {"model": "gpt-4o", "messages": user("[sim:429]")}
    async with http.post(f"{sim.base_url}/chat/completions", json=body) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "1"
        assert (await resp.json())["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.asyncio
async def test_cut_stream_raises_connection_error(sim: RunningSimulator, client: openai.AsyncOpenAI) -> None:
    """A cut stream delivers cut_after_chunks tokens, then iteration raises APIConnectionError."""
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=user("Cut me [sim:cut]"), stream=True
    )
    received: list[str] = []

    async def drain() -> None:
        async for chunk in stream:
            received.extend(c.delta.content for c in chunk.choices if c.delta.content)

    with pytest.raises(openai.APIConnectionError):
        await drain()
    assert len(received) == sim.settings.cut_after_chunks
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="gpt-4o", messages=user("Cut whole [sim:cut]"))
    assert sim.stats()["streams_cut"] == 2


@pytest.mark.asyncio
async def test_error_inside_stream_raises_api_error(client: openai.AsyncOpenAI) -> None:
    """An error object inside a 200 stream makes the openai client raise APIError with its message."""
    with pytest.raises(openai.APIError, match="simulated error inside the stream") as raised:
        await stream_chunks(client, "Break [sim:error]")
    assert not isinstance(raised.value, openai.APIStatusError | openai.APIConnectionError)


@pytest.mark.asyncio
async def test_nofinish_stream_has_no_finish_reason(client: openai.AsyncOpenAI) -> None:
    """`nofinish` streams every token and [DONE] but never a finish_reason."""
    chunks = await stream_chunks(client, "Unfinished [sim:nofinish]")
    assert len(chunks) == 1 + 12
    assert all(c.choices[0].finish_reason is None for c in chunks)


@pytest.mark.asyncio
async def test_permanent_400_on_every_attempt(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    """`[sim:400]` answers 400 with a simulated OpenAI error body on every attempt."""
    for _ in range(3):
        status, body = await post_chat(http, sim, {"model": "gpt-4o", "messages": user("Bad [sim:400]")})
        assert status == 400
        assert body["error"]["type"] == "invalid_request_error"
        assert "simulated" in body["error"]["message"].lower()


@pytest.mark.asyncio
async def test_bad_directive_is_400_naming_it(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    """An unparseable directive is refused with a 400 whose message names the bad item."""
    status, body = await post_chat(http, sim, {"model": "gpt-4o", "messages": user("[sim:429,teapot]")})
    assert status == 400
    assert "'teapot'" in body["error"]["message"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4o"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"messages": user("hi")}, "model"),
    ],
)
async def test_invalid_request_is_400_with_openai_error_shape(
    sim: RunningSimulator, http: aiohttp.ClientSession, body: dict[str, Any], param: str
) -> None:
    """Missing or empty messages, or a missing model, give 400 with OpenAI's error body."""
    status, reply = await post_chat(http, sim, body)
    assert status == 400
    assert set(reply["error"]) == {"message", "type", "param", "code"}
    assert reply["error"]["type"] == "invalid_request_error"
    assert reply["error"]["param"] == param


@pytest.mark.asyncio
async def test_required_api_key_gives_401(sim: RunningSimulator) -> None:
    """With require_api_key set, a wrong key is refused as AuthenticationError and the right one works."""
    sim.update_settings(require_api_key="secret")
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.chat.completions.create(model="gpt-4o", messages=user("hi"))
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="secret", max_retries=0) as right:
        assert len((await right.models.list()).data) >= 2


@pytest.mark.asyncio
async def test_models_lists_gpt_4o_family(client: openai.AsyncOpenAI) -> None:
    """GET /v1/models lists at least gpt-4o-mini and gpt-4o."""
    ids = {model.id async for model in client.models.list()}
    assert {"gpt-4o-mini", "gpt-4o"} <= ids


@pytest.mark.asyncio
async def test_random_faults_follow_rates(sim: RunningSimulator, client: openai.AsyncOpenAI) -> None:
    """rate_503 = 1 turns every request without a directive into a 503."""
    sim.update_settings(rate_503=1.0)
    with pytest.raises(openai.InternalServerError) as refused:
        await client.chat.completions.create(model="gpt-4o", messages=user("anything"))
    assert refused.value.status_code == 503


@pytest.mark.asyncio
async def test_rate_badline_breaks_one_line_of_a_200_stream(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """rate_badline = 1 sends, inside every 200 stream, one data: line that is not JSON, and counts it."""
    sim.update_settings(rate_badline=1.0)
    body = {"model": "gpt-4o", "messages": user("anything"), "stream": True}
    async with http.post(f"{sim.base_url}/chat/completions", json=body) as resp:
        assert resp.status == 200
        lines = (await resp.text()).splitlines()
    payloads = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    not_json = [text for text in payloads if text != "[DONE]" and not _is_json(text)]
    assert len(not_json) == 1
    _, stats = await admin(http, sim, "stats")
    assert stats["streams_malformed"] == 1


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.asyncio
async def test_rpm_limit_refuses_excess_with_retry_after(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """Past rpm_limit requests in a minute, requests get 429 with the wait until a slot frees."""
    sim.update_settings(rpm_limit=3)
    statuses = []
    for i in range(5):
        async with http.post(
            f"{sim.base_url}/chat/completions", json={"model": "gpt-4o", "messages": user(f"q{i}")}
        ) as resp:
            statuses.append(resp.status)
            if resp.status == 429:
                assert 59.0 < float(resp.headers["Retry-After"]) <= 60.0
                assert 59_000 < int(resp.headers["retry-after-ms"]) <= 60_000
    assert statuses == [200, 200, 200, 429, 429]
    await admin(http, sim, "reset", {})
    status, _ = await post_chat(http, sim, {"model": "gpt-4o", "messages": user("after reset")})
    assert status == 200


@pytest.mark.asyncio
async def test_rpm_window_enforces_the_limit_over_a_shorter_period(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """rpm_limit 120 over a 1 s window admits 2 requests a second, and says to retry within the second."""
    sim.update_settings(rpm_limit=120, rpm_window_s=1.0)
    statuses = []
    for i in range(3):
        async with http.post(
            f"{sim.base_url}/chat/completions", json={"model": "gpt-4o", "messages": user(f"w{i}")}
        ) as resp:
            statuses.append(resp.status)
            if resp.status == 429:
                assert 0 < int(resp.headers["retry-after-ms"]) <= 1000
    assert statuses == [200, 200, 429]


@pytest.mark.asyncio
async def test_max_in_flight_counts_concurrent_requests(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """Concurrent requests raise max_in_flight to their number; in_flight returns to zero after."""
    # A 500 ms first-token delay keeps all eight open together: they are sent within a few ms.
    sim.update_settings(ttft_ms=500)
    cpu_before = sim.stats()["process_cpu_s"]
    bodies = [{"model": "gpt-4o", "messages": user(f"parallel {i}"), "stream": True} for i in range(8)]

    async def run(body: dict[str, Any]) -> bytes:
        async with http.post(f"{sim.base_url}/chat/completions", json=body) as resp:
            return await resp.read()

    replies = await asyncio.gather(*(run(body) for body in bodies))
    assert all(reply.endswith(b"data: [DONE]\n\n") for reply in replies)
    _, stats = await admin(http, sim, "stats")
    assert stats["max_in_flight"] == 8
    assert stats["in_flight"] == 0
    assert stats["streams_completed"] == 8
    assert stats["completion_tokens_sent"] == 8 * 12
    assert stats["process_cpu_s"] > cpu_before  # serving costs CPU, which benchmarks read here


@pytest.mark.asyncio
async def test_ttft_jitter_spreads_first_tokens_within_its_range(
    sim: RunningSimulator, client: openai.AsyncOpenAI
) -> None:
    """With ttft_jitter_ms, first tokens come at different times, none before ttft - jitter."""
    sim.update_settings(stamp_tokens=True, ttft_ms=300, ttft_jitter_ms=250, answer_tokens=1)

    async def first_token_delay() -> float:
        sent = time.time()
        chunks = await stream_chunks(client, "When?")
        return (
            float(
                next(c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content)
            )
            - sent
        )

    delays = await asyncio.gather(*(first_token_delay() for _ in range(8)))
    assert min(delays) >= 0.05 - 0.005  # 300 - 250 ms, less the writes' 5 ms coalescing
    assert max(delays) - min(delays) > 0.05  # eight uniform draws over 500 ms are not all within 50 ms


def test_ttft_jitter_cannot_exceed_ttft() -> None:
    """A jitter larger than the first-token delay would send tokens before the request: refused."""
    with pytest.raises(SettingsError, match="ttft_jitter_ms must be <= ttft_ms"):
        SimulatorSettings().updated({"ttft_ms": 10.0, "ttft_jitter_ms": 20.0})


@pytest.mark.asyncio
async def test_settings_endpoint_validates_and_reset_keeps_settings(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """/_sim/settings applies valid partial updates, refuses bad ones naming the key; reset keeps settings."""
    status, body = await admin(http, sim, "settings", {"no_such_setting": 1})
    assert status == 400
    assert body["error"]["param"] == "no_such_setting"
    status, body = await admin(http, sim, "settings", {"rate_429": 1.5})
    assert status == 400
    assert body["error"]["param"] == "rate_429"
    status, body = await admin(http, sim, "settings", {"ttft_ms": "fast"})
    assert status == 400
    assert body["error"]["param"] == "ttft_ms"
    status, body = await admin(http, sim, "settings", {"answer_tokens": 7})
    assert status == 200
    assert body["answer_tokens"] == 7
    assert body["tokens_per_s"] == 0
    _, reply = await post_chat(http, sim, {"model": "gpt-4o", "messages": user("seven")})
    assert reply["usage"]["completion_tokens"] == 7
    status, _ = await admin(http, sim, "reset", {})
    _, stats = await admin(http, sim, "stats")
    assert status == 200
    assert stats["requests_total"] == 0
    assert stats["attempts"] == {}
    assert sim.settings.answer_tokens == 7


def test_cli_serves_until_sigterm() -> None:
    """`python -m simulator` prints its line, serves the deterministic answer and exits 0 on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "simulator", "--port", "0", "--ttft-ms", "0", "--answer-tokens", "9"]
    with subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        assert line.endswith("/v1")
        base_url = line.removeprefix("simulator listening on ")
        request = urllib.request.Request(
            f"{base_url}/chat/completions",
            data=json.dumps({"model": "gpt-4o", "messages": user("Across processes?")}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            content = json.load(resp)["choices"][0]["message"]["content"]
        assert content == "".join(answer_tokens("gpt-4o", user("Across processes?"), 9))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""
        assert proc.stderr.read() == ""


def test_cli_rejects_bad_flag_value() -> None:
    """A bad flag value exits 2 with a one-line error naming the flag."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--rate-cut", "2"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--rate-cut" in result.stderr


def _sim_process(*flags: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", *flags],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_profile_applies_its_settings_and_flags_beside_it_win() -> None:
    """`--profile llama-server` serves with the profile's settings; a flag given beside it overrides it."""
    with _sim_process("--profile", "llama-server", "--slots", "2") as proc:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip().removeprefix("simulator listening on ")
        with urllib.request.urlopen(base_url.removesuffix("/v1") + "/_sim/settings", timeout=10) as resp:
            settings = json.load(resp)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert settings["close_after_response"] is True
    assert settings["context_tokens"] == 4096
    assert settings["slots"] == 2
    assert settings["usage_chunk"] is True  # not the profile's: left at the default


def test_cli_refuses_an_unknown_profile_naming_the_known_ones() -> None:
    """An unknown profile exits 2 with one line that lists every known profile."""
    with _sim_process("--profile", "vllm") as proc:
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert err.count("\n") == 1
    assert "unknown profile 'vllm'" in err
    assert "openai, llama-server, llama-cpp-python" in err


@pytest.mark.asyncio
async def test_settings_endpoint_takes_a_profile_and_switches_between_them(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """{"profile": NAME} sets the profile's settings and puts the other profiles' back to their defaults;
    other keys in the same update win over it; an unknown profile is refused naming the known ones."""
    status, body = await admin(http, sim, "settings", {"profile": "llama-cpp-python", "slots": 3})
    assert status == 200
    assert (body["interrupt_on_wait"], body["usage_chunk"], body["slots"]) == (True, False, 3)
    status, body = await admin(http, sim, "settings", {"profile": "llama-server"})
    assert status == 200
    assert (body["interrupt_on_wait"], body["usage_chunk"], body["slots"]) == (False, True, 4)
    assert body["close_after_response"] is True
    assert body["answer_tokens"] == FAST.answer_tokens  # not a profile's setting: kept
    status, body = await admin(http, sim, "settings", {"profile": "openai"})
    assert (status, body["close_after_response"], body["slots"], body["context_tokens"]) == (200, False, 0, 0)
    status, body = await admin(http, sim, "settings", {"profile": "ollama"})
    assert status == 400
    assert body["error"]["param"] == "profile"
    assert "openai, llama-server, llama-cpp-python" in body["error"]["message"]
