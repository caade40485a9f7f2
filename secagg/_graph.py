"""Neighbour graphs for SecAgg+: a Harary graph H(k, n) on a random permutation, or the
complete graph of the original SecAgg.

As in fcp (``fcp/secagg/server/secret_sharing_harary_graph.cc``), the n clients are placed
on a ring in the order of a random permutation, and each is joined to the k/2 clients on
either side of it: the client at ring position p has the neighbours at positions
``p - k/2, ..., p - 1, p + 1, ..., p + k/2 (mod n)``. k must be even (fcp's graph has
degree k + 1 with a self-edge and refuses an even one); ``k >= n - 1`` joins everyone, which
is the complete graph. Node ids are ``0..n-1``; neighbours never include the node itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from secagg._errors import ConfigurationError

__all__ = ["NeighbourGraph", "harary_graph", "complete_graph"]


class NeighbourGraph(Sequence[tuple[int, ...]]):
    """An undirected k-regular neighbour graph on clients ``0..n-1``.

    Behaves as a read-only sequence: ``graph[i]`` is the sorted tuple of client i's
    neighbours and ``len(graph)`` is n. ``adjacency()`` gives all rows at once as an
    (n, k) array. Build one with :func:`harary_graph` or :func:`complete_graph`.
    """

    __slots__ = ("_degree", "_order", "_position")

    def __init__(self, order: NDArray[np.integer], degree: int) -> None:
        n = int(order.size)
        if not 1 <= n < 2**31:
            raise ConfigurationError(f"n must be in [1, 2**31), got {n}")
        if degree < 0 or (degree < n - 1 and degree % 2):
            raise ConfigurationError(
                f"degree must be even (or >= n - 1 for the complete graph), got {degree}"
            )
        degree = min(degree, n - 1)
        ring: NDArray[np.int32] = np.array(order, dtype=np.int32)
        if ring.ndim != 1 or not np.array_equal(np.sort(ring), np.arange(n)):
            raise ConfigurationError("order must be a permutation of 0..n-1")
        position: NDArray[np.int32] = np.empty(n, dtype=np.int32)
        position[ring] = np.arange(n, dtype=np.int32)
        ring.flags.writeable = False
        position.flags.writeable = False
        self._order = ring
        self._position = position
        self._degree = degree

    @property
    def clients(self) -> int:
        """n, the number of nodes."""
        return int(self._order.size)

    @property
    def degree(self) -> int:
        """k, the number of neighbours of every node."""
        return self._degree

    @property
    def complete(self) -> bool:
        """True when every node is every other node's neighbour."""
        return self._degree == self.clients - 1

    @property
    def order(self) -> NDArray[np.int32]:
        """The ring: ``order[p]`` is the node at position p (read-only)."""
        return self._order

    def __len__(self) -> int:
        return self.clients

    @overload
    def __getitem__(self, index: int) -> tuple[int, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[int, ...]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, ...] | Sequence[tuple[int, ...]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.clients))]
        n = self.clients
        node = int(index)
        if node < 0:
            node += n
        if not 0 <= node < n:
            raise IndexError(f"node must be in [0, {n}), got {index}")
        return tuple(self._neighbours_of(np.array([node], dtype=np.int64))[0].tolist())

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        for row in self.adjacency():
            yield tuple(row.tolist())

    def __repr__(self) -> str:
        kind = "complete" if self.complete else "harary"
        return f"NeighbourGraph({kind}, clients={self.clients}, degree={self.degree})"

    def _neighbours_of(self, nodes: NDArray[np.int64]) -> NDArray[np.int32]:
        n, half = self.clients, self._degree // 2
        if self.complete:
            others = np.arange(n - 1, dtype=np.int32)[None, :]
            return others + (others >= nodes[:, None]).astype(np.int32)
        offsets = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)])
        ring = (self._position[nodes].astype(np.int64)[:, None] + offsets[None, :]) % n
        return np.sort(self._order[ring], axis=1)

    def adjacency(self) -> NDArray[np.int32]:
        """The (n, k) int32 array whose row i is node i's sorted neighbours (a fresh copy).

        Vectorised: one sliding window over the ring, a row sort, one gather."""
        if self.complete:
            return self._neighbours_of(np.arange(self.clients, dtype=np.int64))
        half, order = self._degree // 2, self._order
        ring = np.concatenate([order[-half:], order, order[:half]]) if half else order
        windows = sliding_window_view(ring, 2 * half + 1)  # row p: positions p-half..p+half
        rows = np.delete(windows, half, axis=1)  # a copy without the node itself
        rows.sort(axis=1)
        return rows[self._position]

    def are_neighbours(self, u: int, v: int) -> bool:
        """Whether u and v share an edge (False for u == v), in O(1)."""
        n = self.clients
        if not (0 <= u < n and 0 <= v < n):
            raise IndexError(f"nodes must be in [0, {n}), got {u} and {v}")
        if u == v:
            return False
        gap = abs(int(self._position[u]) - int(self._position[v]))
        return min(gap, n - gap) <= self._degree // 2 or self.complete


def _check_clients(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigurationError(f"n must be a positive integer, got {n!r}")
    return int(n)


def harary_graph(n: int, k: int, rng: np.random.Generator) -> NeighbourGraph:
    """The Harary graph H(k, n) on a permutation of ``0..n-1`` drawn from ``rng``.

    Use a generator seeded from fresh OS entropy: the security analysis assumes the
    corrupt clients cannot predict the graph (fcp shuffles with a BoringSSL generator).

    Raises:
        ConfigurationError: n < 1, k < 0, or k odd and below n - 1 (fcp builds only even
            degrees; ``k >= n - 1`` gives the complete graph).
    """
    n = _check_clients(n)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigurationError(f"k must be a non-negative integer, got {k!r}")
    if k < n - 1 and k % 2:
        raise ConfigurationError(
            f"k must be even (or >= n - 1 for the complete graph), got k = {k} for n = {n}"
        )
    return NeighbourGraph(rng.permutation(n).astype(np.int64), int(k))


def complete_graph(n: int) -> NeighbourGraph:
    """The complete graph on ``0..n-1`` (original SecAgg: every client shares with all).

    Raises:
        ConfigurationError: n < 1.
    """
    n = _check_clients(n)
    return NeighbourGraph(np.arange(n, dtype=np.int64), n - 1)
