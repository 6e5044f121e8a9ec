"""The launch-configuration store: what a sweep records and writes is what a kernel then looks up."""

from __future__ import annotations

import json

from kernels import tuning


def test_a_recorded_sweep_is_found_by_device_shape_and_size(tmp_path):
    table = tuning.editable("no-such-kernel")
    assert table == {}
    tuning.record(table, "NVIDIA H100 80GB HBM3", "V=8,D=4,bfloat16", 256, {"BLOCK_N": 64})
    tuning.record(table, "NVIDIA H100 80GB HBM3", "V=8,D=4,bfloat16", 1024, {"BLOCK_N": 128})
    tuning.write("head", table, tmp_path)
    written = json.loads((tmp_path / "head.json").read_text())
    assert tuning.lookup(written, "NVIDIA H100 80GB HBM3", "V=8,D=4,bfloat16", 300) == {"BLOCK_N": 128}
    assert tuning.lookup(written, "NVIDIA H100 80GB HBM3", "V=8,D=4,bfloat16", 256) == {"BLOCK_N": 64}
    assert tuning.lookup(written, "NVIDIA H200", "V=8,D=4,bfloat16", 256) == {}


def test_editing_a_sweeps_copy_leaves_the_stored_table_alone():
    copy = tuning.editable("moe")
    tuning.record(copy, "some GPU", "E=1", 1, {"BLOCK_M": 16})
    assert "some GPU" not in tuning.table("moe")
