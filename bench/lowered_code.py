"""Digests of the code the patch generates, to show that a refactoring changes none of it.

    .venv/bin/python bench/lowered_code.py --out /tmp/before.json [--fuzz 150] [--configs 6]
    ... change the templates ...
    .venv/bin/python bench/lowered_code.py --cases /tmp/before.json --out /tmp/after.json

It builds, with the patch on at opt_level 3, every per-layer workload (``bench/workloads.py``)
in NCHW and NHWC, float32 and int8 (qnn), and ``--fuzz`` random convolutions of the
differential fuzzer (every layout pair, dtype, form and epilogue), for an AVX2, an AVX-512 and
an AArch64 target, and records a digest of each build's LLVM IR (or its error). It also
instantiates ``--configs`` configurations of every AutoTVM depthwise task of the per-layer
workloads (the x86 and ARM templates, and the packed one) and records the size of each space
and a digest of each configuration's lowered TIR: the tuned path, not only the fallback.

With ``--cases`` it draws nothing: it re-uses the cases recorded in that earlier result and
prints every entry whose digest differs (exit 1 if any).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FUZZ_DIR = HERE.parent / "tests" / "python" / "relay"
sys.path[:0] = [str(HERE), str(FUZZ_DIR), str(HERE.parent / "tests")]
# the fallback configurations, not TVM's downloaded logs (this machine has no network anyway)
os.environ["TOPHUB_LOCATION"] = "NONE"

# pylint: disable=wrong-import-position  # after the paths above
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed

import tvm
from tvm import autotvm

import depthwise_fuzz
from depthwise_fuzz import Case, TARGETS
from stock_tvm import llvm_ir_digest
from workloads import WORKLOADS

SEED = 20261208


def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _draw_cases(count):
    """``count`` cases of the fuzzer's strategy, from a fixed seed."""
    drawn = []

    @hypothesis_seed(SEED)
    @settings(
        max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(depthwise_fuzz.cases())
    def _collect(case):
        drawn.append(case)

    _collect()  # pylint: disable=no-value-for-parameter  # hypothesis's @given fills it
    return drawn[:count]


def _case(fields):
    """A :class:`Case` from its JSON fields (lists back to tuples)."""
    return Case(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def _workload_cases():
    """The per-layer workloads as fuzzer cases: NCHW/OIHW and NHWC/HWOI, float32 and qnn."""
    found = []
    for work in WORKLOADS:
        pads = tuple(work.pads)
        for layouts in (("NCHW", "OIHW"), ("NHWC", "HWOI")):
            for dtype in ("float32", depthwise_fuzz.QNN):
                found.append(
                    Case(
                        1,
                        work.C,
                        work.m,
                        work.H,
                        work.W,
                        (work.kh, work.kw),
                        (work.stride, work.stride),
                        (1, 1),
                        pads,
                        *layouts,
                        dtype,
                        "canonical",
                        "constant",
                        "bias_relu",
                        True,
                    )
                )
    return found


def _build_digest(case, target):
    mod, params, _, _ = depthwise_fuzz.make_model(case)
    try:
        lib = depthwise_fuzz.build(mod, target, params, patch_on=True)
    except Exception as error:  # pylint: disable=broad-except  # an error is a result too
        return "error: " + depthwise_fuzz.last_line(error)
    # object addresses, which TVM prints into the IR, left out
    return llvm_ir_digest(lib)[:16]


def _valid_indices(space, count, rng):
    """Up to ``count`` distinct random indices of ``space`` its filter allows, sorted."""
    picks = set()
    for _ in range(100 * count):
        if len(picks) == count:
            break
        index = int(rng.integers(space.range_length))
        if space.is_index_valid(index):
            picks.add(index)
    return sorted(picks)


def _task_digests(configs):
    """Space sizes and lowered TIR digests of ``configs`` configurations of every depthwise
    task of the per-layer workloads."""
    found = {}
    rng = np.random.default_rng(SEED)
    templates = {
        "avx2": ("depthwise_conv2d_canonical.x86", "depthwise_conv2d_canonical_packed.x86"),
        "avx512": ("depthwise_conv2d_canonical.x86",),
        "aarch64": ("depthwise_conv2d_canonical.arm_cpu",),
    }
    for work in WORKLOADS:
        pads = list(work.pads)
        for data_layout, kernel_layout, data_shape, kernel_shape in (
            ("NCHW", "OIHW", (1, work.C, work.H, work.W), (work.C * work.m, 1, work.kh, work.kw)),
            ("NHWC", "HWOI", (1, work.H, work.W, work.C), (work.kh, work.kw, work.C * work.m, 1)),
        ):
            args = (
                ("TENSOR", data_shape, "float32"),
                ("TENSOR", kernel_shape, "float32"),
                [work.stride, work.stride],
                pads,
                [1, 1],
                data_layout,
                kernel_layout,
                "float32",
            )
            for target_name, names in templates.items():
                for name in names:
                    if "packed" in name and (data_layout != "NCHW" or work.m != 1):
                        continue
                    key = f"{name}/{target_name}/{work.name}/{data_layout}"
                    target = TARGETS[target_name]
                    task = autotvm.task.create(name, args=args, target=target)
                    space = task.config_space
                    found[key + "/space"] = str(len(space))
                    for index in _valid_indices(space, configs, rng):
                        with target:
                            sch, tensors = task.instantiate(space.get(index))
                            text = str(tvm.lower(sch, tensors, simple_mode=True))
                        found[f"{key}/{index}"] = _digest(text)
    return found


def main(argv=None):
    """Record the digests; compare with an earlier record where one is given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", type=Path, help="an earlier result: its cases, compared")
    parser.add_argument("--fuzz", type=int, default=150)
    parser.add_argument("--configs", type=int, default=6, help="0: no AutoTVM tasks")
    args = parser.parse_args(argv)
    earlier = json.loads(args.cases.read_text()) if args.cases else None
    if earlier:
        fuzz = [_case(fields) for fields in earlier["fuzz_cases"]]
    else:
        fuzz = _draw_cases(args.fuzz)
    result = {"fuzz_cases": [dataclasses.asdict(case) for case in fuzz], "digests": {}}
    for index, case in enumerate(_workload_cases() + fuzz):
        for target_name, target in TARGETS.items():
            result["digests"][f"build/{index}/{target_name}"] = _build_digest(case, target)
        print(f"built {index + 1}", file=sys.stderr, flush=True)
    if args.configs:
        result["digests"].update(_task_digests(args.configs))
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{len(result['digests'])} digests -> {args.out}")
    if not earlier:
        return 0
    before, after = earlier["digests"], result["digests"]
    if not args.configs:  # compare what was made
        before = {key: value for key, value in before.items() if key.startswith("build/")}
    changed = sorted(
        key for key in before.keys() | after.keys() if before.get(key) != after.get(key)
    )
    for key in changed:
        print(f"changed: {key}: {before.get(key)} -> {after.get(key)}")
    print(f"{len(changed)} of {len(after)} differ")
    return int(bool(changed))


if __name__ == "__main__":
    sys.exit(main())
