"""The script askq replaces, as the seed guide writes it: one ``AsyncOpenAI``, ``asyncio.gather``
over a ``Semaphore``, each answer streamed and its text collected; no Redis, nothing durable.

    python -m bench.baseline QUESTIONS_FILE --concurrency 32

Prints one JSON line: jobs, seconds from the first call to the last answer, and CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path

from openai import AsyncOpenAI


async def stream_text(prompt: str, client: AsyncOpenAI) -> str:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
    )
    full_response = ""
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content is not None:
            full_response += chunk.choices[0].delta.content
    return full_response


async def process_prompt(prompt: str, client: AsyncOpenAI, semaphore: asyncio.Semaphore) -> str:
    async with semaphore:
        return await stream_text(prompt, client)


async def main(prompts: list[str], concurrency: int) -> list[str]:
    semaphore = asyncio.Semaphore(concurrency)
    async with AsyncOpenAI() as client:
        return await asyncio.gather(*(process_prompt(prompt, client, semaphore) for prompt in prompts))


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("questions", type=Path)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    prompts = args.questions.read_text(encoding="utf-8").splitlines()
    cpu_before, started = cpu_s(), time.perf_counter()
    answers = asyncio.run(main(prompts, args.concurrency))
    elapsed_s, cpu = time.perf_counter() - started, cpu_s() - cpu_before
    assert all(answers), "every question is answered"
    print(json.dumps({"jobs": len(answers), "elapsed_s": elapsed_s, "cpu_s": cpu}))
