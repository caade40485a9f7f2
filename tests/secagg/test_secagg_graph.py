"""Harary and complete neighbour graphs: regular, symmetric, loop-free, k-connected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import ConfigurationError, complete_graph, harary_graph
from secagg._graph import NeighbourGraph


@st.composite
def sizes(draw, max_n: int = 120):
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(0, max(0, n - 2)).map(lambda v: v - v % 2))
    return n, k


def _check_graph(g: NeighbourGraph, n: int, k: int) -> np.ndarray:
    adj = g.adjacency()
    assert adj.shape == (n, k) and len(g) == n and g.degree == k
    nodes = np.arange(n)[:, None]
    assert not (adj == nodes).any(), "self loop"
    assert (np.diff(adj, axis=1) > 0).all(), "rows sorted, no repeated neighbour"
    assert ((adj >= 0) & (adj < n)).all()
    matrix = np.zeros((n, n), dtype=bool)
    matrix[np.repeat(np.arange(n), k), adj.ravel()] = True
    assert (matrix == matrix.T).all(), "symmetric"
    assert (matrix.sum(axis=0) == k).all() and (matrix.sum(axis=1) == k).all()
    return matrix


@settings(max_examples=80, deadline=None)
@given(size=sizes(), seed=st.integers(0, 2**32 - 1))
def test_harary_graph_is_k_regular_symmetric_loop_free(size, seed):
    n, k = size
    g = harary_graph(n, k, np.random.default_rng(seed))
    matrix = _check_graph(g, n, k)
    assert list(g) == [tuple(row) for row in g.adjacency().tolist()]
    for u in range(min(n, 6)):
        assert g[u] == tuple(np.flatnonzero(matrix[u]).tolist())
        for v in range(n):
            assert g.are_neighbours(u, v) == bool(matrix[u, v])


@settings(max_examples=40, deadline=None)
@given(size=sizes(max_n=60), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_harary_graph_survives_any_k_minus_1_removals(size, seed, data):
    # H(k, n) is k-connected: removing fewer than k nodes never disconnects it.
    n, k = size
    if k < 2:
        return
    g = harary_graph(n, k, np.random.default_rng(seed))
    removed = set(data.draw(st.lists(st.integers(0, n - 1), max_size=k - 1, unique=True)))
    alive = [v for v in range(n) if v not in removed]
    seen, stack = {alive[0]}, [alive[0]]
    while stack:
        for w in g[stack.pop()]:
            if w not in removed and w not in seen:
                seen.add(w)
                stack.append(w)
    assert len(seen) == len(alive)


def test_ring_structure_follows_the_permutation():
    g = harary_graph(11, 4, np.random.default_rng(7))
    order = g.order.tolist()
    for p, node in enumerate(order):
        expected = {order[(p + j) % 11] for j in (-2, -1, 1, 2)}
        assert set(g[node]) == expected


def test_permutation_dependent_and_reproducible():
    a = harary_graph(200, 10, np.random.default_rng(1)).adjacency()
    b = harary_graph(200, 10, np.random.default_rng(1)).adjacency()
    c = harary_graph(200, 10, np.random.default_rng(2)).adjacency()
    assert (a == b).all()
    assert not (a == c).all()


@pytest.mark.parametrize("n", [1, 2, 3, 7, 50])
def test_complete_graph(n):
    g = complete_graph(n)
    assert g.complete and g.degree == n - 1
    _check_graph(g, n, n - 1)
    assert g[0] == tuple(range(1, n))


@pytest.mark.parametrize(("n", "k"), [(7, 6), (7, 7), (7, 100), (6, 5), (2, 1)])
def test_large_or_full_degree_gives_the_complete_graph(n, k):
    g = harary_graph(n, k, np.random.default_rng(0))
    assert g.complete and g.degree == n - 1
    _check_graph(g, n, n - 1)


@pytest.mark.parametrize(("n", "k", "mentions"),
                         [(10, 3, "even"), (10, -2, "k"), (0, 2, "n"), (10, 2.0, "k")])
def test_bad_arguments(n, k, mentions):
    with pytest.raises(ConfigurationError, match=mentions):
        harary_graph(n, k, np.random.default_rng(0))


def test_bad_construction_and_lookups():
    with pytest.raises(ConfigurationError, match="permutation"):
        NeighbourGraph(np.array([0, 0, 1]), 2)
    with pytest.raises(ConfigurationError, match="even"):
        NeighbourGraph(np.arange(10), 3)
    g = harary_graph(10, 4, np.random.default_rng(0))
    with pytest.raises(IndexError):
        g[10]
    with pytest.raises(IndexError):
        g.are_neighbours(0, 10)
    assert g[-1] == g[9] and g[1:3] == [g[1], g[2]]
    assert not g.are_neighbours(3, 3)
    assert g.order.flags.writeable is False


def test_large_graph_rows_match_adjacency():
    g = harary_graph(100_000, 100, np.random.default_rng(3))
    adj = g.adjacency()
    assert adj.shape == (100_000, 100)
    for node in (0, 12_345, 99_999):
        assert g[node] == tuple(adj[node].tolist())
