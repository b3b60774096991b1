"""The worker's pure resource allocator: which indices a task gets, and never over-committing."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperqueue.core.resources import (
    ALL,
    UNIT,
    ResourceRequest,
    ResourceRequestEntry,
    parse_resource_def,
)
from hyperqueue.worker.allocator import Allocator


def req(**amounts) -> ResourceRequest:
    """`req(cpus=(6, "tight"), mem=0.5, gpus="all")`."""
    entries = []
    for name, value in amounts.items():
        policy = "compact"
        if isinstance(value, tuple):
            value, policy = value
        if value == "all":
            entries.append(ResourceRequestEntry(name, ALL))
        else:
            entries.append(ResourceRequestEntry(name, round(value * UNIT), policy))
    return ResourceRequest(entries)


def alloc_of(*defs: str) -> Allocator:
    return Allocator([parse_resource_def(*d.split("=", 1)) for d in defs])


def group_sizes(allocator: Allocator, alloc, name="cpus") -> list[int]:
    pool = allocator.index_pools[name]
    counts = Counter()
    for label, units in alloc.indices[name]:
        for gi, g in enumerate(pool.groups):
            if label in g:
                counts[gi] += 1
    return sorted(counts.values(), reverse=True)


def free_of(allocator: Allocator, name="cpus") -> dict[str, int]:
    return dict(allocator.index_pools[name].free)


# ------------------------------------------------------------------------- whole indices


def test_whole_indices_are_distinct_and_released():
    a = alloc_of("cpus=4")
    x = a.try_allocate(req(cpus=2))
    y = a.try_allocate(req(cpus=2))
    assert x.labels("cpus") == ["0", "1"]
    assert y.labels("cpus") == ["2", "3"]
    assert a.try_allocate(req(cpus=1)) is None
    a.release(x)
    z = a.try_allocate(req(cpus=1))
    assert z.labels("cpus") == ["0"]
    a.release(y)
    a.release(z)
    assert set(free_of(a).values()) == {UNIT}


def test_too_big_never_fits():
    a = alloc_of("cpus=2", "mem=sum(100)")
    assert a.try_allocate(req(cpus=3)) is None
    assert not a.can_ever_fit(req(cpus=3))
    assert a.can_ever_fit(req(cpus=2, mem=100))
    assert not a.can_ever_fit(req(mem=100.5))
    assert not a.can_ever_fit(req(gpus=1))
    assert a.try_allocate(req(gpus=1)) is None
    assert a.can_ever_fit(req(cpus="all", mem="all"))


# ------------------------------------------------------------------------- fractions


def test_fractions_share_one_index_up_to_one_unit():
    a = alloc_of("gpus=[a,b]")
    quarter = [a.try_allocate(req(gpus=0.25)) for _ in range(4)]
    # Best fit: partial shares pile onto the same index first.
    assert all(q.indices["gpus"] == [("a", 2500)] for q in quarter)
    assert free_of(a, "gpus") == {"a": 0, "b": UNIT}
    half = a.try_allocate(req(gpus=0.5))
    assert half.indices["gpus"] == [("b", 5000)]
    assert a.try_allocate(req(gpus=0.75)) is None  # 0.5 left on b, nothing else
    assert a.try_allocate(req(gpus=1)) is None
    a.release(quarter[0])
    assert a.try_allocate(req(gpus=0.5)).indices["gpus"] == [("b", 5000)]
    assert a.try_allocate(req(gpus=0.25)).indices["gpus"] == [("a", 2500)]
    assert free_of(a, "gpus") == {"a": 0, "b": 0}


def test_two_indices_at_three_quarters_cannot_host_a_half():
    a = alloc_of("gpus=[a,b]")
    a.try_allocate(req(gpus=0.75))
    a.try_allocate(req(gpus=0.75))
    assert free_of(a, "gpus") == {"a": 2500, "b": 2500}
    assert a.try_allocate(req(gpus=0.5)) is None
    assert a.try_allocate(req(gpus=0.25)) is not None


def test_amount_above_one_is_whole_indices_plus_one_partial():
    a = alloc_of("cpus=3")
    x = a.try_allocate(req(cpus=1.5))
    assert x.indices["cpus"] == [("0", UNIT), ("1", 5000)]
    y = a.try_allocate(req(cpus=1.5))
    # Whole part needs a wholly free index, fraction goes to the half-used one.
    assert y.indices["cpus"] == [("2", UNIT), ("1", 5000)]
    assert a.try_allocate(req(cpus=0.0001)) is None
    a.release(x)
    assert free_of(a) == {"0": UNIT, "1": 5000, "2": 0}


# ------------------------------------------------------------------------- sums and all


def test_sum_pool():
    a = alloc_of("mem=sum(1024)")
    x = a.try_allocate(req(mem=1000))
    assert x.sums == {"mem": 1000 * UNIT}
    assert a.try_allocate(req(mem=25)) is None
    y = a.try_allocate(req(mem=24))
    assert a.sum_free["mem"] == 0
    a.release(x)
    a.release(y)
    assert a.sum_free["mem"] == 1024 * UNIT
    frac = a.try_allocate(req(mem=0.0001))
    assert frac.sums == {"mem": 1}


def test_all_takes_everything_and_only_when_all_is_free():
    a = alloc_of("cpus=2x2", "mem=sum(10)")
    x = a.try_allocate(req(cpus="all", mem="all"))
    assert x.labels("cpus") == ["0", "1", "2", "3"]
    assert x.sums == {"mem": 10 * UNIT}
    assert a.try_allocate(req(cpus=0.5)) is None
    a.release(x)
    y = a.try_allocate(req(cpus=0.5))
    assert a.try_allocate(req(cpus="all")) is None  # one index is partly used
    z = a.try_allocate(req(mem=1))
    assert a.try_allocate(req(mem="all")) is None
    a.release(y)
    a.release(z)
    assert a.try_allocate(req(cpus="all")) is not None


def test_all_or_nothing():
    a = alloc_of("cpus=4", "gpus=[a]", "mem=sum(5)")
    before = (free_of(a), free_of(a, "gpus"), dict(a.sum_free))
    # cpus and gpus fit, mem does not: nothing may stay taken.
    assert a.try_allocate(req(cpus=2, gpus=1, mem=6)) is None
    # cpus fit, the missing resource does not.
    assert a.try_allocate(req(cpus=2, fpga=1)) is None
    assert a.try_allocate(req(cpus=2, gpus=2)) is None
    assert (free_of(a), free_of(a, "gpus"), dict(a.sum_free)) == before
    got = a.try_allocate(req(cpus=2, gpus=1, mem=5))
    assert got.labels("cpus") == ["0", "1"] and got.labels("gpus") == ["a"]
    assert got.sums == {"mem": 5 * UNIT}


# ------------------------------------------------------------------------- group policies


@pytest.mark.parametrize(
    "policy, expected",
    [("compact", [3, 3]), ("compact!", [3, 3]), ("tight", [4, 2]), ("tight!", [4, 2]),
     ("scatter", [2, 2, 2])],
)
def test_group_policies_3x4_take_6(policy, expected):
    a = alloc_of("cpus=3x4")
    x = a.try_allocate(req(cpus=(6, policy)))
    assert len(set(x.labels("cpus"))) == 6
    assert group_sizes(a, x) == expected


def test_compact_prefers_one_group_and_the_tightest_fit():
    a = alloc_of("cpus=[[0,1,2,3],[4,5,6,7],[8,9,10,11]]")
    a.try_allocate(req(cpus=(1, "compact")))  # group 0 now has 3 free
    x = a.try_allocate(req(cpus=(3, "compact")))
    assert x.labels("cpus") == ["1", "2", "3"]  # tightest group that fits, not a fresh one
    y = a.try_allocate(req(cpus=(4, "compact")))
    assert group_sizes(a, y) == [4]


def test_strict_policy_waits_for_the_minimal_group_count():
    a = alloc_of("cpus=2x4")
    first = a.try_allocate(req(cpus=(2, "scatter")))
    assert first.labels("cpus") == ["0", "4"]  # one cpu in each group: 3 + 3 free
    assert a.try_allocate(req(cpus=(4, "compact!"))) is None
    assert a.try_allocate(req(cpus=(4, "tight!"))) is None
    # The non-strict variants take two groups instead of waiting.
    x = a.try_allocate(req(cpus=(4, "compact")))
    assert group_sizes(a, x) == [2, 2]
    a.release(x)
    y = a.try_allocate(req(cpus=(4, "tight")))
    assert group_sizes(a, y) == [3, 1]
    a.release(y)
    a.release(first)
    # Once a whole group is free again the strict request fits in one group.
    z = a.try_allocate(req(cpus=(4, "compact!")))
    assert group_sizes(a, z) == [4]


def test_scatter_skips_full_groups():
    a = alloc_of("cpus=3x2")
    a.try_allocate(req(cpus=(2, "tight")))  # a whole group is taken
    x = a.try_allocate(req(cpus=(4, "scatter")))
    assert group_sizes(a, x) == [2, 2]
    assert a.try_allocate(req(cpus=(1, "scatter"))) is None


def test_release_restores_exactly():
    a = alloc_of("cpus=2x3", "gpus=[a,b]", "mem=sum(8)")
    before = (free_of(a), free_of(a, "gpus"), dict(a.sum_free))
    allocs = [a.try_allocate(req(cpus=(2.5, "scatter"), gpus=0.5, mem=2)) for _ in range(2)]
    assert all(allocs)
    for x in allocs:
        a.release(x)
    assert (free_of(a), free_of(a, "gpus"), dict(a.sum_free)) == before


# ------------------------------------------------------------------------- property


POOLS = ["cpus=2x3", "gpus=[a,b,c]", "mem=sum(4)", "disk=range(10-11)"]
AMOUNTS = st.one_of(
    st.sampled_from([1, 2, 3, 0.5, 0.25, 0.75, 1.5, 2.25, 0.0001, 4, "all"]),
    st.integers(1, 12_000).map(lambda u: u / UNIT),
)
REQUESTS = st.dictionaries(
    st.sampled_from(["cpus", "gpus", "mem", "disk"]),
    st.tuples(AMOUNTS, st.sampled_from(["compact", "compact!", "tight", "tight!", "scatter"])),
    min_size=1, max_size=3,
)


def check_pools(a: Allocator, live: list) -> None:
    totals: dict[tuple[str, str], int] = Counter()
    sums: dict[str, int] = Counter()
    for alloc, _ in live:
        for name, got in alloc.indices.items():
            for label, units in got:
                totals[(name, label)] += units
        for name, units in alloc.sums.items():
            sums[name] += units
    for name, pool in a.index_pools.items():
        for label, free in pool.free.items():
            assert 0 <= free <= UNIT, (name, label, free)
            assert free + totals[(name, label)] == UNIT, (name, label)
    for name, free in a.sum_free.items():
        assert 0 <= free <= a.sum_total[name]
        assert free + sums[name] == a.sum_total[name]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(REQUESTS.map(lambda r: ("alloc", r)),
                          st.integers(0, 50).map(lambda i: ("release", i))), max_size=40))
def test_allocations_never_overcommit_and_match_requests(ops):
    a = alloc_of(*POOLS)
    totals = {name: pool.total() for name, pool in a.index_pools.items()}
    totals.update(a.sum_total)
    live = []
    for op, arg in ops:
        if op == "release":
            if live:
                alloc, _ = live.pop(arg % len(live))
                a.release(alloc)
        else:
            request = ResourceRequest([
                ResourceRequestEntry(name, ALL if amount == "all" else round(amount * UNIT),
                                     policy)
                for name, (amount, policy) in arg.items()])
            before = (
                {n: dict(pool.free) for n, pool in a.index_pools.items()}, dict(a.sum_free))
            alloc = a.try_allocate(request)
            if alloc is None:  # all-or-nothing
                assert ({n: dict(pool.free) for n, pool in a.index_pools.items()},
                        dict(a.sum_free)) == before
            else:
                for e in request.entries:
                    want = totals[e.name] if e.amount == ALL else e.amount
                    if e.name in a.index_pools:
                        got = alloc.indices[e.name]
                        labels = [label for label, _ in got]
                        assert len(labels) == len(set(labels))  # one share per index
                        assert sum(units for _, units in got) == want
                        # at most one partial index
                        assert sum(1 for _, units in got if units != UNIT) <= 1
                    else:
                        assert alloc.sums[e.name] == want
                live.append((alloc, request))
        check_pools(a, live)
    for alloc, _ in live:
        a.release(alloc)
    check_pools(a, [])


def test_coupling_keeps_gpus_next_to_their_cpus():
    from hyperqueue.core.resources import parse_coupling, parse_resource_def

    cpus = parse_resource_def("cpus", "2x2")
    gpus = parse_resource_def("gpus", "[[a],[b]]")
    coupled = Allocator([cpus, gpus], parse_coupling("cpus,gpus", [cpus, gpus]))
    blocker = coupled.try_allocate(req(cpus=2))  # takes NUMA group 0 (cpus 0, 1)
    assert blocker.labels("cpus") == ["0", "1"]
    alloc = coupled.try_allocate(req(cpus=1, gpus=1))
    assert alloc.labels("cpus") == ["2"] and alloc.labels("gpus") == ["b"]
    # without coupling the first GPU group is taken regardless of where the cpus are
    plain = Allocator([cpus, gpus])
    plain.try_allocate(req(cpus=2))
    assert plain.try_allocate(req(cpus=1, gpus=1)).labels("gpus") == ["a"]


def test_coupling_spec_errors():
    from hyperqueue.core.resources import parse_coupling, parse_resource_def

    defs = [parse_resource_def("cpus", "2x2"), parse_resource_def("gpus", "[[a],[b]]")]
    assert parse_coupling("cpus[0]:gpus[1]=512", defs) == [["cpus", 0, "gpus", 1, 512]]
    for bad, msg in [("cpus", "at least two"), ("cpus,fpga", "unknown"),
                     ("cpus[5]:gpus[0]", "no group 5"), ("cpus[0]-gpus[0]", "expected"),
                     ("cpus[0]:gpus[0]=0", "weight")]:
        with pytest.raises(ValueError, match=msg):
            parse_coupling(bad, defs)
