"""Building a knowledge base against the simulator: what is embedded, what a rebuild re-embeds, faults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from common.config import AskqConfig, parse_config
from common.errors import FatalProviderError, KnowledgeError, NotFoundError
from common.knowledge_store import read_chunks, read_file_table, read_meta
from tests.conftest import Simulator
from worker.knowledge.build import build_base
from worker.knowledge.build_lock import BuildLock
from worker.knowledge.chunking import chunk_text
from worker.knowledge.embed_many import REQUEST_INPUTS, request_batches
from worker.knowledge.files import Skipped, read_one
from worker.knowledge.index_store import load_index

FAST_RETRY = {"attempts": 4, "initial_wait_s": 0.01, "max_wait_s": 0.05, "jitter_s": 0.01}
MENU = {
    "coffee.md": "# Coffee\n\n"
    + "\n\n".join(f"Americano size {i} costs {2 + i},000 won." for i in range(12)),
    "tea.md": "# Tea\n\nGreen tea is 2,500 won.\n\nBlack tea is 2,800 won, hot or iced.",
    "smoothies/berry.md": "# 스무디\n\n딸기 스무디는 4,000원입니다. 여름에만 팝니다.",
}


def _config(tmp_path: Path, **base: Any) -> AskqConfig:
    knowledge = {"menu": {"files": "kb/**/*.md", "chunk_tokens": 30, "chunk_overlap_tokens": 0, **base}}
    return parse_config({"retry": FAST_RETRY, "knowledge": knowledge}, base_dir=tmp_path)


def _write_menu(tmp_path: Path, files: dict[str, str | bytes] | None = None) -> None:
    for name, content in (files or MENU).items():
        path = tmp_path / "kb" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _chunks_of(name: str, text: str) -> list[str]:
    return chunk_text(name, text, model="text-embedding-3-small", tokens=30, overlap=0)


def _inputs(sim: Simulator) -> int:
    inputs: int = sim.stats()["embedding_inputs"]
    return inputs


async def _rows_by_file(redis: Redis) -> dict[str, np.ndarray]:
    meta = await read_meta(redis, "menu")
    assert meta is not None
    matrix = (await load_index(redis, "menu")).matrix
    table = await read_file_table(redis, meta)
    return {path: matrix[entry.first : entry.first + entry.rows] for path, entry in table.items()}


async def test_a_build_embeds_every_chunk_with_its_file_and_position(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """Every chunk of every file is embedded once, in few requests, and stored with its text, file and
    position; the matrix's rows are unit vectors."""
    _write_menu(tmp_path)
    report = await build_base(redis, _config(tmp_path), "menu")
    expected = {f"kb/{name}": _chunks_of(name, text) for name, text in MENU.items()}
    total = sum(map(len, expected.values()))
    assert (report.files_read, report.files_embedded, report.files_unchanged) == (3, sorted(expected), 0)
    assert (report.chunks, report.chunks_embedded, report.requests) == (total, total, 1)
    assert (report.version, report.model, report.dimensions) == (1, "text-embedding-3-small", 1536)
    assert _inputs(sim) == total
    meta = await read_meta(redis, "menu")
    assert meta is not None
    assert (meta.chunks, meta.files) == (total, 3)
    stored = await read_chunks(redis, meta, range(total))
    by_file = {path: [c.text for c in stored if c and c.file == path] for path in expected}
    assert by_file == expected
    assert [c.position for c in stored if c and c.file == "kb/coffee.md"] == list(
        range(len(expected["kb/coffee.md"]))
    )
    matrix = (await load_index(redis, "menu")).matrix
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0)


async def test_a_rebuild_embeds_only_the_changed_file(redis: Redis, sim: Simulator, tmp_path: Path) -> None:
    """One file changed: only its chunks are sent; the others' rows are copied unchanged."""
    _write_menu(tmp_path)
    config = _config(tmp_path)
    await build_base(redis, config, "menu")
    before = await _rows_by_file(redis)
    inputs = _inputs(sim)
    changed = "# Tea\n\nGreen tea is 3,000 won now.\n\nBlack tea is gone."
    _write_menu(tmp_path, {"tea.md": changed})
    report = await build_base(redis, config, "menu")
    assert _inputs(sim) - inputs == len(_chunks_of("tea.md", changed)) == report.chunks_embedded
    assert (report.files_embedded, report.files_unchanged, report.version) == (["kb/tea.md"], 2, 2)
    after = await _rows_by_file(redis)
    for path in ("kb/coffee.md", "kb/smoothies/berry.md"):
        assert np.array_equal(after[path], before[path])
    assert not np.array_equal(after["kb/tea.md"][:1], before["kb/tea.md"][:1])


async def test_a_rebuild_with_nothing_changed_keeps_the_version(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """No file changed, none removed: nothing is sent or written, so no worker reloads the matrix."""
    _write_menu(tmp_path)
    config = _config(tmp_path)
    first = await build_base(redis, config, "menu")
    requests = sim.stats()["embedding_requests"]
    again = await build_base(redis, config, "menu")
    assert (again.up_to_date, again.version, again.chunks, again.requests) == (True, 1, first.chunks, 0)
    assert sim.stats()["embedding_requests"] == requests
    assert (await read_meta(redis, "menu")).version == 1  # type: ignore[union-attr]


async def test_a_removed_file_drops_out_and_a_new_one_is_embedded(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """A deleted file's chunks are gone from the new version; a new file's alone are embedded."""
    _write_menu(tmp_path)
    config = _config(tmp_path)
    await build_base(redis, config, "menu")
    (tmp_path / "kb" / "tea.md").unlink()
    _write_menu(tmp_path, {"juice.md": "Orange juice is 3,500 won."})
    inputs = _inputs(sim)
    report = await build_base(redis, config, "menu")
    assert (report.files_removed, report.files_embedded) == (["kb/tea.md"], ["kb/juice.md"])
    assert _inputs(sim) - inputs == 1
    meta = await read_meta(redis, "menu")
    assert meta is not None
    files = {chunk.file for chunk in await read_chunks(redis, meta, range(meta.chunks)) if chunk}
    assert files == {"kb/coffee.md", "kb/juice.md", "kb/smoothies/berry.md"}
    assert sorted(await read_file_table(redis, meta)) == sorted(files)


@pytest.mark.parametrize("change", [{"dimensions": 64}, {"chunk_tokens": 40}])
async def test_changed_dimensions_or_chunking_re_embed_everything(
    redis: Redis, sim: Simulator, tmp_path: Path, change: dict[str, int]
) -> None:
    """Rows of another width or other chunks cannot be reused: every file is embedded again."""
    _write_menu(tmp_path)
    first = await build_base(redis, _config(tmp_path), "menu")
    inputs = _inputs(sim)
    report = await build_base(redis, _config(tmp_path, **change), "menu")
    assert report.files_unchanged == 0
    assert report.chunks_embedded == report.chunks
    assert _inputs(sim) - inputs == report.chunks
    assert report.dimensions == change.get("dimensions", first.dimensions)
    assert (await load_index(redis, "menu")).matrix.shape == (report.chunks, report.dimensions)


async def test_a_file_not_in_utf8_is_listed_and_skipped(redis: Redis, sim: Simulator, tmp_path: Path) -> None:
    """A Latin-1 file is skipped with the reason; the others are built; a BOM is left out of the text."""
    _write_menu(
        tmp_path, {"a.md": "\ufeffAmericano 2,000 won.", "latin.md": "Caf\xe9 cr\xe8me".encode("latin-1")}
    )
    report = await build_base(redis, _config(tmp_path), "menu")
    assert [(s.path, s.reason) for s in report.skipped] == [
        ("kb/latin.md", "not UTF-8 (byte 0xe9 at offset 3)")
    ]
    meta = await read_meta(redis, "menu")
    assert meta is not None
    assert [chunk.text for chunk in await read_chunks(redis, meta, [0])] == ["Americano 2,000 won."]  # type: ignore[union-attr]
    assert report.files_read == 1


async def test_a_file_whose_name_is_not_utf8_is_listed_and_skipped(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """A name of bytes that are not UTF-8 cannot be stored or shown as text: skipped, shown escaped."""
    _write_menu(tmp_path, {"a.md": "Americano 2,000 won."})
    (tmp_path / "kb").joinpath(os.fsdecode(b"bad\xffname.md")).write_text(
        "Latte 3,000 won.", encoding="utf-8"
    )
    report = await build_base(redis, _config(tmp_path), "menu")
    assert [(s.path, s.reason) for s in report.skipped] == [
        ("kb/bad\\xffname.md", "its name is not UTF-8; rename it")
    ]
    assert (report.files_read, report.chunks) == (1, 1)


async def test_files_with_no_text_are_refused(redis: Redis, sim: Simulator, tmp_path: Path) -> None:
    """A base whose files are empty or skipped is refused, naming them, and nothing is embedded."""
    _write_menu(tmp_path, {"empty.md": " \n\n", "bad.md": b"\xff\xfe"})
    with pytest.raises(
        KnowledgeError, match=r"knowledge base 'menu' has no text to embed.*kb/bad.md.*kb/empty.md"
    ):
        await build_base(redis, _config(tmp_path), "menu")
    assert _inputs(sim) == 0
    assert await read_meta(redis, "menu") is None


async def test_a_provider_without_embeddings_names_its_url_and_keeps_the_version(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """A 404 from /embeddings is one clear error naming the base URL; the built version stays current."""
    _write_menu(tmp_path)
    config = _config(tmp_path)
    await build_base(redis, config, "menu")
    before = await read_meta(redis, "menu")
    _write_menu(tmp_path, {"tea.md": "Tea is free today."})
    sim.configure(embeddings=False)
    with pytest.raises(FatalProviderError) as refused:
        await build_base(redis, config, "menu")
    assert str(refused.value).startswith(f"the provider at {sim.base_url} has no /embeddings endpoint")
    assert sim.stats()["embedding_requests"] == 2  # no retry of a 404
    assert await read_meta(redis, "menu") == before
    assert (await load_index(redis, "menu")).meta == before
    sim.configure(embeddings=True)  # the failed build let go of its lock: the next one runs
    assert (await build_base(redis, config, "menu")).files_embedded == ["kb/tea.md"]


async def test_wrong_embeddings_responses_are_retried(redis: Redis, sim: Simulator, tmp_path: Path) -> None:
    """A response a vector short, then one a component short: each a failed attempt, and the build ends
    well on the third."""
    _write_menu(tmp_path)
    sim.configure(bad_embeddings=2)
    report = await build_base(redis, _config(tmp_path), "menu")
    assert report.requests == 3 == sim.stats()["embedding_requests"]
    assert sim.stats()["bad_embeddings_sent"] == 2
    assert (await load_index(redis, "menu")).matrix.shape == (report.chunks, 1536)


async def test_a_second_build_at_once_is_refused(redis: Redis, sim: Simulator, tmp_path: Path) -> None:
    """While a build holds the base's lock another is refused, naming the holder; after, it runs."""
    _write_menu(tmp_path)
    config = _config(tmp_path)
    async with BuildLock(redis, "menu"):
        with pytest.raises(
            KnowledgeError, match=r"knowledge base 'menu' is being built already \(by .+ pid \d+"
        ):
            await build_base(redis, config, "menu")
    assert _inputs(sim) == 0
    assert (await build_base(redis, config, "menu")).version == 1


async def test_an_unknown_base_names_the_known_ones(redis: Redis, tmp_path: Path) -> None:
    """A name jobs.yaml lacks is a NotFoundError listing the bases it has."""
    _write_menu(tmp_path)
    with pytest.raises(
        NotFoundError, match=r"unknown knowledge base 'drinks' \(jobs.yaml's knowledge bases: menu\)"
    ):
        await build_base(redis, _config(tmp_path), "drinks")


def test_a_file_gone_since_the_listing_is_skipped_with_the_reason(tmp_path: Path) -> None:
    """A file removed between the glob and its read is listed as unreadable, not an error."""
    assert read_one(tmp_path, "gone.md") == Skipped("gone.md", "cannot be read: No such file or directory")


def test_requests_are_bounded_by_inputs_and_tokens() -> None:
    """300 short chunks go in requests of 128, 128 and 44; long ones in fewer inputs a request."""
    assert [len(batch) for batch in request_batches(["a b c"] * 300)] == [REQUEST_INPUTS, REQUEST_INPUTS, 44]
    long = ["word " * 20_000] * 10  # 20,000 tokens each, as common.tokens estimates
    assert request_batches(long) == [range(0, 5), range(5, 10)]
