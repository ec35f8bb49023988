"""Schedule paths stay inside the root folder: refused at load, links out of it skipped at run time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from common import keys
from common.config import load_config, parse_config
from common.confine import confined_folder
from common.errors import ConfigError
from common.status import JobState
from producer.schedules import request_run
from tests.conftest import Simulator
from tests.helpers import askq, run_burst_schedule_worker


def _config(root: Path, **schedule: Any) -> Any:
    body = {"cron": "0 2 * * *", "prompt": "Summarize.", "source": {"kind": "answers"}, **schedule}
    return parse_config({"schedules": {"nightly": body}, "files_root": str(root)})


@pytest.mark.parametrize(
    ("schedule", "key", "why"),
    [
        ({"source": {"kind": "files", "glob": "/etc/passwd"}}, "source", "absolute paths are refused"),
        ({"source": {"kind": "files", "glob": "../../../etc/host*"}}, "source", "leaves the root"),
        ({"source": {"kind": "files", "glob": "docs/../../x"}}, "source", "leaves the root"),
        ({"output": "/tmp/summaries"}, "output", "absolute paths are refused"),
        ({"output": "../elsewhere"}, "output", "leaves the root"),
        ({"output": "~/summaries"}, "output", "absolute paths are refused"),
        ({"output": "C:\\summaries"}, "output", "absolute paths are refused"),
        # ** may match no folder, so this reaches past the root though its normal form does not.
        ({"source": {"kind": "files", "glob": "**/../outside/*"}}, "source", "leaves the root"),
    ],
)
def test_paths_leaving_the_root_are_refused_at_load(
    tmp_path: Path, schedule: dict[str, Any], key: str, why: str
) -> None:
    """An absolute path or a '..' past the root, in a glob or an output, stops the load naming the key."""
    with pytest.raises(ConfigError) as refused:
        _config(tmp_path, **schedule)
    message = str(refused.value)
    assert f"schedules.nightly.{key}" in message
    assert why in message


def test_relative_names_with_dots_and_colons_are_fine(tmp_path: Path) -> None:
    """Names that only look odd (a colon inside, dots in a name) stay allowed."""
    config = _config(tmp_path, output="notes:v2/..summaries", source={"kind": "files", "glob": "a..b/*.md"})
    assert config.schedules["nightly"].output == "notes:v2/..summaries"


def test_the_root_defaults_to_the_folder_of_jobs_yaml_and_is_settable(tmp_path: Path) -> None:
    """files_root is the folder of jobs.yaml, or a folder relative to it when set."""
    (tmp_path / "conf").mkdir()
    plain = tmp_path / "conf" / "jobs.yaml"
    plain.write_text("default_job_type: qa\n")
    assert load_config(plain).root == tmp_path / "conf"
    plain.write_text("files_root: ../data\n")
    assert load_config(plain).root == tmp_path / "data"


def test_the_cli_names_the_key_of_a_path_outside_the_root(tmp_path: Path) -> None:
    """askq with such a jobs.yaml exits 1 with one line per problem and no traceback."""
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        "schedules:\n  leak:\n    cron: '0 2 * * *'\n    prompt: p\n"
        "    source: {kind: files, glob: /etc/passwd}\n"
    )
    done = askq("schedule", "list", env={"ASKQ_CONFIG": str(jobs)})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "schedules.leak.source.files.glob" in done.stderr
    assert "'/etc/passwd' must be relative to the root folder" in done.stderr


async def _run(redis: Redis, redis_url: str, config: Any) -> dict[str, str]:
    run_id = await request_run(redis, config, "nightly")
    await run_burst_schedule_worker(config, redis_url)
    raw = await redis.hgetall(keys.job_record(run_id))
    return {field.decode(): value.decode() for field, value in raw.items()}


async def test_links_out_of_the_root_are_skipped_and_reported(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A file link and a folder link pointing outside the root are never read nor sent to the provider;
    the file link is reported, the folder link never walked; a link inside the root is read once."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "notes").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.md").write_text("TOP SECRET outside the root\n")
    (root / "notes" / "ok.md").write_text("an ordinary note\n")
    (root / "notes" / "leak.md").symlink_to(outside / "secret.md")
    (root / "notes" / "linked").symlink_to(outside, target_is_directory=True)
    (root / "notes" / "inner.md").symlink_to(root / "notes" / "ok.md")  # inside: read
    sim.configure(record_requests=True)
    config = _config(root, source={"kind": "files", "glob": "notes/**/*.md"})

    run = await _run(redis, redis_url, config)

    assert run["state"] == JobState.SUCCEEDED.value, run.get("error")
    sent = "".join(request["user"] for request in sim.requests())
    assert "an ordinary note" in sent
    assert "TOP SECRET" not in sent
    assert "1 outside the root, skipped" in run["answer"]
    assert sent.count("an ordinary note") == 1
    assert "File notes/ok.md" in sent  # paths are shown relative to the root


async def test_linked_folders_are_not_walked_by_double_star(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A link to a parent and a pair of self-links under ** neither repeat a file nor make the walk
    endless: each file is read once, under one name."""
    root = tmp_path / "root"
    (root / "docs" / "loop").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("the one note\n")
    (root / "docs" / "up").symlink_to("..", target_is_directory=True)
    (root / "docs" / "loop" / "x").symlink_to(".", target_is_directory=True)
    (root / "docs" / "loop" / "y").symlink_to(".", target_is_directory=True)
    (root / "docs" / "same.md").symlink_to("a.md")
    sim.configure(record_requests=True)
    config = _config(root, source={"kind": "files", "glob": "docs/**/*.md"})

    run = await _run(redis, redis_url, config)

    assert run["state"] == JobState.SUCCEEDED.value, run.get("error")
    [request] = sim.requests()
    assert request["user"].count("the one note") == 1
    assert "input: 1 files changed" in run["answer"]


async def test_a_summary_is_never_written_through_a_linked_folder(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """An output folder that is a link out of the root fails the run, naming the link; nothing lands."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "summaries").symlink_to(outside, target_is_directory=True)
    config = _config(root, output="summaries")

    run = await _run(redis, redis_url, config)

    assert run["state"] == JobState.FAILED.value
    assert "is a symbolic link" in run["error"]
    assert list(outside.iterdir()) == []


async def test_a_summary_file_that_is_a_link_is_left_alone(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A link planted at the day's file name is neither read nor replaced: the run writes another name."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "summaries" / "nightly").mkdir(parents=True)
    outside.mkdir()
    target = outside / "victim.txt"
    target.write_text("untouched\n")
    config = _config(root, output="summaries")
    first = await _run(redis, redis_url, config)
    written = Path(first["output"])
    written.unlink()
    written.symlink_to(target)

    second = await _run(redis, redis_url, config)

    assert second["state"] == JobState.SUCCEEDED.value, second.get("error")
    assert Path(second["output"]) != written
    assert target.read_text() == "untouched\n"
    assert written.is_symlink()


def test_two_runs_making_the_same_folder_at_once_both_go_on(tmp_path: Path) -> None:
    """Schedules sharing an output folder on a fresh root race to make it: neither fails."""
    for attempt in range(50):
        root = tmp_path / f"root{attempt}"
        root.mkdir()
        with ThreadPoolExecutor(2) as pool:
            made = list(pool.map(confined_folder, [root, root], [Path("summaries/x")] * 2))
        assert made == [root / "summaries" / "x"] * 2
