"""A knowledge base's matrix in a worker's memory, and exact cosine search over it.

The rows are L2-normalised when written, so a cosine similarity is a dot product: the scores of
every chunk for a set of questions are one matrix product, and the top ``k`` of each row are found
by ``argpartition`` (linear) before only those ``k`` are sorted. Exact search is fast enough here:
100,000 chunks of 512 dimensions is a 200 MB matrix and one product of a few ms (see the
benchmark); an approximate index would add a dependency and a recall to tune for no need yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.knowledge import KnowledgeMeta

Matrix = npt.NDArray[np.float32]


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
        """The ``k`` rows closest to each query (unit rows of ``queries``), best first."""
        if queries.ndim != 2 or queries.shape[1] != self.matrix.shape[1]:
            raise ValueError(
                f"queries of shape {queries.shape}; the index has {self.matrix.shape[1]} columns"
            )
        k = min(k, self.matrix.shape[0])
        if k == 0:
            return [[] for _ in range(queries.shape[0])]
        scores = queries @ self.matrix.T
        if k < scores.shape[1]:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(scores.shape[1]), (scores.shape[0], scores.shape[1]))
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        rows = np.take_along_axis(top, order, axis=1)
        best = np.take_along_axis(top_scores, order, axis=1)
        return [
            [Hit(int(row), float(score)) for row, score in zip(row_ids, row_scores, strict=True)]
            for row_ids, row_scores in zip(rows, best, strict=True)
        ]


def normalised(vectors: Matrix) -> Matrix:
    """Each row scaled to unit length (a zero row stays zero: it matches nothing)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    scaled: Matrix = (vectors / norms).astype(np.float32, copy=False)
    return scaled
