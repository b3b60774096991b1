"""core.graph: the one cycle checker (task dependencies on both sides of the wire, imports)."""

from collections import deque

from hypothesis import given, settings, strategies as st

from hyperqueue.core.graph import cycles, find_cycle


def kahn_leftover(graph):
    """The nodes a topological sort cannot place (the reactor's former check)."""
    indegree = {n: len(set(e) & graph.keys()) for n, e in graph.items()}
    consumers = {n: set() for n in graph}
    for n, edges in graph.items():
        for e in set(edges) & graph.keys():
            consumers[e].add(n)
    ready = deque(n for n, d in indegree.items() if d == 0)
    while ready:
        for c in consumers[ready.popleft()]:
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
    return {n for n, d in indegree.items() if d > 0}


graphs = st.integers(1, 12).flatmap(lambda n: st.fixed_dictionaries(
    {i: st.lists(st.integers(0, n + 1), max_size=4) for i in range(n)}))


@settings(max_examples=300, deadline=None)
@given(graphs)
def test_blocked_nodes_are_what_a_topological_sort_leaves_and_the_cycle_is_real(graph):
    first, blocked = cycles(graph)
    assert blocked == kahn_leftover(graph)
    assert (first is None) == (not blocked)
    if first is not None:
        assert first[0] == first[-1] and len(set(first[:-1])) == len(first) - 1
        assert all(b in graph[a] for a, b in zip(first, first[1:]))


def test_paths_and_edges_to_unknown_nodes():
    assert find_cycle({1: [2], 2: [3], 3: [1], 4: [1]}) == [1, 2, 3, 1]
    assert cycles({1: [2], 2: [3], 3: [1], 4: [1], 5: []})[1] == {1, 2, 3, 4}
    assert find_cycle({1: [1]}) == [1, 1]
    assert cycles({1: [99], 2: [1]}) == (None, set())  # 99 is not a node: a leaf
    deep = {i: [i + 1] for i in range(100_000)}  # no recursion limit
    assert find_cycle(deep) is None
    deep[99_999] = [0]
    assert len(find_cycle(deep)) == 100_001
