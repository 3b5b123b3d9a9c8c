"""Tune the depthwise template with AutoTVM and compare the tuned kernel with the fallback.

    python bench/tune.py [--workloads NAME,...] [--input canon|tflite] [--trials N]

For each workload, extracts the ``depthwise_conv2d_canonical.x86`` task from the Relay module
(``canon``: NCHW with the canonical weight; ``tflite``: the .tflite model, NHWC), tunes it with
AutoTVM's random tuner for ``--trials`` configurations, measures the fastest few of them and
the analytic fallback's config again in interleaved rounds (AutoTVM's local builder and
runner) and logs each one's median, then builds the module twice in this
process, untuned (the analytic fallback) and under ``autotvm.apply_history_best`` of the log,
with the benchmark worker's ``build``, which checks each against the NumPy reference, and
times them in alternating rounds (2 threads). Writes ``docs/tuning.md``.
"""

# the benchmark's modules are imported once their directory is on sys.path
# pylint: disable=wrong-import-position
# TVM is imported once the arguments are checked (as in tvm_worker.py: where it is used)
# pylint: disable=import-outside-toplevel
import argparse
import contextlib
import os
import sys
import tempfile
import time

os.environ.setdefault("TVM_NUM_THREADS", "2")
os.environ.setdefault("TOPHUB_LOCATION", "NONE")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from reference import reference_output  # noqa: E402
from timing import alternating_medians  # noqa: E402
from tvm_worker import build, relay_conv, tflite_module  # noqa: E402
from workloads import BY_NAME  # noqa: E402

DEFAULT = "mnv1_256x28_s2,mnv2_960x7,m16_32x28,m8_64x14"
TEMPLATE = "depthwise_conv2d_canonical.x86"


def _module(wl, kind):
    """``(mod, params)`` of the workload's input ``kind`` (``canon`` or ``tflite``)."""
    if kind == "tflite":
        mod, params, _ = tflite_module(wl)
        return mod, params
    return relay_conv(wl, wl.weight_canonical()), {}


def tune(wl, kind, trials, target, log, confirm=4, rounds=3):
    """Tune the workload's template tasks and write the chosen record of each into ``log``.

    The random tuner's trials are measured once each into a scratch log; then the ``confirm``
    fastest distinct configs of it and the analytic fallback's config are measured again
    ``rounds`` times, interleaved, and each keeps the median of its rounds, so one lucky
    measurement on a noisy machine does not pick the config. Returns, per task, whether the
    chosen config is the fallback's.
    """
    from tvm import autotvm

    mod, params = _module(wl, kind)
    tasks = [
        t
        for t in autotvm.task.extract_from_program(mod["main"], target=target, params=params)
        if t.name == TEMPLATE
    ]
    if not tasks:
        raise RuntimeError(f"{wl.name}: no {TEMPLATE} task in the module")
    measure = autotvm.measure_option(
        builder=autotvm.LocalBuilder(timeout=60),
        runner=autotvm.LocalRunner(number=20, repeat=3, min_repeat_ms=50, timeout=60),
    )
    picks = []
    for task in tasks:
        scratch = log + ".trials"
        if os.path.exists(scratch):
            os.remove(scratch)
        point = _fallback_point(task)
        fallback = task.config_space.get(point) if point is not None else None
        tuner = autotvm.tuner.RandomTuner(task)
        tuner.tune(
            n_trial=min(trials, len(task.config_space)),
            measure_option=measure,
            callbacks=[autotvm.callback.log_to_file(scratch)],
        )
        ranked = sorted(
            (sum(res.costs) / len(res.costs), inp.config.index)
            for inp, res in autotvm.record.load_from_file(scratch)
            if res.error_no == 0
        )
        indices = []
        for _, index in ranked:
            if index not in indices:
                indices.append(index)
        indices = indices[:confirm]
        if fallback is not None and fallback.index not in indices:
            indices.append(fallback.index)
        inputs = [
            autotvm.MeasureInput(task.target, task, task.config_space.get(i)) for i in indices
        ]
        measure_batch = autotvm.measure.create_measure_batch(task, measure)
        costs = {i: [] for i in indices}
        last = {}
        for _ in range(rounds):
            for inp, res in zip(inputs, measure_batch(inputs)):
                if res.error_no == 0:
                    costs[inp.config.index].append(sum(res.costs) / len(res.costs))
                    last[inp.config.index] = (inp, res)
        del measure_batch
        with open(log, "a") as stream:
            for index, (inp, res) in last.items():
                median = sorted(costs[index])[len(costs[index]) // 2]
                stream.write(autotvm.record.encode(inp, res._replace(costs=(median,))) + "\n")
        best = min(last, key=lambda i, costs=costs: sorted(costs[i])[len(costs[i]) // 2])
        picks.append(fallback is not None and best == fallback.index)
    return picks


def _fallback_point(task):
    """The index in the task's space of the fallback config, or None if it is not in it."""
    from tvm import autotvm

    fallback = autotvm.task.space.FallbackConfigEntity()
    with task.target, autotvm.task.ApplyConfig(fallback):
        task.func(*task.args)
    indices = []
    for name, knob in task.config_space.space_map.items():
        want = fallback[name]
        match = [
            i
            for i, entity in enumerate(knob.entities)
            if (hasattr(want, "size") and list(entity.size[1:]) == list(want.size[1:]))
            or (hasattr(want, "val") and getattr(entity, "val", None) == want.val)
        ]
        if not match:
            return None
        indices.append(match[0])
    return task.config_space.knob2point(indices)


def compare(wl, kind, target, log, rounds=15):
    """Fallback and tuned builds of the workload: their ms per run (medians), both checked."""
    from tvm import autotvm

    expected = reference_output(wl)
    timers = {}
    for label, context in (
        ("fallback", contextlib.nullcontext()),
        ("tuned", autotvm.apply_history_best(log)),
    ):
        with context:
            result, timers[label] = build(kind, wl, target, expected, slice_ms=20)
        if not result["ok"]:
            raise RuntimeError(f"{wl.name} {label}: wrong output (max error {result['err']})")
    return alternating_medians(timers, rounds)


def main(argv=None):
    """Tunes and times each workload; writes the report (docs/tuning.md)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=DEFAULT, help="comma-separated names")
    parser.add_argument("--input", choices=("canon", "tflite"), default="canon")
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "tuning.md"))
    args = parser.parse_args(argv)
    names = [n for n in args.workloads.split(",") if n]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or args.trials < 1:
        parser.error(f"unknown workloads {unknown}" if unknown else "--trials must be >= 1")

    import tvm

    target = "llvm -mcpu=" + tvm.target.codegen.llvm_get_system_cpu()
    rows = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            wl = BY_NAME[name]
            log = os.path.join(tmp, f"{name}.log")
            picks = tune(wl, args.input, args.trials, target, log)
            times = compare(wl, args.input, target, log)
            ratio = times["tuned"] / times["fallback"]
            rows.append(
                (
                    name,
                    wl.describe(),
                    times["fallback"],
                    times["tuned"],
                    ratio,
                    "fallback" if all(picks) else "other",
                )
            )
            print(
                f"{name:22s} fallback {times['fallback']:.4f} ms  tuned {times['tuned']:.4f}"
                f" ms  tuned/fallback {ratio:.2f}",
                flush=True,
            )
    minutes = (time.time() - start) / 60
    default_out = parser.get_default("out")
    out_arg = (
        ""
        if os.path.abspath(args.out) == os.path.abspath(default_out)
        else f" --out {os.path.relpath(args.out)}"
    )
    lines = [
        "# AutoTVM tuning of the depthwise template",
        "",
        f"- Command: `python bench/tune.py --input {args.input} --trials {args.trials}"
        f" --workloads {','.join(names)}{out_arg}` ({minutes:.1f} min)",
        f"- Target `{target}`, 2 threads; random tuner, AutoTVM local builder and runner",
        "- Both builds checked against the NumPy reference; times are medians of 15"
        " alternating rounds of about 20 ms each (graph executor, whole module)",
        "- The tuned choice: the random trials are measured once each; the 4 fastest of"
        " them and the analytic fallback's config are measured 3 more times,"
        " interleaved, and the log keeps each one's median; `apply_history_best` then takes"
        " the fastest of those (column *tuned pick*: the fallback's config or another one)."
        " Where the pick is the fallback, tuned ÷ fallback is the machine's noise.",
        "",
        "| workload | shape | fallback (ms) | tuned (ms) | tuned ÷ fallback | tuned pick |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    lines += [f"| `{n}` | {d} | {f:.4f} | {t:.4f} | {r:.2f} | {s} |" for n, d, f, t, r, s in rows]
    with open(args.out, "w") as stream:
        stream.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
