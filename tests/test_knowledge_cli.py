"""`askq knowledge build`, `list` and `search` as a user runs them: output, --json, and the refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from common.config import AskqConfig, load_config
from common.knowledge import KnowledgeConfig, KnowledgeMeta, StoredChunk
from producer.knowledge import knowledge_rows
from tests.conftest import Simulator
from tests.helpers import askq
from worker.knowledge.index import normalised
from worker.knowledge.index_store import write_version
from worker.knowledge.search import search_base

MENU = {
    "coffee.md": "# Coffee\n\nAmericano: 2,000 won regular, 3,000 won large, hot or iced.",
    "tea.md": "# Tea\n\nGreen tea is 2,500 won. Black tea is 2,800 won.",
    "smoothie.md": "# 스무디\n\n딸기 스무디는 4,000원입니다. 여름에만 팝니다.",
    "bakery.md": "# Bakery\n\nA butter croissant is 3,200 won. Bagels come with cream cheese.",
    "hours.txt": "The cafe opens at 7 in the morning and closes at 10 at night, every day.",
}
QUESTIONS = {
    "How much is a large americano?": "kb/coffee.md",
    "What does black tea cost?": "kb/tea.md",
    "딸기 스무디는 얼마예요?": "kb/smoothie.md",
    "Do bagels come with cream cheese?": "kb/bakery.md",
    "When does the cafe open in the morning?": "kb/hours.txt",
}
JOBS = 'knowledge:\n  menu:\n    files: "kb/*"\n{extra}'


def _setup(tmp_path: Path, extra: str = "", files: dict[str, str | bytes] | None = None) -> dict[str, str]:
    (tmp_path / "kb").mkdir(exist_ok=True)
    for name, content in (files or MENU).items():
        path = tmp_path / "kb" / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(JOBS.format(extra=extra), encoding="utf-8")
    return {"ASKQ_CONFIG": str(jobs), "NO_COLOR": "1", "COLUMNS": "160"}


@pytest.mark.usefixtures("redis")
def test_build_list_and_search_print_what_was_done(tmp_path: Path, sim: Simulator) -> None:
    """build reports its counts; list shows the base built; search shows the planted chunk first."""
    env = _setup(tmp_path)
    built = askq("knowledge", "build", "menu", env=env)
    assert built.returncode == 0, built.stderr
    assert built.stderr == ""
    head, files, chunks = built.stdout.splitlines()
    assert head == (
        "built knowledge base menu: version 1, 5 chunks from 5 files "
        "(text-embedding-3-small, 1536 dimensions)"
    )
    assert files == "files: 5 embedded (changed or new), 0 unchanged, 0 skipped, 0 removed"
    assert re.fullmatch(r"chunks: 5 chunks embedded in 1 request, \d+\.\d s", chunks)
    listed = askq("knowledge", "list", env=env).stdout
    row = r"│ menu\s+│ built\s+│\s+5 │\s+5 │ text-embedding-3-small │\s+1536 │\s+[\d,]+ │ \d{4}-"
    assert re.search(row, listed)
    found = askq("knowledge", "search", "menu", "How much is a large americano?", "-k", "2", env=env)
    title, first, _ = found.stdout.splitlines()
    assert title.startswith("2 chunks of knowledge base menu (version 1, text-embedding-3-small) closest")
    assert re.fullmatch(r" 1\. 0\.\d{3}  kb/coffee\.md #0  # Coffee Americano: 2,000 won regular, .*", first)


@pytest.mark.usefixtures("redis")
def test_json_output_of_each_command(tmp_path: Path, sim: Simulator) -> None:
    """--json gives one document each: the report, the bases, the hits; a rebuild says it is up to date."""
    env = _setup(tmp_path)
    report = json.loads(askq("knowledge", "build", "menu", "--json", env=env).stdout)
    assert (report["version"], report["chunks"], report["requests"]) == (1, 5, 1)
    assert report["up_to_date"] is False
    again = json.loads(askq("knowledge", "build", "menu", "--json", env=env).stdout)
    assert (again["version"], again["files_unchanged"], again["requests"]) == (1, 5, 0)
    assert again["up_to_date"] is True
    [row] = json.loads(askq("knowledge", "list", "--json", env=env).stdout)
    assert {key: row[key] for key in ("name", "status", "files", "chunks", "dimensions")} == {
        "name": "menu", "status": "built", "files": 5, "chunks": 5, "dimensions": 1536,
    }  # fmt: skip
    assert row["size_bytes"] > row["matrix_bytes"] == 5 * 1536 * 4
    searched = askq("knowledge", "search", "menu", "딸기 스무디는 얼마예요?", "--json", env=env)
    hits = json.loads(searched.stdout)["hits"]
    assert len(hits) == 4
    assert hits[0]["file"] == "kb/smoothie.md"
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)


@pytest.mark.usefixtures("redis")
def test_unknown_and_unbuilt_bases_are_one_line_each(tmp_path: Path, sim: Simulator) -> None:
    """An unknown name lists the known ones; a base not built says the command that builds it."""
    env = _setup(tmp_path)
    for command in (["build", "drinks"], ["search", "drinks", "tea?"]):
        result = askq("knowledge", *command, env=env)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == "askq: unknown knowledge base 'drinks' (jobs.yaml's knowledge bases: menu)\n"
    result = askq("knowledge", "search", "menu", "tea?", env=env)
    assert result.returncode == 1
    assert result.stderr == "askq: knowledge base 'menu' is not built: run `askq knowledge build menu`\n"
    assert "│ menu │ not built │" in askq("knowledge", "list", env=env).stdout
    result = askq("knowledge", "search", "menu", "tea?", "--json", env=env)
    assert json.loads(result.stderr)["error"]["type"] == "KnowledgeError"


@pytest.mark.usefixtures("redis")
def test_an_index_of_another_width_is_refused_until_rebuilt(tmp_path: Path, sim: Simulator) -> None:
    """After jobs.yaml asks for other dimensions, search refuses with the reason and list says rebuild."""
    env = _setup(tmp_path)
    assert askq("knowledge", "build", "menu", env=env).returncode == 0
    _setup(tmp_path, extra="    dimensions: 64\n")
    result = askq("knowledge", "search", "menu", "tea?", env=env)
    assert result.returncode == 1
    assert result.stderr == (
        "askq: knowledge base 'menu' was built with text-embedding-3-small at 1536 dimensions, but jobs.yaml "
        "asks for text-embedding-3-small at 64 dimensions: run `askq knowledge build menu` (or, if the "
        "base was rebuilt for a newer jobs.yaml, restart the workers still running the old one)\n"
    )
    assert "built with another model or dimension, rebuild" in askq("knowledge", "list", env=env).stdout
    assert json.loads(askq("knowledge", "build", "menu", "--json", env=env).stdout)["dimensions"] == 64
    assert askq("knowledge", "search", "menu", "tea?", env=env).returncode == 0


@pytest.mark.usefixtures("redis")
def test_a_provider_without_embeddings_is_one_line_naming_its_url(tmp_path: Path, sim: Simulator) -> None:
    """A 404 from /embeddings: exit 1 with the base URL and what to do, no traceback."""
    env = _setup(tmp_path)
    sim.configure(embeddings=False)
    result = askq("knowledge", "build", "menu", env=env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"askq: the provider at {sim.base_url} has no /embeddings endpoint (HTTP 404): knowledge bases need "
        "one (llama-server: start it with --embeddings)\n"
    )


@pytest.mark.usefixtures("redis")
def test_skipped_files_are_listed_and_another_bases_folder_does_not_matter(
    tmp_path: Path, sim: Simulator
) -> None:
    """A file not in UTF-8 is named with the reason; a second base whose folder is missing blocks only
    its own build."""
    files: dict[str, str | bytes] = {"a.md": "Americano 2,000 won.", "latin.md": b"caf\xe9"}
    env = _setup(tmp_path, extra='  other:\n    files: "missing/*.md"\n', files=files)
    built = askq("knowledge", "build", "menu", env=env)
    assert built.returncode == 0, built.stderr
    assert "skipped kb/latin.md: not UTF-8 (byte 0xe9 at offset 3)" in built.stdout.splitlines()
    other = askq("knowledge", "build", "other", env=env)
    assert other.returncode == 1
    assert other.stderr.startswith(f"askq: {env['ASKQ_CONFIG']}: knowledge.other.files: the folder 'missing'")


@pytest.mark.usefixtures("redis")
def test_a_search_preview_shows_controls_instead_of_obeying_them(tmp_path: Path, sim: Simulator) -> None:
    """A chunk holding an escape sequence is shown with a stand-in, on one line."""
    env = _setup(tmp_path, files={"evil.md": "Tea \x1b[31mred\x1b[0m\nand more tea."})
    askq("knowledge", "build", "menu", env=env)
    found = askq("knowledge", "search", "menu", "tea", env=env).stdout
    assert "\x1b" not in found
    assert found.splitlines()[1].endswith("kb/evil.md #0  Tea ␛[31mred␛[0m and more tea.")


async def test_search_finds_the_planted_file_for_each_question(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """Recall@4 of a small labelled set is 1.0 and each planted file comes first (simulator vectors)."""
    env = _setup(tmp_path)
    assert askq("knowledge", "build", "menu", env=env).returncode == 0
    config = load_config(Path(env["ASKQ_CONFIG"]))
    for question, planted in QUESTIONS.items():
        _, found = await search_base(redis, config, "menu", question, 4)
        assert found[0].chunk.file == planted, question


async def test_list_rows_say_each_bases_state(redis: Redis, tmp_path: Path) -> None:
    """Built, not built, built for another model, and built but gone from jobs.yaml, by name."""
    chunk = [StoredChunk(text="Tea.", file="kb/tea.md", position=0)]
    draft = KnowledgeMeta.draft("", KnowledgeConfig(files="kb/*"), 4)
    for name, model in (
        ("menu", "text-embedding-3-small"),
        ("old", "m"),
        ("drinks", "text-embedding-3-large"),
    ):
        meta = draft.model_copy(update={"name": name, "model": model})
        await write_version(redis, meta, normalised(np.ones((1, 4), dtype=np.float32)), chunk, {})
    bases = {
        name: KnowledgeConfig(files="kb/*.md", embedding_model="text-embedding-3-small")
        for name in ("menu", "drinks", "new")
    }
    rows = await knowledge_rows(redis, AskqConfig(knowledge=bases))
    assert [(row.name, row.status) for row in rows] == [
        ("drinks", "built with another model or dimension, rebuild"),
        ("menu", "built"),
        ("new", "not built"),
        ("old", "not in jobs.yaml"),
    ]
    assert rows[0].reason is not None
    assert "text-embedding-3-large at 4 dimensions" in rows[0].reason
    assert rows[1].size_bytes == 16 + len(chunk[0].model_dump_json())


def test_a_missing_folder_refuses_submit_but_not_the_other_commands(tmp_path: Path, sim: Simulator) -> None:
    """Submit's load checks every base's files, naming the key; cancel of a batch goes on regardless."""
    env = _setup(tmp_path, extra='  gone:\n    files: "nofolder/*.md"\n')
    questions = tmp_path / "q.txt"
    questions.write_text("What is Redis?\n", encoding="utf-8")
    submitted = askq("submit", str(questions), env=env)
    assert submitted.returncode == 1
    assert "knowledge.gone.files: the folder 'nofolder' does not exist" in submitted.stderr
    cancelled = askq("cancel", "somebatch", env=env)
    assert cancelled.returncode == 1
    assert "unknown batch 'somebatch'" in cancelled.stderr
    assert "nofolder" not in cancelled.stderr
