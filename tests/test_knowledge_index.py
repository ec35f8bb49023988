"""The knowledge index: exact cosine search, and a version written to Redis and loaded back."""

from __future__ import annotations

import numpy as np
import pytest
from redis.asyncio import Redis

from common import keys
from common.errors import KnowledgeError
from common.knowledge import FileEntry, KnowledgeConfig, KnowledgeMeta, StoredChunk
from common.knowledge_store import built_bases, read_chunks, read_file_table, read_meta
from worker.knowledge import index_store
from worker.knowledge.index import KnowledgeIndex, normalised
from worker.knowledge.index_store import load_index, write_version


def _meta(name: str = "menu", dimensions: int = 8) -> KnowledgeMeta:
    return KnowledgeMeta.draft(name, KnowledgeConfig(files="kb/*.md"), dimensions)


def _random_unit(rows: int, dimensions: int, seed: int = 1) -> np.ndarray:
    return normalised(np.random.default_rng(seed).standard_normal((rows, dimensions)).astype(np.float32))


def test_search_returns_the_k_closest_rows_best_first() -> None:
    """Each query's hits are the k highest dot products, sorted, with their scores."""
    matrix = _random_unit(500, 16)
    queries = _random_unit(3, 16, seed=2)
    hits = KnowledgeIndex(_meta(dimensions=16), matrix).search(queries, 5)
    for query, found in zip(queries, hits, strict=True):
        expected = np.argsort(-(matrix @ query))[:5]
        assert [hit.row for hit in found] == list(expected)
        assert [hit.score for hit in found] == pytest.approx(sorted((matrix @ query)[expected], reverse=True))


def test_search_with_k_beyond_the_rows_returns_them_all() -> None:
    """A base smaller than top_k gives every chunk, best first."""
    matrix = _random_unit(3, 4)
    found = KnowledgeIndex(_meta(dimensions=4), matrix).search(matrix[2:3], 10)[0]
    assert found[0].row == 2
    assert sorted(hit.row for hit in found) == [0, 1, 2]


def test_search_refuses_queries_of_another_width() -> None:
    """A question embedded at another dimension than the index is an error, not a broadcast."""
    with pytest.raises(ValueError, match="8 columns"):
        KnowledgeIndex(_meta(), _random_unit(4, 8)).search(_random_unit(1, 4), 2)


def _brute_force(matrix: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = matrix.astype(np.float64) @ query.astype(np.float64)
    return [int(row) for row in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.parametrize("k", [1, 4, 9, 500])
def test_several_queries_over_many_blocks_find_what_each_alone_finds(
    monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    """A batch of queries, its product taken a block of rows at a time (the last one short), gives each
    query the same hits as a search of it alone and as a brute-force sort."""
    monkeypatch.setattr("worker.knowledge.index.BLOCK_BYTES", 16 * 4 * 7)  # 7 rows a block: 72 blocks
    matrix = _random_unit(500, 16)
    queries = _random_unit(5, 16, seed=2)
    index = KnowledgeIndex(_meta(dimensions=16), matrix)
    together = index.search(queries, k)
    for query, found in zip(queries, together, strict=True):
        assert [hit.row for hit in found] == _brute_force(matrix, query, k)
        alone = index.search(query[None, :], k)[0]
        assert [hit.row for hit in alone] == [hit.row for hit in found]
        # BLAS sums a matrix-vector product in another order than a block's: the last bit may differ.
        assert [hit.score for hit in alone] == pytest.approx([hit.score for hit in found], abs=1e-6)
    assert index.search(queries[:0], k) == []


def test_queries_of_another_float_type_are_searched_as_float32() -> None:
    """float64 questions (several and one) give the hits of their float32 copies, not an error."""
    matrix = _random_unit(50, 8)
    queries = _random_unit(3, 8, seed=2)
    index = KnowledgeIndex(_meta(), matrix)
    assert index.search(queries.astype(np.float64), 3) == index.search(queries, 3)
    assert index.search(queries[:1].astype(np.float64), 3) == index.search(queries[:1], 3)


@pytest.mark.parametrize("k", [3, 12])
def test_equal_scores_come_in_row_order(k: int) -> None:
    """Chunks that score the same (a file indexed twice) are listed lower row first, for any k."""
    matrix = _random_unit(40, 8)
    matrix[[5, 17, 30]] = matrix[2]
    found = KnowledgeIndex(_meta(), matrix).search(matrix[2:4], k)
    assert [hit.row for hit in found[0]][:4] == [2, 5, 17, 30][:k]
    assert [hit.row for hit in found[1]] == _brute_force(matrix, matrix[3], k)


def test_normalised_rows_have_unit_length_and_zero_stays_zero() -> None:
    """Rows are scaled to length 1; an all-zero row is left zero rather than divided by zero."""
    rows = normalised(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    assert rows.dtype == np.float32
    assert rows.tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]


async def test_a_written_version_loads_back_whole(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Matrix (over several segments), chunks and file table come back as written; the meta counts them."""
    monkeypatch.setattr("common.knowledge.SEGMENT_BYTES", 4 * 8 * 3)  # 3 rows a segment: 4 segments
    matrix = _random_unit(10, 8)
    chunks = [
        StoredChunk(text=f"chunk {i} 아메리카노", file=f"f{i % 2}.md", position=i // 2) for i in range(10)
    ]
    files = {"f0.md": FileEntry(sha256="a", first=0, rows=5), "f1.md": FileEntry(sha256="b", first=5, rows=5)}
    meta = await write_version(redis, _meta(), matrix, chunks, files)
    assert (meta.version, meta.chunks, meta.files, meta.segments) == (1, 10, 2, 4)
    assert meta.matrix_bytes == 10 * 8 * 4
    assert meta.chunk_bytes == sum(len(chunk.model_dump_json().encode()) for chunk in chunks)
    loaded = await load_index(redis, "menu")
    assert loaded.meta == await read_meta(redis, "menu")
    assert np.array_equal(loaded.matrix, matrix)
    assert await read_chunks(redis, meta, [9, 0]) == [chunks[9], chunks[0]]
    assert await read_file_table(redis, meta) == files
    assert [base.name for base in await built_bases(redis)] == ["menu"]


async def test_a_rebuild_switches_version_and_lets_the_old_one_expire(redis: Redis) -> None:
    """The new version is current at once; the replaced one lives on for a while, then goes."""
    chunk = [StoredChunk(text="x", file="a.md", position=0)]
    first = await write_version(redis, _meta(), _random_unit(1, 8), chunk, {})
    second = await write_version(redis, _meta(), _random_unit(1, 8, seed=3), chunk, {})
    assert second.version == first.version + 1
    assert (await read_meta(redis, "menu")).version == second.version  # type: ignore[union-attr]
    old_ttl = await redis.ttl(keys.knowledge_data("menu", first.version))
    assert 0 < old_ttl <= index_store.REPLACED_TTL_S
    assert await redis.ttl(keys.knowledge_data("menu", second.version)) == -1


async def test_loading_a_base_never_built_says_how_to_build_it(redis: Redis) -> None:
    """The error names the base and the command."""
    with pytest.raises(
        KnowledgeError, match=r"knowledge base 'menu' is not built: run `askq knowledge build menu`"
    ):
        await load_index(redis, "menu")


@pytest.mark.parametrize(
    ("built", "config", "refused"),
    [
        ({}, {}, None),
        ({"requested_dimensions": 8}, {"dimensions": 8}, None),
        ({}, {"dimensions": 8}, None),  # the model's own width, now asked for by name
        ({}, {"embedding_model": "text-embedding-3-large"}, "built with text-embedding-3-small at 8"),
        ({}, {"dimensions": 4}, "asks for text-embedding-3-small at 4 dimensions"),
        ({"requested_dimensions": 8}, {}, "asks for text-embedding-3-small at the model's own dimensions"),
    ],
)
def test_an_index_of_another_model_or_width_is_refused_with_the_reason(
    built: dict[str, int], config: dict[str, object], refused: str | None
) -> None:
    """The model and the dimensions the build asked for must be jobs.yaml's: a question embedded
    otherwise would not be comparable with the index."""
    meta = _meta().model_copy(update=built)
    reason = meta.mismatch(KnowledgeConfig.model_validate({"files": "kb/*.md", **config}))
    if refused is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused in reason
        assert "run `askq knowledge build menu` (or, if the base was rebuilt" in reason


def test_meta_round_trips_through_its_hash() -> None:
    """The hash a build writes reads back as the same meta; one written before requested_dimensions
    existed reads as none asked."""
    meta = _meta().model_copy(update={"requested_dimensions": 8})
    as_bytes = {key.encode(): value.encode() for key, value in meta.to_hash().items()}
    assert KnowledgeMeta.from_hash("menu", as_bytes) == meta
    del as_bytes[b"requested_dimensions"]
    assert KnowledgeMeta.from_hash("menu", as_bytes) == _meta()


async def test_a_version_is_not_made_current_once_its_build_lost_the_lock(redis: Redis) -> None:
    """A build whose lock another build holds now writes nothing current: the version before stays."""
    chunk = [StoredChunk(text="x", file="a.md", position=0)]
    await redis.set(keys.knowledge_build_lock("menu"), "first")
    first = await write_version(redis, _meta(), _random_unit(1, 8), chunk, {}, lock_token="first")
    await redis.set(keys.knowledge_build_lock("menu"), "second")  # the first build's lock lapsed; taken
    with pytest.raises(KnowledgeError, match="lost its lock while writing"):
        await write_version(redis, _meta(), _random_unit(1, 8, seed=3), chunk, {}, lock_token="first")
    assert (await read_meta(redis, "menu")).version == first.version  # type: ignore[union-attr]
    assert await redis.ttl(keys.knowledge_data("menu", first.version)) == -1  # still current, lasting
    assert await redis.ttl(keys.knowledge_data("menu", first.version + 1)) > 0  # the orphan expires
