"""The simulator's spend limits over real HTTP: the tokens-per-minute bucket, OpenAI's rate-limit headers
and the overload 429 past K calls in flight."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from multidict import CIMultiDictProxy

from simulator import RunningSimulator, SimulatorSettings, start_simulator
from simulator.ratelimit_headers import go_duration
from tests.helpers import eventually

# One token a second over a minute: the bucket holds 60 tokens and barely refills while a test runs.
SLOW_BUCKET = {"tpm_limit": 60, "tpm_window_s": 60.0}
PROMPT = "x" * 40  # 10 tokens by the simulator's count (four characters each)
RATE_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GO_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with await start_simulator(
        SimulatorSettings(ttft_ms=0, tokens_per_s=0, answer_tokens=5)
    ) as running:
        yield running


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # One connection per request: a request must not queue behind a held stream on a shared one.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


def body(max_tokens: int | None = None, *, stream: bool = False, question: str = PROMPT) -> dict[str, Any]:
    chat: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    if stream:
        chat |= {"stream": True, "stream_options": {"include_usage": True}}
    return chat


async def ask(
    http: aiohttp.ClientSession, sim: RunningSimulator, chat: dict[str, Any]
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with http.post(f"{sim.base_url}/chat/completions", json=chat) as resp:
        return resp.status, resp.headers, await resp.read()


def sim_process(*flags: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    command = [sys.executable, "-m", "simulator", "--port", "0", *flags]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def seconds(duration: str) -> float:
    """An OpenAI (Go) duration such as `6m0s` or `250ms`, in seconds; fails on anything else."""
    match = _GO_DURATION.match(duration)
    assert duration, "an empty duration"
    assert match is not None, f"not a duration: {duration!r}"
    hours, minutes, secs, ms = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + secs + ms / 1000


def rate_headers(headers: CIMultiDictProxy[str]) -> dict[str, float]:
    """The six rate-limit headers, parsed: counts as integers, resets in seconds."""
    parsed: dict[str, float] = {}
    for name in RATE_HEADERS:
        text = headers[name]
        parsed[name] = seconds(text) if "-reset-" in name else int(text)
    return parsed


def test_durations_are_written_as_openai_writes_them() -> None:
    """Durations come out in Go's form, the one OpenAI's headers use, and read back as the same seconds."""
    cases = {0: "0s", 0.0004: "0s", 0.25: "250ms", 1: "1s", 8.64: "8.64s", 90.5: "1m30.5s", 360: "6m0s"}
    cases |= {3600: "1h0m0s", 3723.004: "1h2m3.004s"}
    for value, text in cases.items():
        assert go_duration(value) == text
        assert seconds(text) == pytest.approx(round(value, 3))


async def test_past_the_token_bucket_a_429_with_headers_and_retry_after(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """Prompt plus max_tokens are taken at admission; the request that does not fit gets a 429 with the
    wait until it does and the rate-limit headers; one larger than the bucket gets no Retry-After."""
    sim.update_settings(answer_tokens=20, **SLOW_BUCKET)
    assert (await ask(http, sim, body(20)))[0] == 200  # 10 + 20 of 60
    assert (await ask(http, sim, body(20)))[0] == 200  # 60 of 60: answers as long as max_tokens
    status, headers, reply = await ask(http, sim, body(20))
    assert status == 429
    assert json.loads(reply)["error"]["type"] == "tokens"
    assert 25 < float(headers["Retry-After"]) <= 30  # 30 tokens at one a second, less what refilled
    assert headers["x-ratelimit-limit-tokens"] == "60"
    assert int(headers["x-ratelimit-remaining-tokens"]) < 5
    assert 55 < seconds(headers["x-ratelimit-reset-tokens"]) <= 60
    assert "x-ratelimit-limit-requests" not in headers  # no rpm_limit: only the limited dimension
    status, headers, _ = await ask(http, sim, body(100))
    assert (status, "Retry-After" in headers) == (429, False)  # 110 tokens never fit in 60
    stats = sim.stats()
    assert (stats["refused_tpm"], stats["tokens_admitted"], stats["tokens_returned"]) == (2, 60, 0)
    sim.reset()
    assert (await ask(http, sim, body(20)))[0] == 200  # a reset fills the bucket


async def test_a_short_answer_gives_back_what_it_did_not_use_so_the_next_fits(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """An answer shorter than max_tokens gives the rest back when it ends, streamed or not, so a request
    that would not fit otherwise does; tokens admitted minus returned are the tokens the answers used."""
    sim.update_settings(**SLOW_BUCKET)
    status, _, streamed = await ask(http, sim, body(45, stream=True))  # takes 55 of 60, uses 15
    assert status == 200
    status, _, reply = await ask(http, sim, body(30))  # 40: fits only with the 40 given back
    assert status == 200
    usage = json.loads(reply)["usage"]
    assert usage == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert b'"total_tokens":15' in streamed
    stats = sim.stats()
    assert (stats["tokens_admitted"], stats["tokens_returned"]) == (95, 65)
    assert stats["tokens_admitted"] - stats["tokens_returned"] == 2 * usage["total_tokens"]


async def test_without_max_tokens_an_answer_s_length_is_taken(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """A request without max_tokens takes a full answer's length, so nothing is left to give back."""
    sim.update_settings(**SLOW_BUCKET)
    assert (await ask(http, sim, body()))[0] == 200
    stats = sim.stats()
    assert (stats["tokens_admitted"], stats["tokens_returned"]) == (15, 0)


async def test_a_client_that_hangs_up_gives_back_the_answer_it_did_not_get(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """A stream closed by its client before its first token gives back all of its reserved completion."""
    sim.update_settings(ttft_ms=60_000, **SLOW_BUCKET)
    response = await http.post(f"{sim.base_url}/chat/completions", json=body(40, stream=True))
    assert response.status == 200
    response.close()

    async def given_back() -> bool:
        return bool(sim.stats()["tokens_returned"] == 40)

    await eventually(given_back)
    assert sim.stats()["tokens_admitted"] == 50


async def test_rate_limit_headers_on_every_answer_and_429_and_they_parse(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """With rpm and tpm limits, streamed and non-streamed 200s and 429s of every cause carry the six
    headers, parseable and counting down; ratelimit_headers false sends none, even on a 429."""
    sim.update_settings(rpm_limit=3, tpm_limit=6000, tpm_window_s=1.0)  # 100 tokens, 100 a second
    answers = [await ask(http, sim, body(10, stream=stream)) for stream in (True, False)]
    faulted = await ask(http, sim, body(10, question="[sim:429]"))
    past_rpm = await ask(http, sim, body(10))
    past_tpm = await ask(http, sim, body(200))
    assert [status for status, _, _ in (*answers, faulted, past_rpm, past_tpm)] == [200, 200, 429, 429, 429]
    first, second = (rate_headers(headers) for _, headers, _ in answers)
    assert (first["x-ratelimit-limit-requests"], first["x-ratelimit-limit-tokens"]) == (3, 6000)
    assert (first["x-ratelimit-remaining-requests"], second["x-ratelimit-remaining-requests"]) == (2, 1)
    assert first["x-ratelimit-remaining-tokens"] == 80  # 100 less 10 + 10 taken
    assert 0 < first["x-ratelimit-reset-tokens"] <= 0.2
    assert 59 < first["x-ratelimit-reset-requests"] <= 60  # the first request leaves the window
    for _, headers, _ in (faulted, past_rpm, past_tpm):
        assert rate_headers(headers)["x-ratelimit-remaining-requests"] == 0
    assert sim.stats()["refused_rpm"] == 1
    sim.update_settings(ratelimit_headers=False)
    refusals = [await ask(http, sim, body(10)), await ask(http, sim, body(200))]  # past rpm, too large
    for status, headers, _ in refusals:
        assert status == 429
        assert not any(name.lower().startswith("x-ratelimit") for name in headers)
    assert "Retry-After" in refusals[0][1]  # past the window: the wait is still said


async def test_past_k_calls_in_flight_a_bare_429_before_the_body_is_read(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """With K calls held in flight by a slow first token, the next gets a 429 with no Retry-After and
    none of the rate-limit headers, even with limits set and a body that is not JSON; then it fits."""
    sim.update_settings(overload_in_flight=2, ttft_ms=60_000, rpm_limit=100, **SLOW_BUCKET)
    held = [await http.post(f"{sim.base_url}/chat/completions", json=body(1, stream=True)) for _ in range(2)]
    assert [response.status for response in held] == [200, 200]
    assert "x-ratelimit-limit-tokens" in held[0].headers
    async with http.post(f"{sim.base_url}/chat/completions", data=b"not json") as resp:
        assert resp.status == 429
        assert not any(name.lower().startswith(("retry-after", "x-ratelimit")) for name in resp.headers)
        assert json.loads(await resp.read())["error"]["code"] == "rate_limit_exceeded"
    stats = sim.stats()
    assert (stats["refused_overload"], stats["max_in_flight"], stats["requests_total"]) == (1, 2, 3)
    assert stats["tokens_admitted"] == 22  # the refused call took nothing
    held[0].close()

    async def one_left() -> bool:
        return bool(sim.stats()["in_flight"] == 1)

    await eventually(one_left)
    sim.update_settings(ttft_ms=0)
    assert (await ask(http, sim, body(1)))[0] == 200
    held[1].close()


async def test_limits_are_settings_of_the_endpoint_refused_when_bad(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """/_sim/settings sets the limits and refuses a bad value naming its key."""
    changes = {"tpm_limit": 600, "tpm_window_s": 6.0, "ratelimit_headers": False, "overload_in_flight": 3}
    async with http.post(f"{sim.url}/_sim/settings", json=changes) as resp:
        assert resp.status == 200
        assert {key: (await resp.json())[key] for key in changes} == changes
    for key, value in (
        ("tpm_limit", -1),
        ("tpm_window_s", 0),
        ("tpm_window_s", 61),
        ("overload_in_flight", -1),
    ):
        async with http.post(f"{sim.url}/_sim/settings", json={key: value}) as resp:
            assert (resp.status, (await resp.json())["error"]["param"]) == (400, key)


def test_limits_are_flags() -> None:
    """The flags set the limits; a bad one exits 2 naming it."""
    with sim_process("--tpm-limit", "600", "--tpm-window-s", "6", "--ratelimit-headers", "false") as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().removeprefix("simulator listening on ").removesuffix("/v1")
        with urllib.request.urlopen(f"{url}/_sim/settings", timeout=10) as resp:
            settings = json.load(resp)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert (settings["tpm_limit"], settings["tpm_window_s"], settings["ratelimit_headers"]) == (
        600,
        6.0,
        False,
    )
    with sim_process("--overload-in-flight", "-1") as proc:
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert "--overload-in-flight" in err
