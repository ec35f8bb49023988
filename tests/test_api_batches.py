"""The batch routes of `askq serve` over real HTTP: each answers what `askq ... --json` prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from tests.api_server import ApiServer, api_server
from tests.conftest import Simulator
from tests.helpers import askq, run_burst_worker

QUESTIONS = (
    '{"id": "paris", "question": "What is the capital of France?"}\n'
    '{"id": "bad", "question": "No [sim:400]"}\n'
)


@pytest.fixture(scope="module")
def served(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url) as server:
        yield server


def upload(server: ApiServer, name: str, content: str | bytes, **fields: str) -> httpx2.Response:
    return httpx2.post(f"{server.url}/api/batches", files={"file": (name, content)}, data=fields)


def raw(server: ApiServer, content: str | bytes, **params: str) -> httpx2.Response:
    return httpx2.post(f"{server.url}/api/batches", content=content, params=params)


def get(server: ApiServer, path: str, **params: str) -> httpx2.Response:
    return httpx2.get(f"{server.url}/api/batches{path}", params=params)


def post(server: ApiServer, path: str, **params: str) -> httpx2.Response:
    return httpx2.post(f"{server.url}/api/batches{path}", params=params, timeout=30)


async def test_a_multipart_upload_answers_what_askq_submit_json_prints(
    served: ApiServer, redis: Redis, write: Any
) -> None:
    """The same file by the API and by `askq submit --json`: the same document, but for the batch."""
    response = upload(served, "q.jsonl", QUESTIONS, batch="api")
    assert response.status_code == 201, response.text
    cli = askq("submit", str(write("q.jsonl", QUESTIONS)), "--batch", "cli", "--json")
    assert response.json() == {**json.loads(cli.stdout), "batch": "api"}
    assert response.json()["enqueued"] == 2
    status = get(served, "/api").json()
    assert (status["source"], status["job_ids"]) == ("q.jsonl", ["api:paris", "api:bad"])


async def test_the_same_file_lands_in_the_same_default_batch_by_api_or_cli(
    served: ApiServer, redis: Redis, write: Any
) -> None:
    """No batch named: the file's name and content hash name it, as the CLI's do; resubmitted, skipped."""
    text = "id,question\none,Why is the sky blue?\n"
    first = upload(served, "capitals.csv", text).json()
    assert (first["batch"][:9], first["enqueued"]) == ("capitals-", 1)
    again = json.loads(askq("submit", str(write("capitals.csv", text)), "--json").stdout)
    assert (again["batch"], again["enqueued"], again["skipped_existing"]) == (first["batch"], 0, 1)


async def test_a_raw_body_takes_its_format_and_fields_from_the_query(served: ApiServer, redis: Redis) -> None:
    """A plain body with ?format=txt&batch=...&job=qa: enqueued; without a format it is refused."""
    response = raw(served, "What is 2+2?\nWhat is 3+3?\n", format="txt", batch="plain", job="qa")
    assert response.status_code == 201, response.text
    assert (response.json()["batch"], response.json()["enqueued"]) == ("plain", 2)
    refused = raw(served, "What is 2+2?\n")
    assert refused.status_code == 422
    assert refused.json()["error"]["param"] == "format"
    unknown = upload(served, "q.pdf", "What?\n")
    assert unknown.status_code == 422
    assert unknown.json()["error"]["message"].startswith("q.pdf: unknown file type '.pdf'")


async def test_a_bad_file_is_a_422_listing_every_bad_line_and_enqueues_nothing(
    served: ApiServer, redis: Redis
) -> None:
    """Lines 2 and 4 broken: 422 naming both, as the CLI does; the batch does not exist afterwards."""
    text = '{"id": "a", "question": "ok?"}\n{"id": \n{"id": "b", "question": "ok?"}\n{"id": "c"}\n'
    response = upload(served, "bad.jsonl", text, batch="broken")
    assert response.status_code == 422
    error = response.json()["error"]
    assert [line.split(": ")[:2] for line in error["problems"]] == [
        ["bad.jsonl", "line 2"],
        ["bad.jsonl", "line 4"],
    ]
    assert all(line in error["message"] for line in error["problems"])
    assert get(served, "/broken").status_code == 404
    assert not await redis.exists(keys.QUEUE)
    skipping = upload(served, "bad.jsonl", text, batch="broken", skip_invalid="true").json()
    assert (skipping["enqueued"], skipping["invalid_lines"], len(skipping["problems"])) == (2, 2, 2)


async def test_an_unknown_job_type_is_named(served: ApiServer, redis: Redis) -> None:
    """?job=nope: 422 naming the parameter and the types jobs.yaml defines; nothing enqueued."""
    response = raw(served, "Why?\n", format="txt", job="nope")
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "job"
    assert "unknown job type 'nope'" in response.json()["error"]["message"]
    assert not await redis.exists(keys.QUEUE)


async def test_a_knowledge_type_whose_base_is_not_built_is_refused(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    """The CLI's refusal, as a 409: the base is not built, nothing is enqueued."""
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        'knowledge:\n  menu:\n    files: "kb/menu/**/*.md"\n'
        "job_types:\n  menu:\n    system_prompt: 'Use the menu: {knowledge}'\n    knowledge: menu\n"
        "default_job_type: menu\n",
        encoding="utf-8",
    )
    with api_server(redis_url, env={"ASKQ_CONFIG": str(jobs)}) as server:
        response = upload(server, "q.txt", "What is on the menu?\n", job="menu", batch="menu")
    assert response.status_code == 409
    assert (
        response.json()["error"]["message"]
        == "knowledge base 'menu' is not built: run `askq knowledge build menu`"
    )
    assert not await redis.exists(keys.batch_record("menu"), keys.QUEUE)


@pytest.mark.parametrize("multipart", [False, True])
async def test_an_upload_over_the_limit_without_a_length_is_413_and_leaves_no_file(
    redis_url: str, redis: Redis, tmp_path: Path, multipart: bool
) -> None:
    """A chunked body past ASKQ_API_UPLOAD_LIMIT_BYTES: 413, nothing enqueued, no spooled file left."""
    limit = 4096
    lines = [f"Question number {n}?\n".encode() for n in range(1000)]

    def chunks() -> Iterator[bytes]:  # a generator: sent chunked, no Content-Length
        yield from lines

    env = {"ASKQ_API_UPLOAD_LIMIT_BYTES": str(limit), "TMPDIR": str(tmp_path)}
    with api_server(redis_url, env=env) as server:
        url = f"{server.url}/api/batches"
        if multipart:
            boundary = "askq-test-boundary"
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.txt"\r\n\r\n'

            def body() -> Iterator[bytes]:
                yield head.encode()
                yield from chunks()
                yield f"\r\n--{boundary}--\r\n".encode()

            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            response = httpx2.post(url, content=body(), headers=headers)
        else:
            response = httpx2.post(url, content=chunks(), params={"format": "txt"})
        assert "content-length" not in {name.lower() for name in response.request.headers}
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert not await redis.exists(keys.QUEUE)
        small = httpx2.post(url, content=b"Why?\n", params={"format": "txt"})
        assert small.status_code == 201  # the same server still takes a body under the limit
    assert list(tmp_path.iterdir()) == []  # every spooled upload removed, refused or taken


async def test_the_status_is_what_askq_status_json_prints(
    served: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig
) -> None:
    """After a worker ran the batch: GET /api/batches/b equals `askq status b --json`."""
    assert upload(served, "q.jsonl", QUESTIONS, batch="done").status_code == 201
    await run_burst_worker(config, redis_url)
    response = get(served, "/done")
    assert response.json() == json.loads(askq("status", "done", "--json").stdout)
    assert response.json()["counts"]["succeeded"] == 1


ODD = 'café 東京 🙂 — del\x7f c1\x9b bidi\u202e line\u2028 tab\t quote" slash/ back\\'
"""Text a line must carry exactly: non-ASCII, controls it escapes (DEL, C1, bidi, separators), JSON's own."""
ECHOED = "".join(
    json.dumps({"id": item, "question": f"[sim:{directive}]{ODD}"}) + "\n"
    for item, directive in (("echo", "echo"), ("echo-error", "echo-error"))
)


@pytest.mark.parametrize("fmt", ["jsonl", "openai-batch"])
async def test_results_stream_byte_for_byte_what_askq_results_writes(
    served: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, fmt: str
) -> None:
    """Answered and failed lines (odd text in answers and errors), a cancelled batch, and a batch of
    several pages still queued: the same bytes as the CLI."""
    assert upload(served, "q.jsonl", QUESTIONS + ECHOED, batch="answered").status_code == 201
    await run_burst_worker(config, redis_url)
    many = "".join(f"Question {n}?\n" for n in range(1234))  # PAGE_ITEMS is 500: three pages
    assert raw(served, many, format="txt", batch="queued").status_code == 201
    assert raw(served, "Left?\nAlone?\n", format="txt", batch="cancelled").status_code == 201
    assert post(served, "/cancelled/cancel").status_code == 200
    bodies = {}
    for batch in ("answered", "queued", "cancelled"):
        with httpx2.stream(
            "GET", f"{served.url}/api/batches/{batch}/results", params={"format": fmt}
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/x-ndjson"
            bodies[batch] = response.read()
        assert bodies[batch] == askq("results", batch, "--format", fmt).stdout.encode()
    assert len(bodies["queued"].splitlines()) == 1234
    assert bodies["cancelled"].count(b'"cancelled"') == 2
    answered = bodies["answered"].decode()
    assert not any(char in answered for char in "\x7f\x9b\u202e\u2028")  # each one escaped
    rows = {row.get("custom_id", row["id"]): row for row in map(json.loads, answered.splitlines())}
    if fmt == "jsonl":
        assert rows["echo"]["answer"] == ODD
        assert ODD in rows["echo-error"]["error"]
    else:
        assert rows["echo"]["response"]["body"]["choices"][0]["message"]["content"] == ODD


async def test_batches_are_listed_newest_first_a_page_at_a_time(served: ApiServer, redis: Redis) -> None:
    """?limit=2 then ?after=its last: every batch once, newest first, as `askq batches --json` shows them."""
    for name in ("first", "second", "third"):
        assert raw(served, f"{name}?\n", format="txt", batch=name).status_code == 201
    page = get(served, "", limit="2").json()
    assert ([entry["batch"] for entry in page["data"]], page["has_more"]) == (["third", "second"], True)
    assert (page["first_id"], page["last_id"]) == ("third", "second")
    rest = get(served, "", after=page["last_id"]).json()
    assert ([entry["batch"] for entry in rest["data"]], rest["has_more"]) == (["first"], False)
    assert page["data"] + rest["data"] == json.loads(askq("batches", "--json").stdout)


async def test_retry_cancel_and_delete(
    served: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig
) -> None:
    """A failed job retried; queued ones cancelled, retried with ?cancelled=true; the batch deleted, gone."""
    assert upload(served, "q.jsonl", QUESTIONS, batch="b").status_code == 201
    await run_burst_worker(config, redis_url)
    retried = post(served, "/b/retry").json()
    assert (retried["batch"], retried["requeued"], retried["counts"]["queued"]) == ("b", 1, 1)
    cancelled = post(served, "/b/cancel").json()
    assert cancelled == {"batch": "b", "queued_cancelled": 1, "running_aborting": 0}
    assert post(served, "/b/retry").json()["requeued"] == 0
    assert post(served, "/b/retry", cancelled="true").json()["requeued"] == 1
    deleted = httpx2.delete(f"{served.url}/api/batches/b", timeout=30)
    assert deleted.json() == {"batch": "b", "deleted_jobs": 2, "still_running": 0}
    assert get(served, "/b").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nobatch"),
        ("GET", "/nobatch/results"),
        ("POST", "/nobatch/retry"),
        ("POST", "/nobatch/cancel"),
        ("DELETE", "/nobatch"),
        ("GET", "?after=nobatch"),
    ],
)
async def test_an_unknown_batch_is_a_json_404_naming_it(
    served: ApiServer, redis: Redis, method: str, path: str
) -> None:
    """Every batch route: 404 in the API's error shape, saying which batch."""
    response = httpx2.request(method, f"{served.url}/api/batches{path}")
    assert response.status_code == 404
    assert "unknown batch 'nobatch'" in response.json()["error"]["message"]
    assert response.json()["error"]["type"] == "not_found_error"


def test_a_bad_upload_limit_is_one_line(redis_url: str) -> None:
    """ASKQ_API_UPLOAD_LIMIT_BYTES not a positive number: the server does not start, and says why."""
    env = {"REDIS_URL": redis_url, "ASKQ_API_UPLOAD_LIMIT_BYTES": "10MB"}
    shown = askq("serve", "--port", "0", env=env)
    assert (shown.returncode, shown.stderr) == (
        1,
        "askq: ASKQ_API_UPLOAD_LIMIT_BYTES='10MB': expected a positive whole number of bytes\n",
    )


@pytest.mark.parametrize(
    ("files", "param", "message"),
    [
        ({"batch": (None, "b")}, "file", "no question file: send it as the multipart field 'file'"),
        ({"file": ("q.txt", "Why?\n"), "nope": (None, "1")}, "nope", "unknown form field 'nope'"),
        ([("file", ("a.txt", "Why?\n")), ("file", ("b.txt", "How?\n"))], "file", "one question file"),
        ({"file": ("q.txt", "Why?\n"), "skip_invalid": (None, "maybe")}, "skip_invalid", "skip_invalid"),
    ],
)
async def test_a_multipart_body_askq_cannot_take_is_named(
    served: ApiServer, redis: Redis, files: Any, param: str, message: str
) -> None:
    """No file part, an unknown field, two files, a flag not true or false: 422 naming it; none enqueued."""
    response = httpx2.post(f"{served.url}/api/batches", files=files)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["message"].startswith(message)
    assert not await redis.exists(keys.QUEUE)
