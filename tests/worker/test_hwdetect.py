"""Hardware detection against fake sysfs/proc trees (real NUMA/GPU hardware is not available here)."""

import logging
import os

import pytest

from hyperqueue.worker import hwdetect
from hyperqueue.worker.hwdetect import (
    DETECTABLE,
    detect_cpus,
    detect_gpus,
    detect_memory_mib,
    detect_resources,
    format_hwdetect,
    parse_cpulist,
    parse_detect_spec,
)


def make_sysfs(root, nodes=None, siblings=None):
    """nodes: {node number: cpulist text}; siblings: {cpu: thread_siblings_list text}."""
    for number, cpulist in (nodes or {}).items():
        d = root / "devices" / "system" / "node" / f"node{number}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cpulist + "\n")
    for cpu, text in (siblings or {}).items():
        d = root / "devices" / "system" / "cpu" / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "thread_siblings_list").write_text(text + "\n")
    return str(root)


# ---------------------------------------------------------------------------------------- cpulist


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", [0]),
        ("0-3,8-11", [0, 1, 2, 3, 8, 9, 10, 11]),
        ("", []),
        ("\n", []),
        ("5,1,3", [1, 3, 5]),
        ("2-2", [2]),
        ("0-1,1-2", [0, 1, 2]),
    ],
)
def test_parse_cpulist(text, expected):
    assert parse_cpulist(text) == expected


@pytest.mark.parametrize("text", ["a", "3-1", "1,,2", "-1", "1-", "0-3,x"])
def test_parse_cpulist_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_cpulist(text)


# ------------------------------------------------------------------------------------------- cpus


def test_two_numa_nodes(tmp_path):
    sysfs = make_sysfs(tmp_path, {0: "0-3", 1: "4-7"})
    assert detect_cpus(sysfs_root=sysfs, affinity=set(range(8))) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_numa_nodes_sorted_numerically(tmp_path):
    sysfs = make_sysfs(tmp_path, {10: "2", 2: "1", 0: "0"})
    assert detect_cpus(sysfs_root=sysfs, affinity={0, 1, 2}) == [[0], [1], [2]]


def test_interleaved_numa_cpulist(tmp_path):
    sysfs = make_sysfs(tmp_path, {0: "0-1,4-5", 1: "2-3,6-7"})
    assert detect_cpus(sysfs_root=sysfs, affinity=set(range(8))) == [[0, 1, 4, 5], [2, 3, 6, 7]]


def test_affinity_filters_and_drops_node(tmp_path):
    sysfs = make_sysfs(tmp_path, {0: "0-3", 1: "4-7"})
    assert detect_cpus(sysfs_root=sysfs, affinity={1, 3}) == [[1, 3]]
    assert detect_cpus(sysfs_root=sysfs, affinity={2, 5, 6}) == [[2], [5, 6]]


def test_memory_only_numa_node_is_dropped(tmp_path):
    sysfs = make_sysfs(tmp_path, {0: "0-1", 1: ""})
    assert detect_cpus(sysfs_root=sysfs, affinity={0, 1}) == [[0, 1]]


def test_no_numa_info_falls_back_to_affinity(tmp_path):
    assert detect_cpus(sysfs_root=str(tmp_path), affinity={3, 1, 2}) == [[1, 2, 3]]


def test_numa_info_not_covering_affinity_falls_back(tmp_path):
    sysfs = make_sysfs(tmp_path, {0: "0-1"})
    assert detect_cpus(sysfs_root=sysfs, affinity={0, 1, 2}) == [[0, 1, 2]]


def test_broken_cpulist_falls_back(tmp_path):
    sysfs = make_sysfs(tmp_path, {0: "0-1", 1: "garbage"})
    assert detect_cpus(sysfs_root=sysfs, affinity={0, 1, 2}) == [[0, 1, 2]]


def test_no_hyper_threading_keeps_first_sibling(tmp_path):
    # 2 nodes x 2 cores x 2 threads; siblings are (n, n+4) like on typical Intel machines.
    siblings = {cpu: f"{cpu % 4},{cpu % 4 + 4}" for cpu in range(8)}
    sysfs = make_sysfs(tmp_path, {0: "0-1,4-5", 1: "2-3,6-7"}, siblings)
    everything = set(range(8))
    assert detect_cpus(sysfs_root=sysfs, affinity=everything) == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert detect_cpus(no_hyper_threading=True, sysfs_root=sysfs, affinity=everything) == [
        [0, 1],
        [2, 3],
    ]


def test_no_hyper_threading_respects_affinity(tmp_path):
    # cpu 0 is not allowed, so cpu 4 is the first allowed thread of that core.
    siblings = {cpu: f"{cpu % 4},{cpu % 4 + 4}" for cpu in range(8)}
    sysfs = make_sysfs(tmp_path, {0: "0-7"}, siblings)
    assert detect_cpus(no_hyper_threading=True, sysfs_root=sysfs, affinity={1, 2, 4, 5}) == [
        [1, 2, 4]
    ]


def test_no_hyper_threading_range_syntax_siblings(tmp_path):
    siblings = {0: "0-1", 1: "0-1", 2: "2-3", 3: "2-3"}
    sysfs = make_sysfs(tmp_path, {}, siblings)
    assert detect_cpus(no_hyper_threading=True, sysfs_root=sysfs, affinity={0, 1, 2, 3}) == [[0, 2]]


def test_no_hyper_threading_without_topology_keeps_cpus(tmp_path):
    assert detect_cpus(no_hyper_threading=True, sysfs_root=str(tmp_path), affinity={0, 1}) == [[0, 1]]


def test_real_machine_cpus_match_affinity():
    groups = detect_cpus()
    flat = [cpu for group in groups for cpu in group]
    assert all(groups)
    assert len(flat) == len(set(flat))
    assert set(flat) == os.sched_getaffinity(0)


def test_real_machine_detect_all():
    res = detect_resources(parse_detect_spec("all"))
    cpus = res["cpus"]
    flat = cpus if not isinstance(cpus[0], list) else [c for g in cpus for c in g]
    assert set(flat) == os.sched_getaffinity(0)
    assert isinstance(res.get("mem", 1), (int, float))
    text = format_hwdetect(res)
    assert text.startswith("Summary:\ncpus: ")


# -------------------------------------------------------------------------------------------- mem


def write_meminfo(tmp_path, kib=24683656):
    (tmp_path / "meminfo").write_text(
        f"MemTotal:       {kib} kB\nMemFree:         1000 kB\n"
    )
    return str(tmp_path)


def test_memory_from_meminfo(tmp_path):
    proc = write_meminfo(tmp_path, 24683656)
    # F53: MiB with the fraction kept (4 digits, as a resource amount)
    assert detect_memory_mib(environ={}, proc_root=proc) == round(24683656 / 1024, 4)


def test_memory_from_slurm(tmp_path):
    proc = write_meminfo(tmp_path)
    assert detect_memory_mib(environ={"SLURM_MEM_PER_NODE": "16000"}, proc_root=proc) == 16000


@pytest.mark.parametrize("value", ["abc", "-5", "", "0", "16G"])
def test_invalid_slurm_memory_falls_back(tmp_path, value):
    proc = write_meminfo(tmp_path, 2048 * 1024)
    assert detect_memory_mib(environ={"SLURM_MEM_PER_NODE": value}, proc_root=proc) == 2048


def test_memory_unknown(tmp_path):
    assert detect_memory_mib(environ={}, proc_root=str(tmp_path)) is None


def test_real_memory_is_positive():
    mem = detect_memory_mib(environ={})
    assert mem is not None and mem > 0


# ------------------------------------------------------------------------------------------- gpus


def test_no_gpus(tmp_path):
    assert detect_gpus(environ={}, proc_root=str(tmp_path)) == {}


def test_cuda_visible_devices_indices(tmp_path):
    assert detect_gpus(environ={"CUDA_VISIBLE_DEVICES": "0,1,3"}, proc_root=str(tmp_path)) == {
        "gpus/nvidia": ["0", "1", "3"]
    }


def test_cuda_visible_devices_uuids_and_duplicates(tmp_path, caplog):
    env = {"CUDA_VISIBLE_DEVICES": "GPU-8f1d2c3a-aaaa, GPU-0b2e-bbbb,GPU-8f1d2c3a-aaaa"}
    with caplog.at_level(logging.WARNING, logger=hwdetect.__name__):
        result = detect_gpus(environ=env, proc_root=str(tmp_path))
    assert result == {}  # F53: a value with duplicates is skipped (with a WARN)
    assert "duplicate" in caplog.text and "GPU-8f1d2c3a-aaaa" in caplog.text


def make_proc_nvidia(tmp_path, count):
    gpus = tmp_path / "driver" / "nvidia" / "gpus"
    gpus.mkdir(parents=True)
    for i in range(count):
        (gpus / f"0000:{i:02x}:00.0").mkdir()
    return str(tmp_path)


def test_proc_nvidia_dir(tmp_path):
    proc = make_proc_nvidia(tmp_path, 3)
    assert detect_gpus(environ={}, proc_root=proc) == {"gpus/nvidia": ["0", "1", "2"]}


def test_env_wins_over_proc_and_empty_env_means_none(tmp_path):
    proc = make_proc_nvidia(tmp_path, 3)
    assert detect_gpus(environ={"CUDA_VISIBLE_DEVICES": "2"}, proc_root=proc) == {
        "gpus/nvidia": ["2"]
    }
    # F53: a variable that yields no GPU (empty, or skipped for duplicates) does not stop the
    # driver count (upstream: "neither variable yields any GPU")
    assert detect_gpus(environ={"CUDA_VISIBLE_DEVICES": ""}, proc_root=proc) == {
        "gpus/nvidia": ["0", "1", "2"]}
    assert detect_gpus(environ={"CUDA_VISIBLE_DEVICES": "1,1"}, proc_root=proc) == {
        "gpus/nvidia": ["0", "1", "2"]}
    # ... but AMD GPUs named by ROCR_VISIBLE_DEVICES do
    assert detect_gpus(environ={"ROCR_VISIBLE_DEVICES": "a"}, proc_root=proc) == {
        "gpus/amd": ["a"]}


def test_proc_nvidia_count_is_a_range_pool(tmp_path):
    """F53: the driver count gives an nvidia range (`range(0-2)`, `[0]` for one GPU); GPUs named
    by CUDA_VISIBLE_DEVICES stay a list."""
    from hyperqueue.worker.hwdetect import detected_defs, format_hwdetect

    proc = make_proc_nvidia(tmp_path / "three", 3)
    (d,) = detected_defs(detect_gpus(environ={}, proc_root=proc))
    assert (d.name, d.kind, d.start, d.end) == ("gpus/nvidia", "range", 0, 2)
    assert format_hwdetect(detect_gpus(environ={}, proc_root=proc)) == (
        "Summary:\ngpus/nvidia: 3\n\nFull Description:\ngpus/nvidia: range(0-2)\n")
    one = make_proc_nvidia(tmp_path / "one", 1)
    assert format_hwdetect(detect_gpus(environ={}, proc_root=one)).endswith(
        "gpus/nvidia: [0]\n")
    named = detect_gpus(environ={"CUDA_VISIBLE_DEVICES": "0,1"}, proc_root=proc)
    assert format_hwdetect(named).endswith("gpus/nvidia: [0,1]\n")


def test_amd_gpus(tmp_path, caplog):
    env = {"ROCR_VISIBLE_DEVICES": "0,1,1", "CUDA_VISIBLE_DEVICES": ""}
    with caplog.at_level(logging.WARNING, logger=hwdetect.__name__):
        assert detect_gpus(environ=env, proc_root=str(tmp_path)) == {}  # duplicates: skipped
    env = {"ROCR_VISIBLE_DEVICES": "0,1", "CUDA_VISIBLE_DEVICES": ""}
    assert detect_gpus(environ=env, proc_root=str(tmp_path)) == {"gpus/amd": ["0", "1"]}
    assert "ROCR_VISIBLE_DEVICES" in caplog.text


# ------------------------------------------------------------------------------- detect spec / all


def test_parse_detect_spec():
    assert parse_detect_spec("all") == set(DETECTABLE)
    assert parse_detect_spec("none") == set()
    assert parse_detect_spec("cpus") == {"cpus"}
    assert parse_detect_spec("cpus, gpus/nvidia") == {"cpus", "gpus/nvidia"}
    assert parse_detect_spec("mem,gpus/amd,mem") == {"mem", "gpus/amd"}


@pytest.mark.parametrize("text", ["", "gpus", "cpus,foo", "cpus,", "all,cpus", "CPUS"])
def test_parse_detect_spec_errors(text):
    with pytest.raises(ValueError) as info:
        parse_detect_spec(text)
    for name in DETECTABLE:
        assert name in str(info.value)


def fake_roots(tmp_path):
    sysfs = make_sysfs(tmp_path / "sys", {0: "0-3", 1: "4-7"})
    proc = make_proc_nvidia(tmp_path / "proc", 2)
    write_meminfo(tmp_path / "proc", 24000 * 1024)
    return dict(sysfs_root=sysfs, proc_root=proc, environ={}, affinity=set(range(8)))


def test_detect_resources_all(tmp_path):
    res = detect_resources(parse_detect_spec("all"), **fake_roots(tmp_path))
    assert res == {
        "cpus": [[0, 1, 2, 3], [4, 5, 6, 7]],
        "mem": 24000,
        "gpus/nvidia": ["0", "1"],
    }
    assert list(res) == ["cpus", "mem", "gpus/nvidia"]


def test_detect_resources_subset(tmp_path):
    roots = fake_roots(tmp_path)
    assert detect_resources({"gpus/nvidia"}, **roots) == {"gpus/nvidia": ["0", "1"]}
    assert detect_resources({"mem", "gpus/amd"}, **roots) == {"mem": 24000}
    assert detect_resources(set(), **roots) == {}
    with pytest.raises(ValueError):
        detect_resources({"disk"}, **roots)


# ----------------------------------------------------------------------------------------- format


def test_format_hwdetect_example(tmp_path):
    # F53: upstream's text: summaries, a blank line, the kinds; detection order (mem last)
    res = detect_resources(parse_detect_spec("all"), **fake_roots(tmp_path))
    assert format_hwdetect(res) == (
        "Summary:\n"
        "cpus: 2x4\n"
        "gpus/nvidia: 2\n"
        "mem: 23.44 GiB\n"
        "\n"
        "Full Description:\n"
        "cpus: [[0,1,2,3],[4,5,6,7]]\n"
        "gpus/nvidia: range(0-1)\n"  # counted from /proc/driver/nvidia/gpus: a range
        "mem: sum(24000)\n"
    )


def test_format_hwdetect_cpu_shapes():
    # without NUMA information: a range (or a list when not 0..n-1)
    assert format_hwdetect({"cpus": [[0, 1, 2, 3]]}) == (
        "Summary:\ncpus: 4\n\nFull Description:\ncpus: range(0-3)\n"
    )
    assert format_hwdetect({"cpus": [[0, 2, 4]]}).endswith("\ncpus: [0,2,4]\n")
    assert format_hwdetect({"cpus": [[0]]}).endswith("\ncpus: [0]\n")
    # one NUMA node: a list
    assert format_hwdetect({"cpus": [0, 1, 2, 3]}).endswith("\ncpus: [0,1,2,3]\n")
    text = format_hwdetect({"cpus": [[0, 1, 2, 3], [4, 5]]})
    assert "\ncpus: 1x2 1x4\n" in text
    assert text.endswith("\ncpus: [[0,1,2,3],[4,5]]\n")


def test_format_hwdetect_labels_and_small_memory():
    text = format_hwdetect({"gpus/nvidia": ["GPU-1a", "b"], "gpus/amd": ["0"], "mem": 100.5})
    assert text == ("Summary:\ngpus/nvidia: 2\ngpus/amd: 1\nmem: 100.50 MiB\n\n"
                    "Full Description:\ngpus/nvidia: [GPU-1a,b]\ngpus/amd: [0]\n"
                    "mem: sum(100.5)\n")


def test_format_hwdetect_empty():
    assert format_hwdetect({}) == "Summary:\n\n\nFull Description:\n"
