"""The width-innermost fallback's block of several vectors along a row, timed on x86.

    .venv/bin/python bench/fallback_rows.py [--workload m4_8x22x32_k22x1] [--rounds 15]

Where a register block of the width-innermost (NCHW) family holds every row the layer has (a
tall kernel over one output row), the fallback gives it several vectors along that row. This
builds the layer's x86 template for an AVX2 and an AVX-512 target twice, with the fallback's
configuration and with the same one cut to one vector a block (what the fallback chose before),
checks that both compute the same, and times them in alternating rounds in this process
(``TVM_NUM_THREADS``, 2 by default). Prints the median of the per-round ratios, new / old.
The host must run both targets' code (AVX-512).
"""

# TVM is imported once the arguments are parsed (and TVM_NUM_THREADS defaulted)
# pylint: disable=import-outside-toplevel
import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TVM_NUM_THREADS", "2")

TARGETS = ("llvm -mcpu=haswell -num-cores=2", "llvm -mcpu=skylake-avx512 -num-cores=2")


def _build(template, target, args, config=None):
    """The template built for ``target`` with ``config``, or its fallback (``config`` None).
    Returns the module, the output and the configuration."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.autotvm.task.space import (  # pylint: disable=import-outside-toplevel
        FallbackConfigEntity,
    )

    cfg = FallbackConfigEntity() if config is None else config
    data, weight, *rest = args
    with tvm.target.Target(target) as built_for:
        cpu = template.describe_cpu(built_for)
        out = template.depthwise_conv2d_canonical_cpu(cfg, data, weight, *rest, cpu)
        sch = template.schedule_depthwise_conv2d_canonical_cpu([out])
    return tvm.build(sch, [data, weight, out], target), out, cfg


def main(argv=None):
    """Builds, checks and times both configurations on each target; prints the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--workload", default="m4_8x22x32_k22x1")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=2000, help="calls a round")
    options = parser.parse_args(argv)

    import tvm  # pylint: disable=import-outside-toplevel
    import tvm.relay  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    from tvm import te  # pylint: disable=import-outside-toplevel
    from tvm.autotvm.task.space import (  # pylint: disable=import-outside-toplevel
        ConfigEntity,
        SplitEntity,
    )
    from tvm.topi.x86 import depthwise_conv2d_canonical as template
    from workloads import select  # pylint: disable=import-outside-toplevel

    (workload,) = select([options.workload])
    dev = tvm.cpu()
    rng = np.random.default_rng(0)
    for target in TARGETS:
        for dtype in ("float32", "int8"):
            data = te.placeholder((1, workload.C, workload.H, workload.W), dtype, name="data")
            weight = te.placeholder(
                (workload.C * workload.m, 1, workload.kh, workload.kw), dtype, name="weight"
            )
            out_dtype = "int32" if dtype == "int8" else dtype
            args = (
                data,
                weight,
                (workload.stride,) * 2,
                workload.pads,
                (1, 1),
                ("NCHW", "OIHW"),
                out_dtype,
            )
            new, out, fallback = _build(template, target, args)
            # the fallback's choices with one vector a block (a ConfigEntity: defining the
            # knobs again leaves its entities as they are)
            entities = dict(fallback._entity_map)  # pylint: disable=protected-access
            entities["tile_w"] = SplitEntity([-1, 1, fallback["tile_w"].size[-1]])
            cut = ConfigEntity(-1, None, entities, [])
            old, _, _ = _build(template, target, args, cut)
            assert str(cut) != str(fallback) and cut["tile_w"].size[1] == 1
            feeds = [
                tvm.nd.array(
                    (rng.standard_normal([int(e) for e in t.shape]) * 8).astype(dtype), dev
                )
                for t in (data, weight)
            ]
            results = [tvm.nd.empty([int(e) for e in out.shape], out_dtype, dev) for _ in range(2)]
            new(*feeds, results[0])
            old(*feeds, results[1])
            np.testing.assert_allclose(results[0].numpy(), results[1].numpy(), rtol=1e-5)
            ratios, times = [], []
            for _ in range(options.rounds):
                pair = [
                    module.time_evaluator(module.entry_name, dev, number=options.number)(
                        *feeds, result
                    ).mean
                    for module, result in zip((new, old), results)
                ]
                ratios.append(pair[0] / pair[1])
                times.append(pair)
            new_us, old_us = (np.median([t[i] for t in times]) * 1e6 for i in (0, 1))
            print(
                f"{target} {dtype}: new/old {np.median(ratios):.3f} "
                f"({new_us:.2f} us against {old_us:.2f} us; tile_w {fallback['tile_w'].size} "
                f"against {entities['tile_w'].size})"
            )


if __name__ == "__main__":
    main()
