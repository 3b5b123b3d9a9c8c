"""Depthwise-convolution benchmark: stock TVM vs the project vs XNNPACK, ONNX Runtime and a
copy; then int8.

The one command (from the repository root, in a venv holding TVM 0.19, the project and
``bench/requirements.txt``)::

    python bench/run.py                      # all 30 workloads, float (about 9 minutes on
                                             # 2 cores), then int8 (a few minutes more)
    python bench/run.py --no-int8            # the float section only
    python bench/run.py --int8-only          # the int8 section only
    python bench/run.py --quick              # a 5-workload smoke run
    python bench/run.py --workloads m4_16x56,mnv1_32x112 --repeat 30

It starts ``bench/tvm_worker.py`` twice, with ``TVM_CANONICALIZE_DEPTHWISE=0`` ("stock") and
``=1`` ("project"), and for each workload in turn asks both workers for their three TVM inputs
(multiplier form, canonical form, TFLite frontend), then measures in this process XNNPACK
through LiteRT, ONNX Runtime and a memory floor (a copy of as many bytes as input + weight +
output). The machine is noisy, so a workload's engines are timed side by side: in each of
``--repeat`` rounds every engine runs for about 20 ms (in alternating order, each after the
last one's threads went idle), and an engine's time is its median over the rounds. Every
output is checked against the NumPy reference. Every engine uses 2 threads (the copy uses one).

Writes ``docs/benchmark.md`` (tables), ``docs/benchmark.png`` (ratio chart) and
``docs/benchmark.json`` (raw); the workers' stderr goes to ``bench/logs/``.

Then the quantized section (issue 15; ``--no-int8`` skips it, ``--int8-only`` runs only it):
each workload as a full-integer int8 TFLite model, ``bench/models/<name>_int8.tflite`` (made by
``make_tflite_models.py --int8``: int8 in and out, per-channel weight scales). Engines: stock
and project TVM on ``relay.frontend.from_tflite`` of that file (``qnn.conv2d``, NHWC, the
multiplier-form HWOI weight; ``opt_level=3``, host target), LiteRT on the same file (XNNPACK
delegate) and ONNX Runtime on a ``QLinearConv`` (``group = C``, the canonical weight, the
model's own quantization parameters). Checks: LiteRT within one quantum of an exact integer
reference (``bench/quant.py``), TVM within one quantum of LiteRT and stock and project
bit-identical, ONNX Runtime's distance from LiteRT reported (within 2 quanta expected, not a
failure). Writes ``docs/benchmark-int8.md``, ``.png``, ``.json`` (``--out-prefix P``: ``P.*``
and ``P-int8.*``).
"""

# the benchmark's modules are imported once their directory is on sys.path
# pylint: disable=wrong-import-position
# the engines' and the report's packages (bench/requirements.txt) are imported where used:
# check_setup() names any that is missing first, and --render needs only matplotlib
# pylint: disable=import-outside-toplevel

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from reference import check, reference_output  # noqa: E402
from timing import settle, slice_timer  # noqa: E402
from workloads import QUICK, WORKLOADS, select  # noqa: E402
import quant  # noqa: E402

DOCS = os.path.join(ROOT, "docs")
LOGS = os.path.join(HERE, "logs")
MODELS = os.path.join(HERE, "models")
THREADS = 2
SLICE_MS = 20  # one timing of one engine runs it for about this long
SWITCH = "TVM_CANONICALIZE_DEPTHWISE"
MODES = {"stock": "0", "project": "1"}
KINDS = ("mult", "canon", "tflite", "packed")
# the input forms of a layer alone (NCHW multiplier and canonical forms, the TFLite file): the
# "worst"/"best" ratios range over these; the packed form sits between packed neighbours and
# is compared with stock's packed layer (``packed_vs_stock_packed``)
ALONE_KINDS = ("mult", "canon", "tflite")
PEERS = ("xnnpack", "ort", "copy")
INT8_KINDS = ("int8",)
INT8_PEERS = ("litert", "ort")


# ---------------------------------------------------------------------------------------------
# TVM workers
class Worker:
    """A worker subprocess (``script``, tvm_worker.py by default) for one mode, restarted if
    it dies."""

    SCRIPT = "tvm_worker.py"
    LOG_PREFIX = "worker"

    def __init__(self, mode, switch=None):
        self.mode = mode
        self.env = dict(os.environ, TOPHUB_LOCATION="NONE", TVM_NUM_THREADS=str(THREADS))
        self.env[SWITCH] = MODES[mode] if switch is None else switch
        self.log_path = os.path.join(LOGS, f"{self.LOG_PREFIX}-{mode}.log")
        self.log = open(self.log_path, "w")
        self.proc = None
        self.died = None  # why the worker died while handling the current workload
        self.hello = self._start()

    def _start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, self.SCRIPT)],
            env=self.env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            bufsize=1,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.mode} TVM worker did not start; see {self.log_path}")
        return json.loads(line)

    def _ask(self, request):
        """The worker's answer, or None if it died (it is then restarted)."""
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if line:
            return json.loads(line)
        self.died = f"TVM worker died (exit code {self.proc.wait()}); see {self.log_path}"
        self._start()
        return None

    def build(self, name, int8_files=None):
        """Build and check the workload's inputs: ``{kind: {ok, err, build_s, error}}``; with
        ``int8_files`` (``{"input", "expected", "output"}``: .npy paths) its int8 input only."""
        self.log.write(f"=== {name}{' int8' if int8_files else ''}\n")
        self.log.flush()
        self.died = None
        self.kinds = INT8_KINDS if int8_files else KINDS
        request = {"op": "build", "name": name, "slice_ms": SLICE_MS}
        if int8_files:
            request.update(kinds=list(INT8_KINDS), int8=int8_files)
        answer = self._ask(request)
        return {k: answer[k] if answer else _failed(self.died) for k in self.kinds}

    def time(self):
        """One timing of each built input: ``{kind: ms or None}``."""
        answer = None if self.died else self._ask({"op": "time"})
        return answer or dict.fromkeys(getattr(self, "kinds", KINDS))

    def close(self):
        """Ends the worker (its stdin closed) and closes its log."""
        self.proc.stdin.close()
        self.proc.wait()
        self.log.close()


def _failed(error):
    return {"ok": False, "err": None, "error": error}


# ---------------------------------------------------------------------------------------------
# engines measured in this process
@contextlib.contextmanager
def _stderr_to(path):
    """Send file descriptor 2 (where native libraries log) to ``path`` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def litert_xnnpack(wl):
    """``(run, output)`` for LiteRT on the .tflite model with its default XNNPACK delegate."""
    from ai_edge_litert.interpreter import Interpreter

    with _stderr_to(os.path.join(LOGS, "litert.log")):  # LiteRT prints INFO lines there
        interp = Interpreter(
            model_path=os.path.join(MODELS, f"{wl.name}.tflite"), num_threads=THREADS
        )
        interp.allocate_tensors()
    if "DELEGATE" not in [op["op_name"] for op in interp._get_ops_details()]:
        raise RuntimeError("LiteRT did not apply the XNNPACK delegate")
    interp.set_tensor(interp.get_input_details()[0]["index"], wl.input_nhwc())
    out_index = interp.get_output_details()[0]["index"]
    return interp.invoke, lambda: interp.get_tensor(out_index).transpose(0, 3, 1, 2)


def onnx_runtime(wl):
    """``(run, output)`` for ONNX Runtime on a Conv(group=C) with the canonical weight."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    oh, ow = wl.out_hw
    out_shape = [1, wl.C * wl.m, oh, ow]
    node = helper.make_node(
        "Conv",
        ["x", "w"],
        ["y"],
        group=wl.C,
        kernel_shape=[wl.kh, wl.kw],
        pads=list(wl.pads),
        strides=[wl.stride] * 2,
        dilations=[wl.dilation] * 2,
    )
    graph = helper.make_graph(
        [node],
        wl.name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, wl.C, wl.H, wl.W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(wl.weight_canonical(), "w")],
    )
    # IR version 10 explicitly: onnx's default can be newer than onnxruntime accepts
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = wl.input_nchw()
    y = np.empty(out_shape, np.float32)
    binding = sess.io_binding()  # preallocated input and output: no per-run allocation
    binding.bind_cpu_input("x", x)
    binding.bind_output("y", "cpu", 0, np.float32, out_shape, y.ctypes.data)

    def run():
        # the binding points into x and y without owning them: this closure keeps them alive
        sess.run_with_iobinding(binding)
        return x, y

    return run, (lambda: y)


def _page_aligned(nbytes):
    """An uninitialized uint8 array of ``nbytes`` that starts on a 4 KiB page."""
    buffer = np.empty(nbytes + 4096, np.uint8)
    start = -buffer.ctypes.data % 4096
    return buffer[start : start + nbytes]


def copy_floor(wl):
    """``(run, None)``: np.copyto of input + weight + output bytes.

    Both buffers start on a page. Where malloc had put the destination 16 bytes past the
    source's offset in a page, the copy of `mnv1_512x14_s2`'s 520 KB took 0.31 ms instead of
    0.02 (glibc's copy on this AMD machine; other offsets measured 0.018-0.021 ms).
    """
    src = _page_aligned(wl.nbytes)
    src[:] = np.random.default_rng(0).integers(0, 255, wl.nbytes, dtype=np.uint8)
    dst = _page_aligned(wl.nbytes)
    return (lambda: np.copyto(dst, src)), None


ENGINES = {"xnnpack": litert_xnnpack, "ort": onnx_runtime, "copy": copy_floor}


def setup_peer(make, wl, expected):
    """``(result dict, timer or None)`` for one in-process engine, its output checked."""
    try:
        run, output = make(wl)
        ok, err = True, None
        if output is not None:
            run()
            ok, err = check(output(), expected)
        return {"ok": ok, "err": err, "error": None}, slice_timer(run, SLICE_MS)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # one failing engine must not stop the run: it is reported as failed
        return _failed(" ".join(f"{type(exc).__name__}: {exc}".split())[:400]), None


def measure(wl, workers, repeat):
    """One workload's record: every engine's check result and the median of ``repeat``
    timings, taken in rounds (each round times every engine once, in alternating order)."""
    expected = reference_output(wl)
    rec = {
        "name": wl.name,
        "shape": wl.describe(),
        "m": wl.m,
        "large": wl.m == 1 and wl.C * wl.H * wl.W >= LARGE_LAYER_ELEMENTS,
    }
    for mode, worker in workers.items():
        rec[mode] = worker.build(wl.name)
    timers = {}
    for peer, make in ENGINES.items():
        rec[peer], timers[peer] = setup_peer(make, wl, expected)
    settle()
    units = list(workers) + list(ENGINES)
    samples = {col: [] for col in COLUMNS}
    for r in range(repeat):
        for unit in units if r % 2 == 0 else reversed(units):
            if unit in workers:
                for kind, ms in workers[unit].time().items():
                    samples[(unit, kind)].append(ms)
            elif timers[unit]:
                samples[(unit, None)].append(timers[unit]())
                settle()  # the workers settle themselves
    for (mode, kind), values in samples.items():
        entry = rec[mode][kind] if kind else rec[mode]
        values = [v for v in values if v is not None]
        entry["ms"] = float(np.median(values)) if values else None
        entry["samples"] = values
    return summarize(rec)


# ---------------------------------------------------------------------------------------------
# summary
def _good(entry):
    return entry["ms"] if entry and entry["ok"] and entry["ms"] is not None else None


def summarize(rec):
    """Add ratio columns (project time / other time: below 1 means the project is faster)."""
    # the layer alone, as a user's model gives it: packed is compared with packed only
    stock = [_good(rec["stock"][k]) for k in ALONE_KINDS]
    proj = [_good(rec["project"][k]) for k in ALONE_KINDS]
    peers = [v for v in (_good(rec["xnnpack"]), _good(rec["ort"])) if v is not None]
    copy = _good(rec["copy"])

    def best(v):
        v = [t for t in v if t is not None]
        return min(v) if v else None

    def worst(v):
        return None if None in v else max(v)

    def ratio(a, b):
        return a / b if a is not None and b is not None else None

    rec["ratios"] = {
        "worst_vs_stock_best": ratio(worst(proj), best(stock)),
        "best_vs_stock_best": ratio(best(proj), best(stock)),
        "worst_vs_faster_peer": ratio(worst(proj), best(peers)),
        "best_vs_faster_peer": ratio(best(proj), best(peers)),
        "worst_vs_copy": ratio(worst(proj), copy),
        "best_vs_copy": ratio(best(proj), copy),
        "packed_vs_stock_packed": ratio(
            _good(rec["project"]["packed"]), _good(rec["stock"]["packed"])
        ),
    }
    return rec


COLUMNS = (
    [("stock", k) for k in KINDS] + [("project", k) for k in KINDS] + [(p, None) for p in PEERS]
)
RATIOS = {
    "worst_vs_stock_best": "project worst ÷ stock best",
    "best_vs_stock_best": "project best ÷ stock best",
    "worst_vs_faster_peer": "project worst ÷ faster peer",
    "best_vs_faster_peer": "project best ÷ faster peer",
    "worst_vs_copy": "project worst ÷ copy floor",
    "best_vs_copy": "project best ÷ copy floor",
    "packed_vs_stock_packed": "project packed ÷ stock packed",
}
# m = 1 layers with at least this many input elements are "large" (the copy-floor target)
LARGE_LAYER_ELEMENTS = 56 * 56 * 96
# the project's targets: (ratio, what it is checked on, bound, how)
TARGETS = [
    ("worst_vs_stock_best", "every workload, every input form", 1.0, "each"),
    ("worst_vs_faster_peer", "geometric mean, every input form", 1.0, "geomean"),
    ("best_vs_faster_peer", "geometric mean, best input form", 1.0, "geomean"),
    ("worst_vs_faster_peer", "every workload, every input form", 1.25, "each"),
    ("best_vs_faster_peer", "every workload, best input form", 1.25, "each"),
    ("worst_vs_copy", "large m = 1 layers, every input form", 1.5, "large"),
    ("best_vs_copy", "large m = 1 layers, best input form", 1.5, "large"),
    # between packed neighbours: stock's depthwise_conv2d_NCHWc, which takes m = 1 only
    ("packed_vs_stock_packed", "every m = 1 workload, packed form", 1.0, "m1"),
]


def stock_cannot_pack(rec):
    """Stock TVM's x86 ``depthwise_conv2d_NCHWc`` asserts ``channel_multiplier == 1``: a packed
    layer with m > 1 exists only with the project (stock's alter-layout never makes one; for
    stock a canonical conv with m > 1 is a group conv, left in NCHW)."""
    entry = rec["stock"]["packed"]
    return rec["m"] > 1 and bool(entry["error"]) and "AssertionError" in entry["error"]


def targets(records):
    """Markdown lines: each target, whether this run met it, and the workloads that missed."""
    lines = ["| target | bound | met | missed by |", "| --- | ---: | --- | --- |"]
    for key, scope, bound, how in TARGETS:
        group = [
            r for r in records if (how != "large" or r["large"]) and (how != "m1" or r["m"] == 1)
        ]
        values = [(r["name"], r["ratios"][key]) for r in group if r["ratios"][key] is not None]
        if how == "geomean":
            value = geomean([v for _, v in values])
            met, missed = value is not None and value <= bound, f"geomean {_fmt(value)}"
        else:
            over = [f"`{name}` {_fmt(v)}" for name, v in values if v > bound]
            met = not over and len(values) == len(group)
            missed = ", ".join(over) or "-"
        lines.append(
            f"| {RATIOS[key]}: {scope} | {bound} | {'yes' if met else '**no**'} | " f"{missed} |"
        )
    return "\n".join(lines)


def _cell(rec, col):
    mode, kind = col
    entry = rec[mode][kind] if kind else rec[mode]
    if (mode, kind) == ("stock", "packed") and stock_cannot_pack(rec):
        return "n/a"
    if entry["error"]:
        return "ERROR"
    if not entry["ok"]:
        return f"WRONG {_ms(entry['ms'])}"
    return _ms(entry["ms"])


def _ms(v):
    """A time in ms to 3 significant digits, never in exponent notation."""
    if v is None:
        return "–"
    return f"{v:.{max(0, 2 - int(np.floor(np.log10(v))))}f}"


def geomean(values):
    """The geometric mean of the values that are not None (None if none is)."""
    values = [v for v in values if v is not None]
    return float(np.exp(np.mean(np.log(values)))) if values else None


def _fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def _problem(entry):
    if entry["error"]:
        return entry["error"]
    if entry["err"] is None:
        return "output has the wrong shape"
    return f"output differs from the reference (max abs error {entry['err']:.3g})"


def markdown(meta, records):
    """The float report (docs/benchmark.md) of ``records``."""
    head = (
        ["workload", "shape"] + [f"{m} {k}" if k else m for m, k in COLUMNS] + list(RATIOS.values())
    )
    rows = [head, ["---"] * 2 + ["---:"] * (len(head) - 2)]
    for rec in records:
        rows.append(
            [f"`{rec['name']}`", rec["shape"]]
            + [_cell(rec, c) for c in COLUMNS]
            + [_fmt(rec["ratios"][r]) for r in RATIOS]
        )
    groups = [
        ("all", records),
        ("m = 1", [r for r in records if r["m"] == 1]),
        ("m > 1", [r for r in records if r["m"] > 1]),
    ]
    for label, group in groups:
        if not group:
            continue
        times = [_ms(geomean([_good(r[m][k] if k else r[m]) for r in group])) for m, k in COLUMNS]
        ratios = [_fmt(geomean([r["ratios"][k] for r in group])) for k in RATIOS]
        rows.append([f"**geomean, {label}**", f"{len(group)} workloads"] + times + ratios)
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)

    problems = [
        f"- `{r['name']}` {m}{' ' + k if k else ''}: " + _problem(e)
        for r in records
        for m, k in COLUMNS
        for e in [r[m][k] if k else r[m]]
        if (e["error"] or not e["ok"])
        and not ((m, k) == ("stock", "packed") and stock_cannot_pack(r))
    ]
    if any(stock_cannot_pack(r) for r in records):
        problems.append(
            "- stock packed **n/a** (m > 1): " + " ".join(stock_cannot_pack.__doc__.split())
        )

    project = meta["workers"]["project"]
    project_note = (
        f"installed, version {project['project']}"
        if project["project"]
        else "**not installed**: the stock and project columns are both stock TVM"
    )
    stock, versions = meta["workers"]["stock"], meta["versions"]
    header = "\n".join(
        [
            f"- Date: {meta['date']} (run took {meta['wall_s'] / 60:.1f} min)",
            f"- Command: `{meta['command']}`",
            f"- Machine: {meta['machine']}",
            f"- TVM {stock['tvm']}, target `{stock['target']}`; project {project_note}",
            f"- Peers: LiteRT {versions['ai_edge_litert']} (XNNPACK delegate), ONNX Runtime "
            f"{versions['onnxruntime']}; NumPy {versions['numpy']}, Python {versions['python']}",
            f"- {THREADS} threads for every engine (the copy floor uses one); times in ms are "
            f"medians over {meta['repeat']} rounds; in each round every engine runs for about "
            f"{SLICE_MS} ms",
        ]
    )
    problems = (
        "\n".join(problems)
        or "None: every engine built and matched the reference on every workload."
    )
    return f"""# Depthwise convolution benchmark

{header}

## How to run

```sh
# once: a venv with TVM 0.19 + the project, plus the bench dependencies
python3 -m venv .venv && .venv/bin/pip install -e . -r bench/requirements.txt
# the benchmark (all workloads, about 9 min on 2 cores); --quick for a smoke run,
# --workloads NAME,... for some, --repeat N for the number of timing rounds;
# without --no-int8 an int8 section follows (benchmark-int8.md), --int8-only runs just that
.venv/bin/python bench/run.py
# only when bench/workloads.py changes: regenerate bench/models/*.tflite (TensorFlow, own venv)
python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 numpy
/tmp/tfvenv/bin/python bench/make_tflite_models.py
```

## What is measured

One depthwise convolution per workload, float32, batch 1, TensorFlow 'SAME' padding (the
`k22x1` workload: 'VALID'). `shape` is C, H×W, kernel, stride, channel multiplier m.

- **stock** is TVM with `{SWITCH}=0`, **project** with `=1`, each in a worker process;
  both build with `relay.build` at `opt_level=3` and run with the graph executor. Their inputs:
  **mult**, NCHW `nn.conv2d` with the multiplier-form weight `[C, m, kh, kw]`;
  **canon**, the same with the canonical weight `[C*m, 1, kh, kw]`;
  **tflite**, `relay.frontend.from_tflite` of `bench/models/<name>.tflite` (NHWC);
  **packed**, `nn.contrib_depthwise_conv2d_NCHWc` packed in and out, `NCHW{{b}}c` with the
  canonical weight `OIHW1i{{b}}o` (b the largest divisor of C up to 16 on AVX-512, 8 on AVX2):
  the layer as x86 alter-layout leaves it between packed neighbours (stock TVM's
  `depthwise_conv2d_NCHWc`).
- **xnnpack**: LiteRT's interpreter on the same .tflite file, XNNPACK delegate (its default).
- **ort**: ONNX Runtime, CPU provider, a `Conv` with `group = C` and the canonical weight, NCHW.
- **copy**: `np.copyto` of as many bytes as input + weight + output, a memory-traffic floor
  (both buffers page aligned: with the destination 16 bytes past the source's page offset,
  as malloc sometimes placed it, the copy ran 15x slower).

Every output is checked against a NumPy reference (rtol = atol = 1e-4). Ratio columns divide a
project time by another time, so **below 1 means the project is faster**: *best* and *worst*
are the fastest and slowest of the project's (or stock's) three inputs of a layer alone
(mult, canon, tflite: with `relay.build`, x86 alter-layout packs an NCHW m = 1 layer and adds
the two `layout_transform`s around it, in stock as in the project); the packed form is
compared with stock's packed form only (`project packed ÷ stock packed`); the *faster peer* is
the faster of XNNPACK and ONNX Runtime. Geometric means are over the workloads with a value.

The machine is small and shared, so absolute times drift from run to run (and a run made while
something else was busy reads slower throughout). The engines of a workload are timed in
alternating rounds, so the ratios are the robust part.

## Targets

{targets(records)}

## Results (ms)

{table}

![ratios]({meta.get('png', 'benchmark.png')})

## Errors and wrong outputs

{problems}
"""


def chart(
    records,
    path,
    ratios=None,
    title="Depthwise conv: project TVM vs stock TVM, peers and a copy floor",
):
    """Horizontal log-scale bars of the ratio columns, one group per workload."""
    ratios = RATIOS if ratios is None else ratios
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = [r["name"] for r in records]
    height = 0.8 / len(ratios)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.42 * len(names)))
    for i, (key, label) in enumerate(ratios.items()):
        ys = [j + (i - (len(ratios) - 1) / 2) * height for j in range(len(names))]
        vals = [r["ratios"][key] or np.nan for r in records]
        ax.barh(ys, vals, height=height, label=label)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    lo, hi = ax.get_xlim()
    ax.set_xticks([t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if lo <= t <= hi])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel("time ratio, log scale (below 1: the project is faster)")
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=9, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# the quantized section: int8 TFLite models, LiteRT and ONNX Runtime QLinearConv as peers
def _int8_model(wl):
    return os.path.join(MODELS, f"{wl.name}_int8.tflite")


def int8_qparams(wl):
    """:class:`quant.QParams` of the workload's int8 model, read with LiteRT (no delegate)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with _stderr_to(os.path.join(LOGS, "litert.log")):
        interp = Interpreter(
            model_path=_int8_model(wl),
            experimental_op_resolver_type=(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
        )
        interp.allocate_tensors()
    return quant.read_qparams(interp)


def litert_int8(wl, _qp, x):
    """``(run, output)`` for LiteRT (XNNPACK delegate) on the int8 model; output NCHW int8."""
    from ai_edge_litert.interpreter import Interpreter

    with _stderr_to(os.path.join(LOGS, "litert.log")):
        interp = Interpreter(model_path=_int8_model(wl), num_threads=THREADS)
        interp.allocate_tensors()
    if "DELEGATE" not in [op["op_name"] for op in interp._get_ops_details()]:
        raise RuntimeError("LiteRT did not apply the XNNPACK delegate")
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    out_index = interp.get_output_details()[0]["index"]
    return interp.invoke, lambda: interp.get_tensor(out_index).transpose(0, 3, 1, 2)


def qlinearconv_model(wl, qp, dtype):
    """An ONNX ``QLinearConv(group=C)`` with the canonical int8 weight and the TFLite model's
    quantization (per-channel weight scales, weight zero points 0, int32 bias); activations
    ``dtype`` (int8, or uint8 with the zero points moved by 128)."""
    from onnx import TensorProto, helper, numpy_helper

    shift = 128 if dtype == np.uint8 else 0
    elem = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    oh, ow = wl.out_hw
    out_c = wl.C * wl.m
    inits = [
        numpy_helper.from_array(np.array(qp.x_scale, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(qp.x_zero + shift, dtype), "x_zero_point"),
        numpy_helper.from_array(qp.weight, "w"),
        numpy_helper.from_array(qp.w_scale.astype(np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(out_c, np.int8), "w_zero_point"),
        numpy_helper.from_array(np.array(qp.y_scale, np.float32), "y_scale"),
        numpy_helper.from_array(np.array(qp.y_zero + shift, dtype), "y_zero_point"),
    ]
    inputs = [
        "x",
        "x_scale",
        "x_zero_point",
        "w",
        "w_scale",
        "w_zero_point",
        "y_scale",
        "y_zero_point",
    ]
    if qp.bias is not None:
        inits.append(numpy_helper.from_array(qp.bias.astype(np.int32), "B"))
        inputs.append("B")
    node = helper.make_node(
        "QLinearConv",
        inputs,
        ["y"],
        group=wl.C,
        kernel_shape=[wl.kh, wl.kw],
        pads=list(wl.pads),
        strides=[wl.stride] * 2,
        dilations=[wl.dilation] * 2,
    )
    graph = helper.make_graph(
        [node],
        wl.name + "_int8",
        [helper.make_tensor_value_info("x", elem, [1, wl.C, wl.H, wl.W])],
        [helper.make_tensor_value_info("y", elem, [1, out_c, oh, ow])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def onnx_runtime_int8(wl, qp, x):
    """``(run, output)`` for ONNX Runtime's QLinearConv: int8 activations where ONNX Runtime
    takes them, else uint8 (output shifted back to int8). Output NCHW int8."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    errors = []
    for dtype in (np.int8, np.uint8):
        try:
            sess = ort.InferenceSession(
                qlinearconv_model(wl, qp, dtype).SerializeToString(),
                opts,
                providers=["CPUExecutionProvider"],
            )
            break
        except Exception as exc:  # noqa: PERF203  pylint: disable=broad-exception-caught
            # int8 activations unsupported (ORT's errors share no narrower base): try uint8
            errors.append(f"{np.dtype(dtype).name}: {exc}")
    else:
        raise RuntimeError("; ".join(errors))
    xin = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if dtype == np.uint8:
        xin = (xin.astype(np.int16) + 128).astype(np.uint8)
    oh, ow = wl.out_hw
    shape = [1, wl.C * wl.m, oh, ow]
    y = np.empty(shape, dtype)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", xin)
    binding.bind_output("y", "cpu", 0, dtype, shape, y.ctypes.data)

    def run():
        sess.run_with_iobinding(binding)
        return xin, y  # the binding does not own them: keep them alive

    def output():
        return y if dtype == np.int8 else (y.astype(np.int16) - 128).astype(np.int8)

    run.activations = np.dtype(dtype).name
    return run, output


INT8_ENGINES = {"litert": litert_int8, "ort": onnx_runtime_int8}
# how many quanta each engine may be from what it is checked against (ORT: reported only)
INT8_TOLERANCE = {"litert": 1, "ort": 2, "int8": 1}


def measure_int8(wl, workers, repeat):
    """One workload's int8 record (as :func:`measure`): LiteRT checked against the integer
    reference, TVM against LiteRT (and stock against project: bit-identical), ONNX Runtime's
    distance from LiteRT reported."""
    rec = {"name": wl.name, "shape": wl.describe(), "m": wl.m}
    timers, outputs = {}, {}
    try:
        qp = int8_qparams(wl)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # a model LiteRT cannot read is reported for the workload, not fatal to the run
        error = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        rec.update({p: _failed(error) for p in INT8_PEERS})
        rec.update({mode: {"int8": _failed(error)} for mode in workers})
        return summarize_int8(rec)
    rec["qparams"] = qp.to_json()
    x = quant.int8_input_nhwc(wl, qp)
    reference = quant.int8_reference(wl, qp, x)
    for peer in INT8_PEERS:
        try:
            run, output = INT8_ENGINES[peer](wl, qp, x)
            run()
            outputs[peer] = np.array(output())
            against = "reference" if peer == "litert" else "litert"
            diff = quant.quanta(
                outputs[peer], reference if peer == "litert" else outputs.get("litert", reference)
            )
            close = diff is not None and diff <= INT8_TOLERANCE[peer]
            rec[peer] = {
                "ok": close or peer == "ort",
                "close": close,
                "err": diff,
                "error": None,
                "checked_against": against,
                "activations": getattr(run, "activations", "int8"),
            }
            timers[peer] = slice_timer(run, SLICE_MS)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # one failing engine must not stop the run: it is reported as failed
            rec[peer] = _failed(" ".join(f"{type(exc).__name__}: {exc}".split())[:400])
    files = {
        "input": os.path.join(LOGS, f"{wl.name}-int8-input.npy"),
        "expected": os.path.join(LOGS, f"{wl.name}-int8-litert.npy"),
    }
    np.save(files["input"], x)
    np.save(files["expected"], outputs.get("litert", reference).transpose(0, 2, 3, 1))
    for mode, worker in workers.items():
        out = os.path.join(LOGS, f"{wl.name}-int8-{mode}.npy")
        rec[mode] = worker.build(wl.name, dict(files, output=out))
    s, p = rec["stock"]["int8"], rec["project"]["int8"]
    if s.get("output") and p.get("output") and s["error"] is None and p["error"] is None:
        identical = bool(np.array_equal(np.load(s["output"]), np.load(p["output"])))
        rec["identical"] = identical
        p["ok"] = p["ok"] and identical
    else:
        rec["identical"] = None
    settle()
    units = list(workers) + [peer for peer in INT8_PEERS if timers.get(peer)]
    samples = {(mode, "int8"): [] for mode in workers}
    samples.update({(peer, None): [] for peer in INT8_PEERS})
    for r in range(repeat):
        for unit in units if r % 2 == 0 else reversed(units):
            if unit in workers:
                for kind, ms in workers[unit].time().items():
                    samples[(unit, kind)].append(ms)
            else:
                samples[(unit, None)].append(timers[unit]())
                settle()
    for (unit, kind), values in samples.items():
        entry = rec[unit][kind] if kind else rec[unit]
        values = [v for v in values if v is not None]
        entry["ms"] = float(np.median(values)) if values else None
        entry["samples"] = values
    return summarize_int8(rec)


def summarize_int8(rec):
    """Ratio columns of an int8 record (project ÷ other: below 1 means the project is faster)."""

    def ratio(a, b):
        return a / b if a is not None and b is not None else None

    proj, stock = _good(rec["project"]["int8"]), _good(rec["stock"]["int8"])
    peers = {p: _good(rec[p]) for p in INT8_PEERS}
    faster = [v for v in peers.values() if v is not None]
    rec["ratios"] = {
        "vs_stock": ratio(proj, stock),
        "vs_faster_peer": ratio(proj, min(faster) if faster else None),
        "vs_litert": ratio(proj, peers["litert"]),
        "vs_ort": ratio(proj, peers["ort"]),
    }
    return rec


INT8_COLUMNS = [("stock", "int8"), ("project", "int8"), ("litert", None), ("ort", None)]
INT8_RATIOS = {
    "vs_stock": "project ÷ stock",
    "vs_faster_peer": "project ÷ faster peer",
    "vs_litert": "project ÷ LiteRT",
    "vs_ort": "project ÷ ORT QLinearConv",
}
INT8_TARGETS = [
    ("vs_stock", "every workload", 1.0, "each"),
    ("vs_stock", "geometric mean", 1.0, "geomean"),
]


def _int8_cell(rec, col):
    mode, kind = col
    entry = rec[mode][kind] if kind else rec[mode]
    if entry["error"]:
        return "ERROR"
    return _ms(entry["ms"]) if entry["ok"] else f"WRONG {_ms(entry['ms'])}"


def _q(v):
    return "–" if v is None else str(v)


def int8_targets(records):
    """The int8 report's table of its targets: each bound, met or missed by which workloads."""
    lines = ["| target | bound | met | missed by |", "| --- | ---: | --- | --- |"]
    for key, scope, bound, how in INT8_TARGETS:
        values = [(r["name"], r["ratios"][key]) for r in records]
        if how == "geomean":
            value = geomean([v for _, v in values])
            met, missed = value is not None and value <= bound, f"geomean {_fmt(value)}"
        else:
            over = [f"`{n}` {_fmt(v)}" for n, v in values if v is None or v > bound]
            met, missed = not over, ", ".join(over) or "-"
        lines.append(
            f"| {INT8_RATIOS[key]}: {scope} | {bound} | {'yes' if met else '**no**'} "
            f"| {missed} |"
        )
    return "\n".join(lines)


def markdown_int8(meta, records):
    """The int8 report (docs/benchmark-int8.md) of ``records``."""
    head = (
        ["workload", "shape", "stock ms", "project ms", "LiteRT ms", "ORT ms"]
        + list(INT8_RATIOS.values())
        + ["TVM − LiteRT (quanta)", "stock = project", "ORT − LiteRT (quanta)"]
    )
    rows = [head, ["---"] * 2 + ["---:"] * (len(head) - 5) + ["---:", "---", "---:"]]
    for rec in records:
        p, o = rec["project"]["int8"], rec["ort"]
        rows.append(
            [f"`{rec['name']}`", rec["shape"]]
            + [_int8_cell(rec, c) for c in INT8_COLUMNS]
            + [_fmt(rec["ratios"][k]) for k in INT8_RATIOS]
            + [
                _q(p.get("err")),
                {True: "yes", False: "**no**"}.get(rec.get("identical"), "–"),
                _q(o.get("err")) + ("" if o.get("close", True) else " (!)"),
            ]
        )
    groups = [
        ("all", records),
        ("m = 1", [r for r in records if r["m"] == 1]),
        ("m > 1", [r for r in records if r["m"] > 1]),
    ]
    for label, group in groups:
        if not group:
            continue
        times = [
            _ms(geomean([_good(r[m][k] if k else r[m]) for r in group])) for m, k in INT8_COLUMNS
        ]
        ratios = [_fmt(geomean([r["ratios"][k] for r in group])) for k in INT8_RATIOS]
        rows.append(
            [f"**geomean, {label}**", f"{len(group)} workloads"] + times + ratios + ["", "", ""]
        )
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)

    lowered = {}
    for rec in records:
        for mode in ("stock", "project"):
            for conv in rec[mode]["int8"].get("lowered") or []:
                lowered.setdefault((mode, conv), []).append(rec["name"])
    lowered = (
        "\n".join(
            f"- {mode}: `{conv}` ({len(names)} workloads)"
            for (mode, conv), names in sorted(lowered.items())
        )
        or "- (none built)"
    )
    problems = [
        f"- `{r['name']}` {m}{' ' + k if k else ''}: "
        + (
            e["error"]
            or (
                f"{e['err']} quanta from {'LiteRT' if m != 'litert' else 'the reference'}"
                if e.get("err") is not None and e["err"] > INT8_TOLERANCE[k or m]
                else (
                    "differs from stock"
                    if m == "project" and r.get("identical") is False
                    else "wrong output"
                )
            )
        )
        for r in records
        for m, k in INT8_COLUMNS
        for e in [r[m][k] if k else r[m]]
        if e["error"] or not e["ok"]
    ]
    notes = [
        f"- `{r['name']}` ORT: {r['ort']['err']} quanta from LiteRT"
        for r in records
        if r["ort"]["error"] is None and not r["ort"].get("close", True)
    ]
    problems = (
        "\n".join(problems)
        or "None: every engine built and matched what it is checked against on every workload."
    )
    if notes:
        problems += (
            "\n\nONNX Runtime more than 2 quanta from LiteRT (reported, not a failure):\n"
            + "\n".join(notes)
        )
    acts = sorted({r["ort"].get("activations") for r in records if r["ort"]["error"] is None})
    project = meta["workers"]["project"]
    project_note = (
        f"installed, version {project['project']}"
        if project["project"]
        else "**not installed**: the stock and project columns are both stock TVM"
    )
    stock, versions = meta["workers"]["stock"], meta["versions"]
    smoke = (
        (
            f"\n> **Smoke run** (`{meta['command']}`): {len(records)} workload(s), "
            f"{meta['repeat']} rounds, to show the benchmark works end to end; not a "
            "measurement.\n"
        )
        if meta.get("smoke")
        else ""
    )
    return f"""# Depthwise convolution benchmark, int8
{smoke}
- Date: {meta['date']} (the int8 section took {meta['wall_s'] / 60:.1f} min)
- Command: `{meta['command']}`
- Machine: {meta['machine']}
- TVM {stock['tvm']}, target `{stock['target']}`; project {project_note}
- Peers: LiteRT {versions['ai_edge_litert']} (XNNPACK delegate),
  ONNX Runtime {versions['onnxruntime']} (`QLinearConv`, {' / '.join(acts) or '–'} activations)
- {THREADS} threads for every engine; times in ms are medians over {meta['repeat']} rounds; in
  each round every engine runs for about {SLICE_MS} ms

## How to run

```sh
.venv/bin/python bench/run.py --int8-only       # this section only (bench/run.py runs both)
# --quick, --workloads NAME,..., --repeat N as for the float section; --no-int8 skips this
# only when bench/workloads.py changes: regenerate bench/models/*_int8.tflite
/tmp/tfvenv/bin/python bench/make_tflite_models.py --int8
```

## What is measured

One depthwise convolution per workload (the shapes of the float section), full-integer int8:
`bench/models/<name>_int8.tflite`, converted by TensorFlow from the float model with a
representative dataset (int8 input and output, per-tensor activation scales, per-channel
weight scales, int32 bias). The input is the float section's input quantized with the model's
input scale and zero point.

- **stock** / **project**: TVM with `{SWITCH}=0` / `=1`, `relay.frontend.from_tflite` of the
  int8 file (`qnn.conv2d`, NHWC data, HWOI weight `[kh, kw, C, m]`: the multiplier form, which
  the project canonicalizes), `relay.build` at `opt_level=3`, graph executor.
- **LiteRT**: its interpreter on the same file, XNNPACK delegate.
- **ORT**: ONNX Runtime, CPU provider, one `QLinearConv` with `group = C`, NCHW, the canonical
  int8 weight and the TFLite model's scales and zero points (weight zero points 0).

Checks: LiteRT within 1 quantum of an exact integer reference (`bench/quant.py`: integer
accumulation, float64 requantization); TVM within 1 quantum of LiteRT, and the project's
output bit-identical to stock's; ONNX Runtime's distance from LiteRT is reported (up to 2
quanta expected; more is marked (!) but not counted as a failure). Ratio columns divide the
project's time by another: **below 1 means the project is faster**; the *faster peer* is the
faster of LiteRT and ONNX Runtime.

What the int8 conv is after `relay.optimize` (QNN lowered, x86 alter-layout applied):

{lowered}

## Targets

{int8_targets(records)}

## Results (ms)

{table}

![ratios]({meta['png']})

## Errors and wrong outputs

{problems}
"""


def machine():
    """The host's CPU model, core count and system, for the reports."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


# ---------------------------------------------------------------------------------------------
def parse_args(argv):
    """The command line, the workloads selected (``selected``) and ``repeat`` resolved."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {', '.join(QUICK)}; 7 rounds unless --repeat",
    )
    ap.add_argument("--workloads", help="comma-separated workload names (see bench/workloads.py)")
    ap.add_argument("--repeat", type=int, help="timing rounds per workload (default 25)")
    part = ap.add_mutually_exclusive_group()
    part.add_argument(
        "--no-int8",
        action="store_true",
        help="skip the quantized section (int8 TFLite models vs LiteRT and ONNX "
        "Runtime QLinearConv): the float benchmark only",
    )
    part.add_argument(
        "--int8-only",
        action="store_true",
        help="run only the quantized section (bench/models/<name>_int8.tflite)",
    )
    ap.add_argument(
        "--render",
        metavar="PREFIX",
        help="only rewrite PREFIX.md and .png (and -int8) from PREFIX.json: "
        "the tables and targets of a finished run, recomputed",
    )
    ap.add_argument(
        "--out-prefix",
        default=os.path.join(DOCS, "benchmark"),
        help="write PREFIX.md, .png, .json (float) and PREFIX-int8.md, .png, .json "
        "(int8) (default docs/benchmark)",
    )
    args = ap.parse_args(argv)
    names = (
        args.workloads.split(",")
        if args.workloads
        else QUICK if args.quick else [w.name for w in WORKLOADS]
    )
    try:
        args.selected = select([n.strip() for n in names if n.strip()])
    except ValueError as exc:
        ap.error(str(exc))
    if args.repeat is None:
        args.repeat = 7 if args.quick else 25
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def check_setup(workloads, float_part=True, int8_part=False):
    """Exits with a message if a package or a workload's .tflite model the run needs is absent."""
    missing = [
        m
        for m in ("tvm", "tflite", "ai_edge_litert", "onnx", "onnxruntime", "tqdm", "matplotlib")
        if not _importable(m)
    ]
    if missing:
        sys.exit(
            f"error: missing Python packages {', '.join(missing)} in {sys.executable}; "
            "install TVM (pip install -e .) and pip install -r bench/requirements.txt"
        )
    for wanted, suffix, flag in ((float_part, "", ""), (int8_part, "_int8", " --int8")):
        absent = [
            w.name
            for w in workloads
            if wanted and not os.path.exists(os.path.join(MODELS, f"{w.name}{suffix}.tflite"))
        ]
        if absent:
            sys.exit(
                f"error: no {suffix[1:] or 'float'} .tflite model for {', '.join(absent)}; "
                f"run bench/make_tflite_models.py{flag} (see its docstring)"
            )


def _importable(name):
    return importlib.util.find_spec(name) is not None


def write_float(prefix, meta, records):
    """PREFIX.json, .md and .png of the float benchmark."""
    with open(prefix + ".json", "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
    with open(prefix + ".md", "w") as f:
        f.write(markdown(meta, records))
    chart(records, prefix + ".png")


def write_int8(prefix, meta, records):
    """PREFIX-int8.json, .md and .png of the quantized benchmark."""
    with open(prefix + "-int8.json", "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
    with open(prefix + "-int8.md", "w") as f:
        f.write(markdown_int8(meta, records))
    chart(
        records,
        prefix + "-int8.png",
        INT8_RATIOS,
        "Depthwise conv, int8: project TVM vs stock TVM, LiteRT and ONNX Runtime",
    )


def render(prefix):
    """Rewrite PREFIX.* (and PREFIX-int8.*) from the JSON a run wrote, ratios recomputed."""
    if os.path.exists(prefix + ".json"):
        with open(prefix + ".json") as f:
            data = json.load(f)
        write_float(prefix, data["meta"], [summarize(r) for r in data["records"]])
    if os.path.exists(prefix + "-int8.json"):
        with open(prefix + "-int8.json") as f:
            data = json.load(f)
        write_int8(prefix, data["meta"], data["records"])
    return 0


def main(argv):
    """Runs the benchmark (or ``--render``s a run's JSON); 1 if any measurement failed."""
    args = parse_args(argv)
    if args.render:
        return render(os.path.abspath(args.render))
    float_part, int8_part = not args.int8_only, not args.no_int8
    check_setup(args.selected, float_part, int8_part)
    from tqdm import tqdm
    import ai_edge_litert
    import onnxruntime

    os.makedirs(LOGS, exist_ok=True)
    start = time.time()
    workers = {mode: Worker(mode) for mode in MODES}
    records, int8_records = [], []
    if float_part:
        progress = tqdm(args.selected, unit="workload", dynamic_ncols=True)
        for wl in progress:
            progress.set_postfix_str(wl.name)
            records.append(measure(wl, workers, args.repeat))
    float_s = time.time() - start
    if int8_part:
        progress = tqdm(args.selected, unit="workload", dynamic_ncols=True, desc="int8")
        for wl in progress:
            progress.set_postfix_str(wl.name)
            int8_records.append(measure_int8(wl, workers, args.repeat))
    for worker in workers.values():
        worker.close()

    prefix = os.path.abspath(args.out_prefix)
    rel = os.path.relpath(prefix, ROOT)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python "
        + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT)] + list(argv)),
        "machine": machine(),
        "repeat": args.repeat,
        "slice_ms": SLICE_MS,
        "threads": THREADS,
        "wall_s": float_s,
        "png": os.path.basename(prefix) + ".png",
        "workers": {mode: w.hello for mode, w in workers.items()},
        "versions": {
            "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"),
            "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    bad = 0
    if float_part:
        write_float(prefix, meta, records)
        print(f"wrote {rel}.md, .png, .json in {float_s / 60:.1f} min")
        for key, label in RATIOS.items():
            print(f"  geomean {label}: {_fmt(geomean([r['ratios'][key] for r in records]))}")
        bad = sum(1 for r in records for m, k in COLUMNS if not (r[m][k] if k else r[m])["ok"])
        if bad:
            print(f"  {bad} failed or wrong measurements: see {rel}.md")
    if int8_part:
        meta8 = dict(
            meta,
            wall_s=time.time() - start - float_s,
            png=os.path.basename(prefix) + "-int8.png",
            smoke=args.quick or len(int8_records) < len(WORKLOADS),
        )
        write_int8(prefix, meta8, int8_records)
        print(f"wrote {rel}-int8.md, .png, .json in {meta8['wall_s'] / 60:.1f} min")
        for key, label in INT8_RATIOS.items():
            print(
                f"  geomean int8 {label}: "
                f"{_fmt(geomean([r['ratios'][key] for r in int8_records]))}"
            )
        bad8 = sum(
            1 for r in int8_records for m, k in INT8_COLUMNS if not (r[m][k] if k else r[m])["ok"]
        )
        if bad8:
            print(f"  {bad8} failed or wrong int8 measurements: see {rel}-int8.md")
        bad += bad8
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
