"""Cycles in a directed graph (task dependencies, module imports): the one checker.

`graph` maps each node to the nodes it points to (its dependencies), in the order to visit them;
an edge to a node that is not a key is an edge to a leaf. Iterative (no recursion limit), linear
in nodes + edges, deterministic (keys and edges in the mapping's order).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

_END = object()


def cycles(graph: Mapping[K, Iterable[K]]) -> tuple[list[K] | None, set[K]]:
    """The first cycle found, as a path `[a, b, a]` (None if there is none), and every node on a
    cycle or pointing (transitively) into one: the nodes no topological order can place."""
    state: dict = {}  # 1: on the stack, 2: done
    blocked: set = set()
    first = None
    for root in graph:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(graph[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, _END)
            if nxt is _END:
                state[node] = 2
                stack.pop()
                if stack and node in blocked:
                    blocked.add(stack[-1][0])
                continue
            seen = state.get(nxt)
            if seen == 1:
                if first is None:
                    path = [n for n, _ in stack]
                    first = path[path.index(nxt):] + [nxt]
                blocked.add(node)
            elif seen == 2:
                if nxt in blocked:
                    blocked.add(node)
            elif nxt in graph:
                state[nxt] = 1
                stack.append((nxt, iter(graph[nxt])))
            else:
                state[nxt] = 2
    return first, blocked


def find_cycle(graph: Mapping[K, Iterable[K]]) -> list[K] | None:
    """A cycle as a path `[a, b, a]`, or None when the graph is acyclic."""
    return cycles(graph)[0]
