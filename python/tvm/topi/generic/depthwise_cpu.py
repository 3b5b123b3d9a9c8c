# Licensed to the Apache Software Foundation (ASF) under one
# or more contributor license agreements.  See the NOTICE file
# distributed with this work for additional information
# regarding copyright ownership.  The ASF licenses this file
# to you under the Apache License, Version 2.0 (the
# "License"); you may not use this file except in compliance
# with the License.  You may obtain a copy of the License at
#
#   http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing,
# software distributed under the License is distributed on an
# "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
# KIND, either express or implied.  See the License for the
# specific language governing permissions and limitations
# under the License.
"""The CPU the depthwise templates schedule for: one description, derived from the target.

The untuned fallback of the CPU depthwise templates is a model of a few parameters of the
processor (vector lanes and registers, level-1 data and level-2 cache sizes, threads) rather
than rules measured on one processor. :func:`describe_cpu` derives them from the target: the
vector width and register count from the instruction sets LLVM enables for its ``-mcpu`` and
``-mattr`` (so ``-mattr=-avx512f`` is an AVX2 target), the cache sizes from the host where the
target is the host, the threads from ``-num-cores``. What the target cannot say takes the
documented defaults below; only a target that is the host (no ``-mtriple`` or ``-mcpu`` other
than the host's) reads the host's caches and threads, so code compiled for a named target is
the same on every build machine.
"""

import os
from dataclasses import dataclass

import tvm
from tvm import target as _target
from tvm.target import codegen

# Level-1 data cache of one core where the target is not the host: the smallest of the cores
# with AVX or NEON that matter (Zen 1-4, Intel cores up to Skylake, Cortex-A72/A76); newer
# cores have 48 KiB (Intel since Ice Lake, Zen 5) or 64 KiB (Neoverse), and a budget sized
# for less only leaves some of theirs unused.
DEFAULT_L1D_BYTES = 32 * 1024
# Level-2 cache of one core where the target is not the host: the L2 of Zen 2 and Zen 3
# cores (Zen 4: 1 MiB, Intel server cores: 1-2 MiB). It only decides where a layer's input is
# taken to stream from L3 (see the streaming rule of the width-innermost fallback).
DEFAULT_L2_BYTES = 512 * 1024
# every x86 and Armv8 core of this century
DEFAULT_LINE_BYTES = 64
# Threads where a target that is not the host names no -num-cores: the big cores of the boards
# and phones TVM cross-compiles for (a Raspberry Pi 4 or 5, a Cortex-A76 cluster), and more
# tasks than a 2-thread host needs, which only makes its tasks smaller.
DEFAULT_THREADS = 4
# where Linux describes the caches of the first CPU
CACHE_ROOT = "/sys/devices/system/cpu/cpu0/cache"


@dataclass(frozen=True)
class CPUDescription:
    """What the fallback model reads of a CPU, and the budgets it derives from it."""

    lanes: int  # 32-bit lanes of a vector register
    vector_registers: int
    l1d_bytes: int  # level-1 data cache of a core
    l2_bytes: int  # level-2 cache of a core
    threads: int  # threads the compiled code runs on
    line_bytes: int = DEFAULT_LINE_BYTES
    # 8-bit lanes a vector of 8-bit data takes where its products widen to 32-bit sums
    # (0: as many as the 32-bit lanes)
    narrow_lanes: int = 0

    def vector_lanes(self, dtype):
        """Elements of ``dtype`` one vector of the templates takes."""
        if self.narrow_lanes and tvm.DataType(dtype).bits == 8:
            return self.narrow_lanes
        return self.lanes

    def sum_registers(self, vector):
        """Registers the 32-bit sums of a vector of ``vector`` elements take."""
        return max(1, -(-vector // self.lanes))

    @property
    def stage_bytes(self):
        """Staged input a task may hold: three quarters of L1, the rest kept for the weights,
        the block's output lines and the stack (24 KiB of a 32 KiB L1, the budget measured)."""
        return self.l1d_bytes * 3 // 4

    @property
    def window_bytes(self):
        """Input a block of channels-innermost columns may read across all channels and still
        hit L1 on its next block: the whole L1 (it is streamed, not reused, past that)."""
        return self.l1d_bytes

    @property
    def stream_bytes(self):
        """Input a task staging strided rows takes at once where the layer's input streams from
        L3: half of L1, long sweeps for the prefetcher that leave room for the rows' reuse."""
        return self.l1d_bytes // 2

    @property
    def min_tasks(self):
        """Parallel tasks wanted before a task takes several blocks of rows: eight a thread, so
        that uneven tasks leave a thread idle an eighth of the layer at worst."""
        return 8 * self.threads


def _host_cache_bytes(level, kinds):
    """The size of the host's cache of ``level`` (one of ``kinds``) from sysfs, or None."""
    root = CACHE_ROOT
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return None
    for entry in entries:
        path = os.path.join(root, entry)
        try:
            with open(os.path.join(path, "level"), encoding="ascii") as file:
                found = int(file.read())
            with open(os.path.join(path, "type"), encoding="ascii") as file:
                kind = file.read().strip()
            with open(os.path.join(path, "size"), encoding="ascii") as file:
                size = file.read().strip()
        except (OSError, ValueError):
            continue
        if found != level or kind not in kinds:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:].upper(), 1)
        digits = size.rstrip("KMGkmg")
        if digits.isdigit():
            return int(digits) * scale
    return None


def _is_host(target):
    triple = target.attrs.get("mtriple", "")
    mcpu = target.attrs.get("mcpu", "")
    return triple in ("", codegen.llvm_get_system_triple()) and mcpu in (
        "",
        codegen.llvm_get_system_cpu(),
    )


def _threads(target):
    cores = int(target.attrs.get("num-cores", 0) or 0)
    if cores > 0:
        return cores
    if not _is_host(target):
        return DEFAULT_THREADS
    # The threads TVM's runtime is told to use, else a thread a CPU of this host. (Asking the
    # runtime itself would start its thread pool, which binds the compiling thread to a core.)
    configured = os.environ.get("TVM_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, os.cpu_count() or 1)


def describe_cpu(target=None):
    """The :class:`CPUDescription` of ``target`` (default: the current target)."""
    target = _target.Target.current() if target is None else _target.Target(target)
    features = set(codegen.llvm_get_cpu_features(target)) if target.kind.name == "llvm" else set()
    narrow = 0  # x86: 8-bit data in vectors of the 32-bit lanes, as measured there
    if "aarch64" in target.attrs.get("mtriple", "") or "neon" in features:
        # 128-bit NEON, 32 registers on AArch64 (16 on 32-bit Arm)
        lanes = 4
        registers = 32 if "aarch64" in target.attrs.get("mtriple", "") else 16
        # a whole register of 8-bit data, widened in halves (sshll/sshll2, smlal/smlal2)
        narrow = 16
    elif "avx512f" in features:
        lanes, registers = 16, 32
    elif "avx" in features:
        lanes, registers = 8, 16
    else:
        lanes, registers = 4, 16  # SSE, or a target whose features LLVM does not list
    l1d, l2 = DEFAULT_L1D_BYTES, DEFAULT_L2_BYTES
    if _is_host(target):
        l1d = _host_cache_bytes(1, ("Data", "Unified")) or l1d
        l2 = _host_cache_bytes(2, ("Unified", "Data")) or l2
    return CPUDescription(lanes, registers, l1d, l2, _threads(target), narrow_lanes=narrow)
