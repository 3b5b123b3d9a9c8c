"""Layout transforms alone: TOPI's x86 injective schedule against the packed-layout schedule.

    python bench/layout_transforms.py            # host target, 2 threads, 11 rounds

The cases are what AlterOpLayout leaves between convolutions and at a network's edges: packing
a graph input, unpacking, re-blocking between two convs that chose different blocks, and the
unpack, channel pad and repack of a widening residual (BlazeFace). Each is built twice in this
process from the same TOPI compute, once with ``topi.x86.schedule_injective`` (what stock TVM
0.19 schedules every CPU ``layout_transform`` with) and once with
``topi.x86.packed_layout_transform.schedule_layout_transform`` (what the patch registers),
checked equal, and timed by TVM's ``time_evaluator`` in alternating rounds (median of the
rounds' means). Writes
``docs/layout-transforms.md`` and ``.json``.
"""

# the benchmark's modules are imported once their directory is on sys.path
# pylint: disable=wrong-import-position
import argparse
import datetime
import json
import os
import sys
import time

import numpy as np

import tvm
from tvm import te, topi
from tvm.topi.x86 import packed_layout_transform

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402
from timing import alternating_medians  # noqa: E402

# (label, input shape, source layout, destination layout, channels after a pad or None)
CASES = [
    ("pack graph input", (1, 32, 56, 56), "NCHW", "NCHW16c", None),
    ("pack graph input", (1, 28, 56, 56), "NCHW", "NCHW14c", None),
    ("pack graph input", (1, 32, 56, 56), "NCHW", "NCHW8c", None),
    ("pack NHWC input", (1, 128, 128, 3), "NHWC", "NCHW3c", None),
    ("re-block", (1, 1, 64, 64, 16), "NCHW16c", "NCHW8c", None),
    ("re-block", (1, 2, 64, 64, 8), "NCHW8c", "NCHW16c", None),
    ("re-block", (1, 4, 28, 28, 12), "NCHW12c", "NCHW16c", None),
    ("re-block", (1, 3, 28, 28, 16), "NCHW16c", "NCHW12c", None),
    ("re-block", (1, 8, 14, 14, 14), "NCHW14c", "NCHW16c", None),
    ("re-block", (1, 2, 32, 32, 16), "NCHW16c", "NCHW4c", None),
    ("channel pad", (1, 2, 64, 64, 12), "NCHW12c", "NCHW14c", 28),
    ("channel pad", (1, 2, 32, 32, 14), "NCHW14c", "NCHW16c", 32),
    ("channel pad", (1, 2, 32, 32, 16), "NCHW16c", "NCHW12c", 36),
    ("channel pad", (1, 5, 16, 16, 16), "NCHW16c", "NCHW11c", 88),
    ("channel pad", (1, 8, 8, 8, 11), "NCHW11c", "NCHW16c", 96),
    ("unpack", (1, 2, 56, 56, 16), "NCHW16c", "NCHW", None),
]
SCHEDULES = ("topi injective", "packed")


def _compute(shape, src, dst, padded):
    """The TOPI compute of the case: ``(input placeholder, output)``."""
    x = te.placeholder(shape, name="x")
    if padded is None:
        return x, topi.layout_transform(x, src, dst)
    unpacked = topi.layout_transform(x, src, "NCHW")
    pad = topi.nn.pad(unpacked, [0] * 4, [0, padded - int(unpacked.shape[1]), 0, 0])
    return x, topi.layout_transform(pad, "NCHW", dst)


def _build(x, out, schedule, target):
    """The case built with ``schedule``: ``(timer of a run in ms, output)``."""
    shape = [int(d) for d in x.shape]
    with target:
        if schedule == "packed":
            sch = packed_layout_transform.schedule_layout_transform([out])
        else:
            sch = topi.x86.schedule_injective([out])
    func = tvm.build(sch, [x, out], target)
    data = tvm.nd.array(np.random.default_rng(0).uniform(-1, 1, shape).astype("float32"))
    result = tvm.nd.empty([int(d) for d in out.shape])
    func(data, result)
    # TVM's own loop: a Python call costs about as much as the smallest of these kernels
    evaluator = func.time_evaluator(
        func.entry_name, tvm.cpu(), number=1, repeat=1, min_repeat_ms=run.SLICE_MS
    )
    return (lambda: evaluator(data, result).mean * 1e3), result.numpy()


def measure(target, repeat):
    """Every case built, checked and timed both ways: one record each."""
    records = []
    for i, (label, shape, src, dst, padded) in enumerate(CASES):
        x, out = _compute(shape, src, dst, padded)  # one compute, scheduled both ways
        timers, outputs = {}, []
        for schedule in SCHEDULES:
            timers[schedule], output = _build(x, out, schedule, target)
            outputs.append(output)
        np.testing.assert_array_equal(outputs[0], outputs[1])
        ms = alternating_medians(timers, repeat)
        applies = packed_layout_transform.packed_block(out)
        records.append(
            {
                "case": label,
                "shape": list(shape),
                "src": src,
                "dst": dst,
                "padded_channels": padded,
                "packed_applies": applies is not None,
                **{f"{s}_us": round(ms[s] * 1e3, 2) for s in SCHEDULES},
            }
        )
        print(f"[{i + 1}/{len(CASES)}] {label} {src}->{dst}", file=sys.stderr)
    return records


def markdown(meta, records):
    """The report of ``records`` as Markdown."""
    lines = [
        "# Layout transforms alone: TOPI's injective schedule and the packed one",
        "",
        f"- Date: {meta['date']} (run took {meta['minutes']} min)",
        f"- Command: `{meta['command']}`",
        f"- Machine: {meta['machine']}; target `{meta['target']}`; {run.THREADS} threads",
        f"- Medians of {meta['repeat']} alternating rounds; the two builds' outputs equal",
        "",
        "Ratio below 1: the packed schedule is faster. Where it leaves a case to TOPI's "
        "schedule (*TOPI*: a block that is a slice of the source's, an unpacked output), "
        "both builds are the same code: a control of the noise.",
        "",
        "| case | input | from | to | schedule | TOPI injective us | packed us | packed ÷ TOPI |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in records:
        pad = f" (pad to {r['padded_channels']})" if r["padded_channels"] else ""
        ratio = r["packed_us"] / r["topi injective_us"]
        lines.append(
            f"| {r['case']}{pad} | {'x'.join(map(str, r['shape']))} | {r['src']} | {r['dst']} | "
            f"{'packed' if r['packed_applies'] else 'TOPI'} | "
            f"{r['topi injective_us']:.2f} | {r['packed_us']:.2f} | {ratio:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv):
    """Measures every case; writes the report's .json and .md and prints the Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--out-prefix", default=os.path.join(run.DOCS, "layout-transforms"))
    args = parser.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(run.THREADS)
    target = tvm.target.Target(f"llvm -mcpu={tvm.target.codegen.llvm_get_system_cpu()}")
    start = time.time()
    records = measure(target, args.repeat)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": round((time.time() - start) / 60, 1),
        "command": "python bench/layout_transforms.py " + " ".join(argv),
        "machine": run.machine(),
        "target": str(target),
        "repeat": args.repeat,
    }
    with open(args.out_prefix + ".json", "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
    with open(args.out_prefix + ".md", "w", encoding="utf-8") as f:
        f.write(markdown(meta, records))
    print(markdown(meta, records))


if __name__ == "__main__":
    main(sys.argv[1:])
