"""Concrete resource allocation on a worker (pure): which indices a task gets.

Indexed pools track a free fraction per label (in units of 1/10000), so fractional requests share
an index while whole requests take wholly free indices; sum pools are a counter. An allocation is
all-or-nothing and never over-commits an index.
"""

from __future__ import annotations

from bisect import bisect_left, insort

from ..core.resources import ALL, UNIT, ResourceDef


class Allocation:
    """What one task holds: `indices[name] = [(label, units), ...]`, `sums[name] = units`."""

    __slots__ = ("indices", "sums")

    def __init__(self):
        self.indices: dict[str, list[tuple[str, int]]] = {}
        self.sums: dict[str, int] = {}

    def labels(self, name: str) -> list[str]:
        return [label for label, _ in self.indices.get(name, ())]


class _IndexPool:
    """An indexed pool: free units per label, plus per group the sorted positions of the
    wholly free labels (kept up to date, so a request does not scan every index)."""

    __slots__ = ("groups", "free", "where", "whole")

    def __init__(self, rdef: ResourceDef):
        self.groups = [list(g) for g in rdef.groups]
        self.free = {label: UNIT for g in self.groups for label in g}
        self.where = {label: (gi, i) for gi, g in enumerate(self.groups)
                      for i, label in enumerate(g)}
        self.whole = [list(range(len(g))) for g in self.groups]

    def total(self) -> int:
        return len(self.free) * UNIT

    def consume(self, got) -> None:
        free, where, whole = self.free, self.where, self.whole
        for label, units in got:
            if free[label] == UNIT:
                gi, i = where[label]
                w = whole[gi]
                del w[bisect_left(w, i)]
            free[label] -= units

    def restore(self, got) -> None:
        free, where, whole = self.free, self.where, self.whole
        for label, units in got:
            free[label] += units
            if free[label] == UNIT:
                gi, i = where[label]
                insort(whole[gi], i)

    def _labels(self, gi: int, n: int) -> list[str]:
        group = self.groups[gi]
        return [group[i] for i in self.whole[gi][:n]]

    def take(self, amount: int, policy: str,
             prefer: dict[int, int] | None = None) -> list[tuple[str, int]] | None:
        """The labels (and units of each) for `amount`, or None; nothing is changed here.

        `prefer` maps group index -> coupling weight with groups already chosen for the same
        task; compact/tight policies pick well-coupled groups first."""
        if amount == ALL:
            if any(len(w) != len(g) for w, g in zip(self.whole, self.groups)):
                return None
            return [(label, UNIT) for g in self.groups for label in g]
        whole, frac = divmod(amount, UNIT)
        chosen = self._choose_whole(whole, policy, prefer or {})
        if chosen is None:
            return None
        out = [(label, UNIT) for label in chosen]
        if frac:
            taken = set(chosen)
            # Best fit: the partially used label with the least room that still fits.
            best = None
            for label, free in self.free.items():
                if label in taken or free < frac:
                    continue
                if best is None or free < self.free[best]:
                    best = label
            if best is None:
                return None
            out.append((best, frac))
        return out

    def _choose_whole(self, n: int, policy: str, prefer: dict[int, int]) -> list[str] | None:
        if n == 0:
            return []
        counts = [len(w) for w in self.whole]
        if sum(counts) < n:
            return None
        n_groups = len(counts)
        if n_groups == 1:
            return self._labels(0, n)
        if policy == "scatter":
            take = [0] * n_groups
            remaining = n
            while remaining:
                for gi in range(n_groups):
                    if remaining and take[gi] < counts[gi]:
                        take[gi] += 1
                        remaining -= 1
            out: list[str] = []
            for k in range(max(take)):
                for gi in range(n_groups):
                    if k < take[gi]:
                        out.append(self.groups[gi][self.whole[gi][k]])
            return out
        # compact / tight: the fewest groups, preferring the fullest-fitting ones.
        order = sorted(range(n_groups), key=lambda i: (-prefer.get(i, 0), -counts[i]))
        need_groups = 0
        acc = 0
        for i in order:
            need_groups += 1
            acc += counts[i]
            if acc >= n:
                break
        min_groups = -(-n // max(len(g) for g in self.groups))
        if policy.endswith("!") and need_groups > min_groups:
            return None
        if need_groups == 1:
            # Tightest single group that fits.
            best = min((i for i in range(n_groups) if counts[i] >= n),
                       key=lambda i: (-prefer.get(i, 0), counts[i], i))
            return self._labels(best, n)
        chosen_groups = order[:need_groups]
        if policy.startswith("tight"):
            out = []
            for i in chosen_groups:
                out.extend(self._labels(i, n - len(out)))
            return out
        # compact: take evenly from the chosen groups
        take = [0] * need_groups
        remaining = n
        while remaining:
            for j, i in enumerate(chosen_groups):
                if remaining and take[j] < counts[i]:
                    take[j] += 1
                    remaining -= 1
        out = []
        for j, i in enumerate(chosen_groups):
            out.extend(self._labels(i, take[j]))
        return out


class Allocator:
    """All pools of one worker."""

    def __init__(self, resources: list[ResourceDef], coupling: list | None = None):
        self.index_pools: dict[str, _IndexPool] = {}
        # (resource, group) -> [(other resource, other group, weight)]
        self.coupling: dict[tuple[str, int], list[tuple[str, int, int]]] = {}
        for a, ga, b, gb, w in coupling or ():
            self.coupling.setdefault((a, ga), []).append((b, gb, w))
            self.coupling.setdefault((b, gb), []).append((a, ga, w))
        self.sum_free: dict[str, int] = {}
        self.sum_total: dict[str, int] = {}
        for r in resources:
            if r.is_indexed:
                self.index_pools[r.name] = _IndexPool(r)
            else:
                self.sum_free[r.name] = r.size
                self.sum_total[r.name] = r.size

    def try_allocate(self, request) -> Allocation | None:
        """Takes everything `request` asks for, or nothing (None) if it does not fit now."""
        alloc = Allocation()
        for e in request.entries:
            pool = self.index_pools.get(e.name)
            if pool is not None:
                prefer = self._preferences(e.name, alloc) if self.coupling else None
                got = pool.take(e.amount, e.policy, prefer)
                if got is None:
                    self.release(alloc)
                    return None
                pool.consume(got)
                alloc.indices[e.name] = got
                continue
            if e.name not in self.sum_free:
                self.release(alloc)
                return None
            amount = self.sum_total[e.name] if e.amount == ALL else e.amount
            if e.amount == ALL and self.sum_free[e.name] != amount:
                self.release(alloc)
                return None
            if self.sum_free[e.name] < amount:
                self.release(alloc)
                return None
            self.sum_free[e.name] -= amount
            alloc.sums[e.name] = amount
        return alloc

    def _preferences(self, name: str, alloc: Allocation) -> dict[int, int]:
        """Coupling weight of each group of `name` with the groups this allocation already
        holds of other resources."""
        prefer: dict[int, int] = {}
        for other, got in alloc.indices.items():
            where = self.index_pools[other].where
            for og in {where[label][0] for label, _ in got}:
                for res, g, w in self.coupling.get((other, og), ()):
                    if res == name:
                        prefer[g] = prefer.get(g, 0) + w
        return prefer

    def can_ever_fit(self, request) -> bool:
        for e in request.entries:
            pool = self.index_pools.get(e.name)
            if pool is not None:
                if e.amount != ALL and e.amount > pool.total():
                    return False
            elif e.name not in self.sum_total or (
                    e.amount != ALL and e.amount > self.sum_total[e.name]):
                return False
        return True

    def need_of(self, request) -> dict[str, int]:
        """The amounts `request` takes here (resource -> units; `all` is the whole pool)."""
        return {e.name: self.need_of_entry(e) for e in request.entries}

    @staticmethod
    def merge_need(a: dict | None, b: dict | None) -> dict | None:
        """The larger amount per resource of two `need_of` results (either may be None)."""
        if not a or not b:
            return a or b
        out = dict(a)
        for name, x in b.items():
            if x > out.get(name, 0):
                out[name] = x
        return out

    def free_amount(self, name: str) -> int:
        pool = self.index_pools.get(name)
        if pool is not None:
            return sum(pool.free.values())
        return self.sum_free.get(name, 0)

    def fits_beside(self, request, need: dict) -> bool:
        """Whether `request` leaves `need` (amounts of a waiting higher-priority task) free
        on every resource both use: it takes only the gap (F58). Fit itself is not checked."""
        for e in request.entries:
            x = need.get(e.name)
            if x is not None:
                amount = self.need_of_entry(e)
                if self.free_amount(e.name) - amount < x:
                    return False
        return True

    def need_of_entry(self, e) -> int:
        if e.amount != ALL:
            return e.amount
        pool = self.index_pools.get(e.name)
        return pool.total() if pool is not None else self.sum_total.get(e.name, 0)

    def release(self, alloc: Allocation) -> None:
        for name, got in alloc.indices.items():
            self.index_pools[name].restore(got)
        for name, units in alloc.sums.items():
            self.sum_free[name] += units
        alloc.indices = {}
        alloc.sums = {}
