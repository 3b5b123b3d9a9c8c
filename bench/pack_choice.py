"""Packed (NCHW16c) against unpacked NCHW for canonical depthwise workloads, end to end.

    python bench/pack_choice.py [NAME ...]

The measurement behind ``prefers_packed_channels``, the untuned x86 alter-layout rule. For
each workload, builds the canonical NCHW input twice in this process (the benchmark worker's
``build``, which checks it against the NumPy reference), with alter-layout forced to pack
(layout transforms included) and forced not to, and prints the medians of 7 alternating
rounds (2 threads).
"""
import os
import sys

os.environ.setdefault("TVM_NUM_THREADS", "2")
os.environ.setdefault("TOPHUB_LOCATION", "NONE")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from reference import reference_output  # noqa: E402
from timing import alternating_medians  # noqa: E402
from tvm_worker import build  # noqa: E402
from workloads import BY_NAME  # noqa: E402

DEFAULT = [
    "mnv1_512x14", "mnv1_512x14_s2", "mnv1_1024x7", "mnv2_384x14", "mnv2_576x14_s2",
    "mnv2_960x7", "mnv1_256x28_s2", "effb0_672x14_k5", "effb0_672x14_k5_s2",
    "effb0_1152x7_k5", "effb0_144x56_k5_s2",
]


def main(argv):
    names = argv or DEFAULT
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        sys.exit(f"pack_choice.py: unknown workloads {unknown}")
    import tvm
    import tvm.topi.x86.depthwise_conv2d_canonical_alter_op as alter
    from tvm.target.x86 import get_simd_32bit_lanes

    target = "llvm -mcpu=" + tvm.target.codegen.llvm_get_system_cpu()
    with tvm.target.Target(target):
        lanes = get_simd_32bit_lanes()
    rule = alter.prefers_packed_channels
    try:
        for name in names:
            wl = BY_NAME[name]
            expected = reference_output(wl)
            timers = {}
            for packed in (True, False):
                alter.prefers_packed_channels = lambda *args, packed=packed: packed
                result, timers[packed] = build("canon", wl, target, expected, slice_ms=20)
                if not result["ok"]:
                    sys.exit(f"{name}: wrong output (max error {result['err']})")
            times = alternating_medians(timers, 7)
            packed_ms, nchw_ms = times[True], times[False]
            pack = rule(wl.C, wl.m, wl.kw, wl.out_hw[1], lanes)
            print(f"{name:22s} packed {packed_ms:.4f} ms  nchw {nchw_ms:.4f} ms  "
                  f"packed/nchw {packed_ms / nchw_ms:.2f}  rule: {'pack' if pack else 'nchw'}",
                  flush=True)
    finally:
        alter.prefers_packed_channels = rule


if __name__ == "__main__":
    main(sys.argv[1:])
