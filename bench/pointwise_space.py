"""How far AutoTVM can take a network's 1x1 convolutions: stock's ``conv2d_NCHWc.x86`` space.

    python bench/pointwise_space.py [--source mediapipe] [--network hand_landmark_lite]

The 1x1 convolutions of the vendor networks' NCHW path are regular convolutions, which the
project leaves to stock TVM's x86 template; they take most of the node time where a peer still
wins (``docs/vendor-networks.md``). This takes the network's ``conv2d_NCHWc.x86`` tasks with a
1x1 kernel (AutoTVM's task extraction, patch on, the packed blocks alter-layout chose), and
times, for each, the template's untuned configuration and every configuration of its space with
the same channel blocks whose register block is of the fallback's kind (at most 31 columns times
rows), with TVM's ``time_evaluator`` on this machine, 2 threads. Outputs compared with the
fallback's on the same inputs. Results in ``docs/pointwise-space.md`` and ``.json``.
"""

# the benchmark's modules are imported once their directory is on sys.path; TVM after the
# arguments are read
# pylint: disable=wrong-import-position,import-outside-toplevel
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sources  # noqa: E402

DOCS = os.path.join(os.path.dirname(HERE), "docs")


def pointwise_tasks(name, path, target):
    """The network path's ``conv2d_NCHWc.x86`` tasks with a 1x1 kernel, stride 1, no pad, as
    the network runs them: on data and kernel packed in the blocks of the template's untuned
    configuration (what alter-layout packs them in), each distinct workload once."""
    from tvm import autotvm
    from network_worker import import_module

    mod, params, _, _ = import_module(name, path)
    found = {}
    for task in autotvm.task.extract_from_program(mod["main"], params=params, target=target):
        if task.name != "conv2d_NCHWc.x86":
            continue
        data, kernel, strides, pads, dilation, _, _, out_dtype = task.args
        if tuple(kernel[1][2:]) != (1, 1) or tuple(strides) != (1, 1) or any(pads):
            continue
        fallback = _fallback()
        with target:
            task.instantiate(fallback)  # fills in the untuned knobs
        ic_bn, oc_bn = fallback["tile_ic"].size[-1], fallback["tile_oc"].size[-1]
        (batch, in_c, height, width), out_c = data[1], kernel[1][0]
        packed = (
            ("TENSOR", (batch, in_c // ic_bn, height, width, ic_bn), data[2]),
            ("TENSOR", (out_c // oc_bn, in_c // ic_bn, 1, 1, ic_bn, oc_bn), kernel[2]),
            strides,
            pads,
            dilation,
            f"NCHW{ic_bn}c",
            f"NCHW{oc_bn}c",
            out_dtype,
        )
        found.setdefault(packed, autotvm.task.create("conv2d_NCHWc.x86", packed, target))
    return list(found.values())


def _arrays(task, target, dev):
    """Seeded arrays for the task's arguments (the same for every configuration: one compute)
    and the index of its output (the template lists it first; the inputs are placeholders)."""
    import tvm

    with target:
        _, args = task.instantiate(_fallback())
    rng = np.random.default_rng(0)
    arrays = [
        tvm.nd.array(rng.uniform(-1, 1, [int(x) for x in a.shape]).astype(a.dtype), dev)
        for a in args
    ]
    (out,) = [i for i, a in enumerate(args) if not isinstance(a.op, tvm.te.PlaceholderOp)]
    return arrays, out


def _fallback():
    """An untuned configuration: the template fills in its fallback knobs."""
    from tvm import autotvm

    return autotvm.task.space.FallbackConfigEntity()


def _time_us(task, config, arrays, out, target):
    """Microseconds of one run of ``task`` under ``config`` (median of 5) and its output."""
    import tvm

    with target:
        sch, args = task.instantiate(config)
    func = tvm.build(sch, args, target)
    timer = func.time_evaluator(
        func.entry_name, arrays[0].device, number=20, repeat=5, min_repeat_ms=20
    )
    took = timer(*arrays).median * 1e6
    arrays[out].copyfrom(np.zeros(arrays[out].shape, arrays[out].dtype))
    func(*arrays)
    return took, arrays[out].numpy()


def explore(task, target, dev):
    """The fallback's time and the fastest admissible configuration's."""
    data, kernel = task.args[:2]
    ic_block, oc_block = data[1][-1], kernel[1][-1]
    arrays, out = _arrays(task, target, dev)
    fallback = _fallback()
    base, expected = _time_us(task, fallback, arrays, out, target)
    rows = []
    space = task.config_space
    for index in range(len(space)):
        config = space.get(index)
        if config["tile_ic"].size[-1] != ic_block or config["tile_oc"].size[-1] != oc_block:
            continue
        if config["tile_ow"].size[-1] * config["tile_oh"].val >= 32:
            continue
        took, got = _time_us(task, config, arrays, out, target)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        rows.append({"config": str(config), "us": took})
    rows.sort(key=lambda row: row["us"])
    flops = 2 * int(np.prod(kernel[1])) * data[1][2] * data[1][3]
    return {
        "data": list(data[1]),
        "kernel": list(kernel[1]),
        "fallback": str(fallback),
        "fallback_us": base,
        "gflops_fallback": flops / base / 1e3,
        "configs": len(rows),
        "best": rows[0] if rows else None,
    }


def write(results, meta, prefix):
    """The JSON and the Markdown table of the run."""
    with open(prefix + ".json", "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "tasks": results}, f, indent=1)
    lines = [
        "# A network's 1x1 convolutions: stock's conv2d_NCHWc.x86 space against its fallback",
        "",
        f"- Command: `{meta['command']}` ({meta['minutes']:.1f} min)",
        f"- {meta['machine']}; target `{meta['target']}`; 2 threads; TVM's time_evaluator, "
        "medians of 5 repeats",
        "- Configurations: every point of the task's space with the channel blocks of the "
        "untuned configuration (what alter-layout packs in) and a register block of fewer than "
        "32 columns x rows (the fallback's bound); outputs equal to the fallback's; *best* is "
        "the least of 8-14 timings, so biased low by the noise",
        "",
        "| input (NCHWc) | kernel | fallback us | GFLOPS | configs | best us | best ÷ fallback |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ratios = []
    for row in results:
        best = row["best"]
        ratio = best["us"] / row["fallback_us"]
        ratios.append(ratio)
        lines.append(
            f"| {row['data']} | {row['kernel']} | {row['fallback_us']:.1f} | "
            f"{row['gflops_fallback']:.0f} | {row['configs']} | {best['us']:.1f} | {ratio:.2f} |"
        )
    total_fb = sum(r["fallback_us"] for r in results)
    total_best = sum(r["best"]["us"] for r in results)
    lines += [
        "",
        f"Sum over the tasks (each once): fallback {total_fb:.0f} us, best of the space "
        f"{total_best:.0f} us ({total_best / total_fb:.2f}); best ÷ fallback "
        f"{min(ratios):.2f}-{max(ratios):.2f}.",
        "",
    ]
    with open(prefix + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def main(argv=None):
    """Run the exploration and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--source", default="mediapipe", choices=sorted(sources.SOURCES))
    ap.add_argument("--network", default="hand_landmark_lite")
    ap.add_argument("--path", default="tflite_nchw")
    ap.add_argument("--out-prefix", default=os.path.join(DOCS, "pointwise-space"))
    args = ap.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(sources.THREADS))
    os.environ["BENCH_NETWORKS_DIR"] = sources.prepare(args.source, [args.network])
    import tvm
    from run import machine
    from tvm_worker import host_target

    start = time.time()
    target = tvm.target.Target(host_target())
    dev = tvm.cpu()
    tasks = pointwise_tasks(args.network, args.path, target)
    results = []
    for i, task in enumerate(tasks):
        results.append(explore(task, target, dev))
        print(f"{i + 1}/{len(tasks)} {results[-1]['data']}", flush=True)
    meta = {
        "command": " ".join(["python bench/pointwise_space.py"] + (argv or sys.argv[1:])),
        "minutes": (time.time() - start) / 60,
        "machine": machine(),
        "target": str(target),
    }
    write(results, meta, args.out_prefix)
    print(f"wrote {args.out_prefix}.md, .json")


if __name__ == "__main__":
    main()
