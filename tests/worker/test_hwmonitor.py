"""Parsing of `nvidia-smi` / `rocm-smi` output and sampling, as upstream (F56)."""

from __future__ import annotations

import pytest

from hyperqueue.worker.hwmonitor import HwMonitor, parse_nvidia, parse_rocm


def test_nvidia_lines():
    assert parse_nvidia("BUS1, 10.0 %, 100 MiB, 200 MiB\nBUS2, x %, 512 KiB, 1 MiB\n") == {
        "gpus": [{"id": "BUS1", "processor_usage": 10.0, "mem_usage": 50.0},
                 {"id": "BUS2", "processor_usage": 0.0, "mem_usage": 50.0}]}


def test_rocm_cards_sorted_by_name():
    out = parse_rocm('{"card1": {"PCI Bus": "B", "GPU use (%)": "1", "GPU memory use (%)": "2"},'
                     ' "card0": {"PCI Bus": "A", "GPU use (%)": "?", "GPU memory use (%)": "4"}}')
    assert [g["id"] for g in out["gpus"]] == ["A", "B"]
    assert out["gpus"][0]["processor_usage"] == 0.0


def test_a_failing_tool_leaves_its_field_null(tmp_path, monkeypatch, caplog):
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho broken >&2\nexit 9\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    state = HwMonitor(nvidia=True, amd=True).sample()["state"]
    assert state["nvidia_gpus"] is None and state["amd_gpus"] is None  # rocm-smi missing
    assert sum(r.levelname == "ERROR" for r in caplog.records) == 2


@pytest.mark.parametrize("nvidia, amd", [(False, False)])
def test_no_gpu_resources_no_tools(nvidia, amd):
    state = HwMonitor(nvidia, amd).sample()["state"]
    assert state["nvidia_gpus"] is None and state["amd_gpus"] is None
