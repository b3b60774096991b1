"""Range helpers used to answer requests without expanding ids (issue 10, item 2)."""

import random
import time

import pytest

from hyperqueue.core.ranges import MAX_ID, MAX_INTERLEAVE, IntRanges


def _random_ranges(rnd, interleave=False):
    parts = []
    start = rnd.randrange(0, 5)
    for _ in range(rnd.randrange(1, 5)):
        end = start + rnd.randrange(0, 30)
        step = rnd.randrange(1, 5)
        parts.append(f"{start}-{end}:{step}")
        start = (start + 1) if interleave else end + rnd.randrange(1, 5)
    try:
        return IntRanges.parse(",".join(parts))
    except ValueError:
        return IntRanges.parse(parts[0])


def test_intersection_matches_sets_on_random_inputs():
    rnd = random.Random(1)
    for _ in range(500):
        a = _random_ranges(rnd, rnd.random() < 0.3)
        b = _random_ranges(rnd, rnd.random() < 0.3)
        got = a.intersection(b)
        assert sorted(got) == sorted(set(a) & set(b))
        assert len(got) == len(set(a) & set(b))


def test_intersection_of_huge_ranges_is_computed_on_the_ranges():
    a = IntRanges.parse(f"0-{MAX_ID}")
    b = IntRanges.parse("5-4000000000:3,4000000001-4000000010")
    t0 = time.perf_counter()
    got = a.intersection(b)
    assert time.perf_counter() - t0 < 0.05
    assert got == b
    assert IntRanges.parse("0-4000000000:2").intersection(
        IntRanges.parse("1-4000000000:2")).is_empty
    assert IntRanges.parse("0-100:6").intersection(IntRanges.parse("0-100:4")) == \
        IntRanges.parse("0-96:12")


def test_without_members_splits_only_the_touched_ranges():
    ids = IntRanges.parse(f"0-{MAX_ID}")
    rest = ids.without_members([5, 10, 4_000_000_000])
    assert len(rest) == MAX_ID + 1 - 3
    assert rest.ranges == ((0, 4, 1), (6, 9, 1), (11, 3_999_999_999, 1),
                           (4_000_000_001, MAX_ID, 1))
    stepped = IntRanges.parse("0-20:5")
    assert list(stepped.without_members([0, 10])) == [5, 15, 20]
    with pytest.raises(ValueError):
        stepped.without_members([3])


def test_iter_sorted_is_lazy_and_ascending():
    ids = IntRanges.parse(f"0-{MAX_ID}")
    it = ids.iter_sorted(4_000_000_000)
    assert [next(it) for _ in range(3)] == [4_000_000_001, 4_000_000_002, 4_000_000_003]
    inter = IntRanges.parse("0-30:3,1-31:3,50,40-45")
    assert list(inter.iter_sorted()) == sorted(inter)
    assert list(inter.iter_sorted(20)) == [x for x in sorted(inter) if x > 20]


def test_locate_and_membership_with_interleaved_ranges():
    rnd = random.Random(3)
    for _ in range(200):
        a = _random_ranges(rnd, True)
        members = set(a)
        for x in range(0, 160):
            i = a.locate(x)
            assert (x in a) == (x in members) == (i is not None)
            if i is not None:
                s, e, k = a.ranges[i]
                assert s <= x <= e and (x - s) % k == 0


def test_parsed_ranges_cannot_interleave_without_bound():
    ok = ",".join(f"{i}-{10_000 + i}:{MAX_INTERLEAVE}" for i in range(MAX_INTERLEAVE))
    assert len(IntRanges.parse(ok).ranges) == MAX_INTERLEAVE
    too_many = ",".join(f"{i}-{10_000 + i}:{MAX_INTERLEAVE + 1}"
                        for i in range(MAX_INTERLEAVE + 1))
    with pytest.raises(ValueError, match="interleave"):
        IntRanges.parse(too_many)
    with pytest.raises(ValueError, match="interleave"):
        IntRanges.from_ranges([[i, 10_000 + i, MAX_INTERLEAVE + 1]
                               for i in range(MAX_INTERLEAVE + 1)])
