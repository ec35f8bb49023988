"""A knowledge base's matrix in a worker's memory, and exact cosine search over it.

The rows are L2-normalised when written, so a cosine similarity is a dot product: the scores of
every chunk for a set of questions are one matrix product (for several questions, taken a block of
rows at a time), and the top ``k`` of each row are found by ``k`` passes of ``argmax`` or, for a
larger ``k``, by ``argpartition`` (linear) before only those ``k`` are sorted. Exact search is fast
enough here: 100,000 chunks of 512 dimensions is a 200 MB matrix, searched for one question in
about 7 ms and for 32 at once in about 40 ms on one core (``python -m bench --sections knowledge``);
an approximate index would add a dependency and a recall to tune for no need yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.knowledge import KnowledgeMeta

Matrix = npt.NDArray[np.float32]

BLOCK_BYTES = 1 << 20
"""Rows of the matrix multiplied at a time by several queries: a block that stays in the core's L2
cache while BLAS packs it is a fifth faster on one core than one product of the whole matrix."""
ARGMAX_MAX_K = 8
"""Up to this ``k``, the top rows are found by ``k`` passes of ``argmax``; above, by ``argpartition``."""


@dataclass(frozen=True)
class Hit:
    row: int
    score: float


@dataclass(frozen=True)
class KnowledgeIndex:
    meta: KnowledgeMeta
    matrix: Matrix
    """(chunks, dimensions), float32, each row of unit length."""

    def search(self, queries: Matrix, k: int) -> list[list[Hit]]:
        """The ``k`` rows closest to each query (unit rows of ``queries``), best first; equal scores
        lower row first."""
        if queries.ndim != 2 or queries.shape[1] != self.matrix.shape[1]:
            raise ValueError(
                f"queries of shape {queries.shape}; the index has {self.matrix.shape[1]} columns"
            )
        # float64 questions would make the product upcast the whole matrix: a copy twice its size.
        queries = queries.astype(np.float32, copy=False)
        k = min(k, self.matrix.shape[0])
        if k == 0 or queries.shape[0] == 0:
            return [[] for _ in range(queries.shape[0])]
        rows, best = _top(self._scores(queries), k)
        return [
            [Hit(int(row), float(score)) for row, score in zip(row_ids, row_scores, strict=True)]
            for row_ids, row_scores in zip(rows, best, strict=True)
        ]

    def _scores(self, queries: Matrix) -> Matrix:
        """(queries, chunks): every chunk's cosine similarity to each query."""
        if queries.shape[0] == 1:
            # One question is a matrix-vector product, bound by reading the matrix: no blocks.
            single: Matrix = (self.matrix @ queries[0])[None, :]
            return single
        scores = np.empty((queries.shape[0], self.matrix.shape[0]), dtype=np.float32)
        step = max(1, BLOCK_BYTES // (self.matrix.shape[1] * self.matrix.itemsize))
        for first in range(0, self.matrix.shape[0], step):
            block = self.matrix[first : first + step]
            np.matmul(queries, block.T, out=scores[:, first : first + step])
        return scores


def _top(scores: Matrix, k: int) -> tuple[npt.NDArray[np.intp], Matrix]:
    """Each row's ``k`` highest columns and their scores, best first, equal scores lower column first.
    ``scores`` is spent (its picked entries are overwritten)."""
    if k <= ARGMAX_MAX_K:
        # argmax is one vectorised pass over the scores, argpartition several times slower.
        picked = np.empty((scores.shape[0], k), dtype=np.intp)
        values = np.empty((scores.shape[0], k), dtype=np.float32)
        every = np.arange(scores.shape[0])
        for rank in range(k):
            picked[:, rank] = scores.argmax(axis=1)
            values[:, rank] = scores[every, picked[:, rank]]
            scores[every, picked[:, rank]] = -np.inf
        return picked, values
    columns = scores.shape[1]
    top = np.argpartition(scores, columns - k, axis=1)[:, columns - k :]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


def normalised(vectors: Matrix) -> Matrix:
    """Each row scaled to unit length (a zero row stays zero: it matches nothing)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    scaled: Matrix = (vectors / norms).astype(np.float32, copy=False)
    return scaled
