"""askq submit --job of a knowledge type: refused before anything is enqueued when its base cannot answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from common import keys
from common.errors import KnowledgeError
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq
from tests.knowledge_helpers import build_base, menu_config, questions_file, write_files


async def test_submit_refuses_a_job_type_whose_base_is_not_built(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """Submitting to a knowledge job type with no built base is refused before anything is enqueued."""
    config = menu_config(tmp_path)
    with pytest.raises(
        KnowledgeError, match=r"^knowledge base 'menu' is not built: run `askq knowledge build menu`$"
    ):
        await submit_file(redis, questions_file(tmp_path / "q.jsonl"), config, batch="r", job_type="menu")
    assert not await redis.exists(keys.batch_record("r"), keys.QUEUE)


async def test_submit_refuses_a_base_built_for_another_dimension(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """A base built at 128 dimensions where jobs.yaml asks for 256 is refused at submit, with the reason."""
    config = menu_config(tmp_path)
    await build_base(redis, config, dimensions=128)
    with pytest.raises(KnowledgeError, match="built with text-embedding-3-small at 128 dimensions"):
        await submit_file(redis, questions_file(tmp_path / "q.jsonl"), config, batch="r", job_type="menu")
    assert not await redis.exists(keys.batch_record("r"), keys.QUEUE)


async def test_the_submit_command_refuses_an_unbuilt_base_in_one_line(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """askq submit --job menu, the base not built: exit 1, the advice in one line, nothing enqueued."""
    write_files(tmp_path)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        'knowledge:\n  menu:\n    files: "kb/menu/**/*.md"\n'
        "job_types:\n  menu:\n    system_prompt: 'Use the menu: {knowledge}'\n    knowledge: menu\n"
        "default_job_type: menu\n",
        encoding="utf-8",
    )
    path = questions_file(tmp_path / "q.jsonl")
    refused = askq("submit", str(path), "--job", "menu", "--batch", "r", env={"ASKQ_CONFIG": str(jobs)})
    assert refused.returncode == 1
    assert refused.stderr == "askq: knowledge base 'menu' is not built: run `askq knowledge build menu`\n"
    assert not await redis.exists(keys.batch_record("r"), keys.QUEUE)
