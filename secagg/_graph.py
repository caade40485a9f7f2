"""Neighbour graphs: complete (SecAgg) or Harary on a random permutation (SecAgg+)."""

from __future__ import annotations

import numpy as np

__all__ = ["harary_graph", "complete_graph"]


def complete_graph(n: int) -> list[tuple[int, ...]]:
    """Every node is every other node's neighbour."""
    return [tuple(j for j in range(n) if j != i) for i in range(n)]


def harary_graph(n: int, k: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """H(k, n) on a random permutation: node ``perm[i]`` links to ``perm[i ± 1..k/2]``.

    ``k`` is rounded up to even; ``k >= n - 1`` gives the complete graph.
    """
    if k >= n - 1:
        return complete_graph(n)
    half = (k + 1) // 2
    perm = rng.permutation(n)
    pos = np.empty(n, dtype=np.int64)
    pos[perm] = np.arange(n)
    offsets = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)])
    nbrs = perm[(pos[:, None] + offsets[None, :]) % n]
    nbrs.sort(axis=1)
    return [tuple(int(v) for v in row) for row in nbrs]
