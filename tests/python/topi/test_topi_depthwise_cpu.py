"""The CPU description the depthwise fallback is a model of: derived from the target."""

import ast
import os
import subprocess
import sys

import pytest

import tvm
import tvm.testing
import tvm.relay  # activates the patch's import hook before the project's topi modules load
from tvm import autotvm, te
from tvm.target import codegen
from tvm.topi.generic import depthwise_cpu
from tvm.topi.x86 import depthwise_conv2d_canonical as x86_template
from tvm.topi.generic.depthwise_cpu import describe_cpu

X86 = os.path.dirname(x86_template.__file__)
# the modules of the templates and of the CPU description they read
MODULES = sorted(
    os.path.join(X86, name)
    for name in os.listdir(X86)
    if name.startswith("depthwise") and name.endswith(".py")
) + [depthwise_cpu.__file__]
ARM_TARGET = "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon"


@pytest.mark.parametrize(
    "target,lanes,registers",
    [
        ("llvm -mcpu=haswell", 8, 16),
        ("llvm -mcpu=znver3", 8, 16),
        ("llvm -mcpu=znver5", 16, 32),
        ("llvm -mcpu=skylake-avx512", 16, 32),
        # the instruction sets decide, not the CPU's name
        ("llvm -mcpu=skylake-avx512 -mattr=-avx512f", 8, 16),
        ("llvm -mcpu=x86-64-v4", 16, 32),
        ("llvm -mcpu=nehalem", 4, 16),
        ("llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon", 4, 32),
    ],
)
def test_vector_width_and_registers_come_from_the_instruction_sets(target, lanes, registers):
    cpu = describe_cpu(target)
    assert (cpu.lanes, cpu.vector_registers) == (lanes, registers)


@pytest.mark.parametrize(
    "target,int8_lanes",
    [
        ("llvm -mcpu=haswell", 8),
        ("llvm -mcpu=skylake-avx512", 16),
        ("llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon", 16),
    ],
)
def test_8bit_data_fills_a_neon_register_and_its_sums_take_four(target, int8_lanes):
    """On NEON a vector of 8-bit data is a whole register (16), whose 32-bit sums take four
    registers; on x86 8-bit data keeps the vectors of the 32-bit lanes."""
    cpu = describe_cpu(target)
    assert cpu.vector_lanes("int8") == cpu.vector_lanes("uint8") == int8_lanes
    assert cpu.vector_lanes("float32") == cpu.lanes
    assert cpu.sum_registers(int8_lanes) == int8_lanes // cpu.lanes
    assert cpu.sum_registers(cpu.lanes) == cpu.sum_registers(1) == 1


def test_a_target_that_is_not_the_host_takes_the_documented_defaults():
    other = "znver3" if codegen.llvm_get_system_cpu() != "znver3" else "haswell"
    cpu = describe_cpu(f"llvm -mcpu={other}")
    assert cpu.l1d_bytes == depthwise_cpu.DEFAULT_L1D_BYTES == 32 * 1024
    assert cpu.l2_bytes == depthwise_cpu.DEFAULT_L2_BYTES == 512 * 1024
    assert cpu.line_bytes == 64


def _fake_caches(root, caches):
    for index, (level, kind, size) in enumerate(caches):
        entry = root / f"index{index}"
        entry.mkdir()
        (entry / "level").write_text(f"{level}\n")
        (entry / "type").write_text(f"{kind}\n")
        (entry / "size").write_text(f"{size}\n")


def test_the_host_target_reads_the_host_caches(tmp_path, monkeypatch):
    _fake_caches(
        tmp_path,
        [
            (1, "Data", "48K"),
            (1, "Instruction", "32K"),
            (2, "Unified", "2048K"),
            (3, "Unified", "105M"),
        ],
    )
    monkeypatch.setattr(depthwise_cpu, "CACHE_ROOT", str(tmp_path))
    host = describe_cpu(f"llvm -mcpu={codegen.llvm_get_system_cpu()}")
    assert (host.l1d_bytes, host.l2_bytes) == (48 * 1024, 2 * 1024 * 1024)
    # the budgets of the model follow
    assert host.stage_bytes == 36 * 1024 and host.window_bytes == 48 * 1024
    assert host.stream_bytes == 24 * 1024
    # a target naming another CPU does not
    other = "znver3" if codegen.llvm_get_system_cpu() != "znver3" else "haswell"
    assert describe_cpu(f"llvm -mcpu={other}").l1d_bytes == depthwise_cpu.DEFAULT_L1D_BYTES


def test_unreadable_caches_fall_back_to_the_defaults(tmp_path, monkeypatch):
    _fake_caches(tmp_path, [(1, "Data", "lots"), (2, "Unified", "")])
    monkeypatch.setattr(depthwise_cpu, "CACHE_ROOT", str(tmp_path))
    host = describe_cpu("llvm")
    assert (host.l1d_bytes, host.l2_bytes) == (32 * 1024, 512 * 1024)
    monkeypatch.setattr(depthwise_cpu, "CACHE_ROOT", str(tmp_path / "absent"))
    assert describe_cpu("llvm").l1d_bytes == 32 * 1024


def test_threads_come_from_num_cores_else_the_host_only_where_the_target_is_the_host(
    monkeypatch,
):
    other = "znver3" if codegen.llvm_get_system_cpu() != "znver3" else "haswell"
    host = f"llvm -mcpu={codegen.llvm_get_system_cpu()}"
    assert describe_cpu(f"llvm -mcpu={other} -num-cores=12").threads == 12
    assert describe_cpu(f"llvm -mcpu={other} -num-cores=12").min_tasks == 96
    monkeypatch.setenv("TVM_NUM_THREADS", "3")
    assert describe_cpu(host).threads == 3
    # another CPU, or another machine: the build host's threads say nothing of it
    assert describe_cpu(f"llvm -mcpu={other}").threads == depthwise_cpu.DEFAULT_THREADS
    assert describe_cpu(ARM_TARGET).threads == depthwise_cpu.DEFAULT_THREADS
    monkeypatch.delenv("TVM_NUM_THREADS")
    assert describe_cpu(host).threads == max(1, os.cpu_count())
    assert describe_cpu(f"llvm -mcpu={other}").threads == depthwise_cpu.DEFAULT_THREADS


def test_describing_the_cpu_does_not_bind_the_compiling_thread():
    # Starting TVM's thread pool with one thread binds the calling thread to the first core: a
    # compiling process (or two fuzzing workers) would then share that core. In a fresh
    # process, as this one's pool may have started already:
    script = (
        "import os, tvm, tvm.relay\n"
        "from tvm.topi.generic.depthwise_cpu import describe_cpu\n"
        "before = os.sched_getaffinity(0)\n"
        "describe_cpu('llvm -mcpu=znver3')\n"
        "assert os.sched_getaffinity(0) == before, (before, os.sched_getaffinity(0))\n"
    )
    env = {**os.environ, "TVM_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def _fallback(target, channels=64, size=56):
    data = te.placeholder((1, channels, size, size), "float32", name="data")
    weight = te.placeholder((channels, 1, 3, 3), "float32", name="weight")
    args = (data, weight, (1, 1), (1, 1, 1, 1), (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)
    config = autotvm.task.space.FallbackConfigEntity()
    with task.target, autotvm.task.ApplyConfig(config):
        task.func(*task.args)
    return config


def test_the_fallback_reads_the_threads_of_the_target():
    # 64 channel tasks: enough for 2 threads (8 a thread), so a task takes several blocks of
    # rows and stages them once; not enough for 16, which keep one block a task
    few, many = (_fallback(f"llvm -mcpu=znver3 -num-cores={n}") for n in (2, 16))
    assert few["tile_c"].size[-1] == many["tile_c"].size[-1] == 1
    assert few["tile_h"].size[1] > 1
    assert many["tile_h"].size[1] == 1


def test_the_fallback_reads_the_caches_of_the_host(tmp_path, monkeypatch):
    # the rows a task stages at once are bounded by three quarters of L1 (24 channel tasks:
    # enough for several blocks a task, too few to stage whole channels block by block)
    host = f"llvm -mcpu={codegen.llvm_get_system_cpu()} -num-cores=2"
    blocks = {}
    for l1d in ("16K", "64K"):
        root = tmp_path / l1d
        root.mkdir()
        _fake_caches(root, [(1, "Data", l1d), (2, "Unified", "512K")])
        monkeypatch.setattr(depthwise_cpu, "CACHE_ROOT", str(root))
        blocks[l1d] = _fallback(host, channels=24, size=112)["tile_h"].size[1]
    assert blocks["16K"] < blocks["64K"], blocks


def test_no_constant_is_named_after_a_processor():
    processors = ("zen", "znver", "haswell", "skylake", "icelake", "cascadelake", "neoverse")
    for path in MODULES:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read())
        for node in tree.body:
            for target in getattr(node, "targets", []):
                constant = getattr(target, "id", "").lower()
                assert not any(cpu in constant for cpu in processors), (path, constant)


def test_every_file_meant_for_upstream_carries_the_asf_header():
    # the patch's tvm/ tree in this repository (not the imported tvm, which may be a patched
    # copy of all of TVM: tests/scripts/upstream_patch.py --test)
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "python", "tvm")
    first = "# Licensed to the Apache Software Foundation (ASF) under one\n"
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(directory, name), encoding="utf-8") as file:
                    lines = file.readlines()
                assert lines[:1] == [first] and "Apache License, Version 2.0" in "".join(
                    lines[:16]
                ), os.path.join(directory, name)


if __name__ == "__main__":
    tvm.testing.main()
