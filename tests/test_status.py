"""`askq status` on a batch larger than a page of ids: the first ids and a count, or every id with --ids."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig
from producer.submit import submit_file
from tests.helpers import askq

JOBS = 1_200
"""More than two pages of job_id_pages (500 ids each), so --ids crosses page boundaries."""
ALL_IDS = [f"big:{line}" for line in range(1, JOBS + 1)]  # a .txt file's ids are its line numbers
WIDE = {"COLUMNS": "300"}  # the table's job ids row on one line


async def _big_batch(redis: Redis, config: AskqConfig, write: Any) -> None:
    questions = "".join(f"What is {n} plus {n}?\n" for n in range(JOBS))
    await submit_file(redis, write("big.txt", questions), config, batch="big")


async def test_status_json_has_the_first_ids_and_how_many_there_are(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """status --json lists the first 10 job ids in input order and job_ids_total, not every id."""
    await _big_batch(redis, config, write)

    done = askq("status", "big", "--json")

    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["job_ids"] == ALL_IDS[:10]
    assert status["job_ids_total"] == JOBS
    assert status["total"] == JOBS


async def test_status_ids_prints_every_id_in_input_order(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """status --ids prints all the batch's ids, one a line, in input order, across pages, and nothing else."""
    await _big_batch(redis, config, write)

    done = askq("status", "big", "--ids")

    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == [*ALL_IDS, ""]
    assert done.stderr == ""


async def test_status_ids_json_is_one_json_string_a_line(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """With --json, --ids prints JSON lines that decode to the exact ids, in input order."""
    await _big_batch(redis, config, write)

    done = askq("status", "big", "--ids", "--json")

    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == ALL_IDS


async def test_status_table_says_how_many_more_and_how_to_list_them(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """The table shows the first 10 ids, then how many more there are and the command that lists them."""
    await _big_batch(redis, config, write)

    done = askq("status", "big", env=WIDE)

    assert done.returncode == 0, done.stderr
    assert ", ".join(ALL_IDS[:10]) + " … (+1190 more; `askq status big --ids` lists all)" in done.stdout
    assert "big:11" not in done.stdout


async def test_status_ids_shows_a_bidi_control_and_json_keeps_it(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """An id holding a bidi override (submit lets it in) is shown as \\u202e in plain --ids, exact in JSON."""
    questions = write("odd.jsonl", '{"id": "abc\\u202edef", "question": "What is 2 plus 2?"}\n')
    await submit_file(redis, questions, config, batch="odd")

    plain = askq("status", "odd", "--ids")
    as_json = askq("status", "odd", "--ids", "--json")

    assert plain.stdout == "odd:abc\\u202edef\n"
    assert as_json.stdout == '"odd:abc\\u202edef"\n'
    assert json.loads(as_json.stdout) == "odd:abc\u202edef"


async def test_status_ids_of_an_unknown_batch_is_one_line(redis: Redis) -> None:
    """--ids on a batch that does not exist: one line naming it, exit 1, nothing on stdout."""
    done = askq("status", "nope", "--ids")

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "askq: unknown batch 'nope': this Redis holds no askq data at all (another REDIS_URL? or Redis lost "
        "its data: restarted without persistence?)\n"
    )
