"""Whole-network benchmark: stock TVM vs the project vs LiteRT, ONNX Runtime and OpenVINO;
int8 vs LiteRT.

The one command (from the repository root, in the venv of bench/run.py: TVM 0.19, the project
and ``bench/requirements.txt``)::

    python bench/networks.py                          # all 7 networks, float then int8
    python bench/networks.py --int8                   # the 7 quantized networks only
    python bench/networks.py --quick                  # eegnet and mobilenet_v1_a025, 5 rounds
    python bench/networks.py --networks eegnet,multipliers --repeat 20 --noise

The networks are ``bench/networks/*.tflite`` and ``*.onnx``, made by
``bench/make_networks.py`` from Keras (see its docstring). Like ``bench/run.py`` this starts
``bench/network_worker.py`` with ``TVM_CANONICALIZE_DEPTHWISE=0`` ("stock") and ``=1``
("project"), and with ``--noise`` a second stock worker ("stock_b", the noise margin: stock
against stock). For each network in turn both workers build, check and profile three paths
(TFLite as imported, NHWC; TFLite + ``ConvertLayout`` to NCHW; ONNX), and this process sets up
LiteRT (XNNPACK delegate) on the .tflite, ONNX Runtime (CPU provider) and OpenVINO (CPU
plugin, latency hint, f32) on the .onnx. Every engine uses 2 threads and is timed by the same
Python loop (``timing.slice_timer``: back-to-back calls for about 100 ms, input set once,
output buffers reused); in each of ``--repeat`` rounds every engine is timed once, in
alternating order, and an engine's time is its median over the rounds.

Checks: LiteRT and ONNX Runtime against Keras' output (saved by make_networks.py), TVM's
TFLite paths against LiteRT's output, TVM's ONNX path and OpenVINO against ONNX Runtime's.

Quantized networks (issue 15; ``--int8`` runs only them, ``--no-int8`` skips them): the same
networks as full-integer int8 TFLite models (``<name>_int8.tflite`` and ``_int8.npz``, also
made by ``make_networks.py``), through TVM on two paths (TFLite int8 as imported, NHWC; TFLite
int8 + ``ConvertLayout`` NCHW of ``nn.conv2d`` and ``qnn.conv2d``) by the stock and project
workers, and LiteRT int8 (XNNPACK) as the peer (ONNX Runtime and OpenVINO do not apply: there
is no ONNX model with the same integers). Checks: LiteRT against TensorFlow's TFLite
interpreter, TVM against LiteRT, within a few quanta (the largest difference reported), and
the project's output bit-identical to stock's.

Writes ``docs/networks.md``, ``docs/networks.json`` and ``docs/networks.png``, and
``docs/networks-int8.md``, ``.json``, ``.png`` for the quantized networks (``--out-prefix``
changes the ``docs/networks`` part); the workers' stderr goes to
``bench/logs/networks-worker-<mode>.log``.
"""

# the benchmark's modules are imported once their directory is on sys.path
# pylint: disable=wrong-import-position
# the peers' and the report's packages (bench/requirements.txt) are imported where used:
# main() names any that is missing first; TVM runs in the workers only
# pylint: disable=import-outside-toplevel

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (the per-layer benchmark: its worker plumbing and report helpers)
from network_worker import (
    INT8_PATHS,
    INT8_QUANTA,
    NETWORKS_DIR,
    PATHS,
    close,  # noqa: E402
    network_input,
    quanta_close,
)
from run import _fmt, _ms, _stderr_to, geomean, machine  # noqa: E402
from timing import settle, slice_timer  # noqa: E402

ROOT, DOCS, LOGS, THREADS, SWITCH = run.ROOT, run.DOCS, run.LOGS, run.THREADS, run.SWITCH
SLICE_MS = 100
QUICK = ["eegnet", "mobilenet_v1_a025"]
PEERS = ("litert", "ort", "openvino")
PEER_LABELS = {"litert": "LiteRT (XNNPACK)", "ort": "ONNX Runtime", "openvino": "OpenVINO"}
PATH_LABELS = {
    "tflite_nhwc": "TFLite, NHWC as imported",
    "tflite_nchw": "TFLite + ConvertLayout NCHW",
    "onnx": "ONNX, NCHW",
}


def network_index():
    """bench/networks/index.json (or the fetched networks'): a description per network."""
    with open(os.path.join(NETWORKS_DIR, "index.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
class Worker(run.Worker):
    """A network_worker.py subprocess (run.Worker's protocol plumbing, another script)."""

    SCRIPT = "network_worker.py"
    LOG_PREFIX = "networks-worker"

    def build(self, name, expected, paths=PATHS, outputs=None):
        self.log.write(f"=== {name}{' int8' if paths == INT8_PATHS else ''}\n")
        self.log.flush()
        self.died = None
        self.paths = paths
        request = {"op": "build", "network": name, "slice_ms": SLICE_MS, "expected": expected}
        if paths != PATHS:
            request.update(paths=list(paths), outputs=outputs)
        answer = self._ask(request)
        return {p: answer[p] if answer else _failed(self.died) for p in paths}

    def time(self):
        answer = None if self.died else self._ask({"op": "time"})
        return answer or dict.fromkeys(getattr(self, "paths", PATHS))


def _failed(error):
    return {"ok": False, "err": None, "error": error}


# ---------------------------------------------------------------------------------------------
# peers, in this process: each returns (run, output)
def litert(name):
    """``(run, output)``: LiteRT (XNNPACK delegate) on ``<name>.tflite``."""
    from ai_edge_litert.interpreter import Interpreter

    with _stderr_to(os.path.join(LOGS, "litert.log")):
        interp = Interpreter(
            model_path=os.path.join(NETWORKS_DIR, f"{name}.tflite"), num_threads=THREADS
        )
        interp.allocate_tensors()
    if "DELEGATE" not in [op["op_name"] for op in interp._get_ops_details()]:
        raise RuntimeError("LiteRT did not apply the XNNPACK delegate")
    interp.set_tensor(interp.get_input_details()[0]["index"], network_input(name))
    out_index = interp.get_output_details()[0]["index"]
    return interp.invoke, lambda: interp.get_tensor(out_index)


def _nchw_input(name):
    return np.ascontiguousarray(network_input(name).transpose(0, 3, 1, 2))


def onnx_runtime(name):
    """``(run, output)``: ONNX Runtime (CPU provider, preallocated input and output) on
    ``<name>.onnx``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(
        os.path.join(NETWORKS_DIR, f"{name}.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    x = _nchw_input(name)
    shape = list(np.load(os.path.join(NETWORKS_DIR, f"{name}.npz"))["keras_output"].shape)
    y = np.empty(shape, np.float32)
    binding = sess.io_binding()  # input and output preallocated, as for the other engines
    binding.bind_cpu_input(sess.get_inputs()[0].name, x)
    binding.bind_output(sess.get_outputs()[0].name, "cpu", 0, np.float32, shape, y.ctypes.data)

    def call():
        sess.run_with_iobinding(binding)
        return x, y  # the binding does not own x and y: keep them alive

    return call, (lambda: y)


def openvino(name):
    """OpenVINO on the network's ONNX file, or its TFLite file where it has no ONNX (OpenVINO
    reads both; the TFLite one takes the NHWC input)."""
    import openvino as ov

    core = ov.Core()
    onnx = os.path.exists(os.path.join(NETWORKS_DIR, f"{name}.onnx"))
    compiled = core.compile_model(
        core.read_model(os.path.join(NETWORKS_DIR, f"{name}.{'onnx' if onnx else 'tflite'}")),
        "CPU",
        {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": THREADS,
            "INFERENCE_PRECISION_HINT": "f32",
        },
    )  # f32: no bf16 on AVX-512-BF16 hosts
    request = compiled.create_infer_request()
    x = _nchw_input(name) if onnx else network_input(name)
    request.set_input_tensor(ov.Tensor(x))  # a copy: the request owns its input

    def output():  # read after the run, not now
        return request.get_output_tensor(0).data.copy()

    return request.infer, output


ENGINES = {"litert": litert, "ort": onnx_runtime, "openvino": openvino}
# what each peer's output is checked against (where it ran; else the reference output)
PEER_REFERENCE = {"litert": "keras", "ort": "keras", "openvino": "ort"}
# the model files a peer reads: it is left out of a network that has none of them
PEER_READS = {"litert": ("tflite",), "ort": ("onnx",), "openvino": ("onnx", "tflite")}


def absent(peer, name):
    """Whether ``name`` has no model file that ``peer`` reads (e.g. LiteRT on an ONNX export)."""
    return not any(
        os.path.exists(os.path.join(NETWORKS_DIR, f"{name}.{ext}")) for ext in PEER_READS[peer]
    )


def setup_peers(name, keras_out):
    """``({peer: result}, {peer: timer}, {"tflite": npy, "onnx": npy})``."""
    results, timers, outputs = {}, {}, {"keras": keras_out}
    for peer in PEERS:
        if absent(peer, name):
            results[peer] = {"ok": False, "err": None, "error": None, "absent": True}
            continue
        try:
            call, output = ENGINES[peer](name)
            call()
            outputs[peer] = np.array(output()).reshape(keras_out.shape)
            reference = PEER_REFERENCE[peer] if PEER_REFERENCE[peer] in outputs else "keras"
            ok, err = close(outputs[peer], outputs[reference])
            results[peer] = {
                "ok": ok,
                "err": err,
                "error": None,
                "checked_against": reference,
            }
            timers[peer] = slice_timer(call, SLICE_MS)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # one failing engine must not stop the run: it is reported as failed
            results[peer] = _failed(" ".join(f"{type(exc).__name__}: {exc}".split())[:400])
    expected = {}
    for kind, source in (("tflite", "litert"), ("onnx", "ort")):
        path = os.path.join(LOGS, f"{name}-{source}.npy")
        np.save(path, outputs.get(source, keras_out))  # Keras' if the source engine failed
        expected[kind] = path
    return results, timers, expected


def measure(name, workers, repeat):
    """One network's record: every engine's check results and median times, and the ratios."""
    npz = np.load(os.path.join(NETWORKS_DIR, f"{name}.npz"))
    rec = {"network": name, **network_index()[name]}
    peers, timers, expected = setup_peers(name, npz["keras_output"])
    rec.update(peers)
    for mode, worker in workers.items():
        rec[mode] = worker.build(name, expected)
    time_rounds(rec, workers, timers, PATHS, repeat)
    return summarize(rec, list(workers))


def time_rounds(rec, workers, timers, paths, repeat):
    """Time every worker's ``paths`` and every peer timer once per round, in alternating
    order, for ``repeat`` rounds; each entry of ``rec`` gets its median ``ms`` and samples."""
    settle()
    units = list(workers) + list(timers)
    samples = {(m, p): [] for m in workers for p in paths}
    samples.update({(p, None): [] for p in timers})
    for r in range(repeat):
        for unit in units if r % 2 == 0 else reversed(units):
            if unit in workers:
                for path, ms in workers[unit].time().items():
                    samples[(unit, path)].append(ms)
            else:
                samples[(unit, None)].append(timers[unit]())
                settle()
    for (unit, path), values in samples.items():
        entry = rec[unit][path] if path else rec[unit]
        values = [v for v in values if v is not None]
        entry["ms"] = float(np.median(values)) if values else None
        entry["samples"] = values


def _geomean_row(records, path, label, noise, tail):
    """A results table's geomean row for ``path``: project ÷ stock, the noise margin where it
    was measured, depthwise ÷ stock, then ``tail`` (a ratio key each, or None: a blank)."""

    def cell(key):
        return _fmt(geomean([r["ratios"][path][key] for r in records]))

    row = ["**geomean**", label, "", "", cell("project_vs_stock")]
    row += [cell("stock_b_vs_stock")] if noise else []
    row += ["", cell("depthwise_vs_stock")]
    return row + [cell(key) if key else "" for key in tail]


# ---------------------------------------------------------------------------------------------
def _good(entry):
    return entry["ms"] if entry and entry.get("ok") and entry.get("ms") is not None else None


def _ratio(a, b):
    return a / b if a is not None and b is not None else None


def _prof(entry, key):
    p = entry.get("profile") if entry and entry.get("ok") else None
    return p[key] if p else None


def summarize(rec, modes):
    """Ratios (project ÷ other: below 1 means the project is faster)."""
    rec["ratios"] = {}
    for path in PATHS:
        s, p = rec["stock"][path], rec["project"][path]
        rec["ratios"][path] = {
            "project_vs_stock": _ratio(_good(p), _good(s)),
            "depthwise_vs_stock": _ratio(_prof(p, "depthwise_us"), _prof(s, "depthwise_us")),
            "stock_b_vs_stock": (
                _ratio(_good(rec["stock_b"][path]), _good(s)) if "stock_b" in modes else None
            ),
        }
    for mode in ("stock", "project"):
        times = {p: _good(rec[mode][p]) for p in PATHS if _good(rec[mode][p]) is not None}
        best = min(times, key=times.get) if times else None
        rec[f"{mode}_best_path"] = best
        rec[f"{mode}_best_ms"] = times.get(best)
    rec["ratios"]["best"] = {
        f"project_vs_{peer}": _ratio(rec["project_best_ms"], _good(rec[peer])) for peer in PEERS
    }
    rec["ratios"]["best"]["project_vs_stock"] = _ratio(rec["project_best_ms"], rec["stock_best_ms"])
    return rec


# networks whose depthwise convs have channel multipliers > 1
MULTIPLIER_NETWORKS = ("eegnet", "multipliers")
# issue 14's targets: (label, ratio getter, networks/paths it applies to, bound)
TARGETS = [
    ("project ÷ stock, every network, every path", "project_vs_stock", PATHS, None, 1.0),
    (
        "depthwise time project ÷ stock (profile), NCHW and ONNX paths",
        "depthwise_vs_stock",
        ("tflite_nchw", "onnx"),
        None,
        0.6,
    ),
    (
        "project ÷ stock, networks with multipliers > 1, every path",
        "project_vs_stock",
        PATHS,
        MULTIPLIER_NETWORKS,
        1 / 1.5,
    ),
]


def targets(records, noise):
    """Markdown lines: each target, whether this run met it, and what missed it."""
    lines = ["| target | bound | met | missed by |", "| --- | ---: | --- | --- |"]
    for label, key, paths, networks, bound in TARGETS:
        values = [
            (f"`{r['network']}` {p}", r["ratios"][p][key])
            for r in records
            for p in paths
            if networks is None or r["network"] in networks
        ]
        if not values:
            continue
        over = [f"{where} {_fmt(v)}" for where, v in values if v is None or v > bound]
        lines.append(
            f"| {label} | {bound:.2f} | {'**no**' if over else 'yes'} | "
            f"{', '.join(over) or '-'} |"
        )
    if noise:
        spread = [r["ratios"][p]["stock_b_vs_stock"] for r in records for p in PATHS]
        spread = [abs(np.log(v)) for v in spread if v]
        if spread:
            lines.append(
                f"\nNoise margin (stock_b ÷ stock, same build, another process): "
                f"median {np.exp(np.median(spread)):.3f}x, worst "
                f"{np.exp(max(spread)):.3f}x either way."
            )
    return "\n".join(lines)


def _us(v):
    return "–" if v is None else f"{v:.0f}"


def _check(entry):
    if entry.get("error"):
        return "ERROR"
    return "ok" if entry["ok"] else f"WRONG ({_fmt(entry['err'], 3) if entry['err'] else 'shape'})"


def markdown(meta, records, smoke):
    """The float report (docs/networks.md) of ``records``."""
    noise = "stock_b" in meta["workers"]
    head = (
        ["network", "path", "stock ms", "project ms", "project ÷ stock"]
        + (["stock_b ÷ stock"] if noise else [])
        + [
            "depthwise µs stock / project",
            "depthwise ratio",
            "layout_transform µs stock / project",
            "# layout_transform stock / project",
            "profile total µs stock / project",
            "check",
        ]
    )
    rows = [head, ["---"] * 2 + ["---:"] * (len(head) - 3) + ["---"]]
    for rec in records:
        for path in PATHS:
            s, p, r = rec["stock"][path], rec["project"][path], rec["ratios"][path]
            checks = {_check(s), _check(p)}
            rows.append(
                [
                    f"`{rec['network']}`",
                    PATH_LABELS[path],
                    _ms(_good(s)),
                    _ms(_good(p)),
                    _fmt(r["project_vs_stock"]),
                ]
                + ([_fmt(r["stock_b_vs_stock"])] if noise else [])
                + [
                    f"{_us(_prof(s, 'depthwise_us'))} / {_us(_prof(p, 'depthwise_us'))}",
                    _fmt(r["depthwise_vs_stock"]),
                    f"{_us(_prof(s, 'layout_transform_us'))} / "
                    f"{_us(_prof(p, 'layout_transform_us'))}",
                    f"{s.get('layout_transforms', '–')} / {p.get('layout_transforms', '–')}",
                    f"{_us(_prof(s, 'total_us'))} / {_us(_prof(p, 'total_us'))}",
                    "ok" if checks == {"ok"} else " / ".join(sorted(checks)),
                ]
            )
    for path in PATHS:
        rows.append(_geomean_row(records, path, PATH_LABELS[path], noise, [None] * 4))
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)

    phead = (
        ["network", "fastest project path", "project ms", "fastest stock ms"]
        + [f"{PEER_LABELS[p]} ms" for p in PEERS]
        + [f"project ÷ {PEER_LABELS[p]}" for p in PEERS]
    )
    prows = [phead, ["---"] * 2 + ["---:"] * (len(phead) - 2)]
    for rec in records:
        prows.append(
            [
                f"`{rec['network']}`",
                PATH_LABELS.get(rec["project_best_path"], "–"),
                _ms(rec["project_best_ms"]),
                _ms(rec["stock_best_ms"]),
            ]
            + [_ms(_good(rec[p])) if rec[p]["ok"] else _check(rec[p]) for p in PEERS]
            + [_fmt(rec["ratios"]["best"][f"project_vs_{p}"]) for p in PEERS]
        )
    prows.append(
        ["**geomean**", "", "", ""]
        + [""] * len(PEERS)
        + [_fmt(geomean([r["ratios"]["best"][f"project_vs_{p}"] for r in records])) for p in PEERS]
    )
    peer_table = "\n".join("| " + " | ".join(row) + " |" for row in prows)

    nets = "\n".join(
        f"- `{r['network']}`: {r['description']}; {r['params']} parameters, "
        f"{r['tflite_depthwise']} depthwise convs"
        for r in records
    )
    problems = [
        f"- `{r['network']}` {m} {p}: {_float_problem(e)}"
        for r in records
        for m in meta["workers"]
        for p in PATHS
        for e in [r[m][p]]
        if not e["ok"]
    ] + [
        f"- `{r['network']}` {p}: {_float_problem(r[p])}"
        for r in records
        for p in PEERS
        if not r[p]["ok"]
    ]
    problems = "\n".join(problems) or "None: every engine built and matched its reference."
    project, versions = meta["workers"]["project"], meta["versions"]
    project_note = (
        f"installed, version {project['project']}"
        if project["project"]
        else "**not installed**: the stock and project columns are both stock TVM"
    )
    smoke_note = (
        (
            f"\n> **Smoke run** (`{meta['command']}`): {len(records)} network(s), "
            f"{meta['repeat']} rounds, to show the benchmark works end to end. Not the "
            "full measurement; the times are not the project's results.\n"
        )
        if smoke
        else ""
    )
    return f"""# Whole-network benchmark
{smoke_note}
- Date: {meta['date']} (run took {meta['wall_s'] / 60:.1f} min)
- Command: `{meta['command']}`
- Machine: {meta['machine']}
- TVM {meta['workers']['stock']['tvm']}, target `{meta['workers']['stock']['target']}`; project {project_note}
- Peers: LiteRT {versions['ai_edge_litert']} (XNNPACK), ONNX Runtime {versions['onnxruntime']},
  OpenVINO {versions['openvino']} (CPU, latency hint, f32); Python {versions['python']}
- {THREADS} threads for every engine; times are medians over {meta['repeat']} rounds, in each
  round every engine runs back to back for about {SLICE_MS} ms

## How to run

```sh
python3 -m venv .venv && .venv/bin/pip install -e . -r bench/requirements.txt
.venv/bin/python bench/networks.py            # all networks; --quick: 2 networks, 5 rounds
# --networks a,b  --repeat N  --noise (a second stock worker: the noise margin)
# the quantized networks follow (networks-int8.md): --no-int8 skips them, --int8 runs only them
# only to remake bench/networks/ (TensorFlow in its own venv): see bench/make_networks.py
```

## What is measured

Networks (Keras, seeded random weights, batch 1; `bench/make_networks.py`):

{nets}

Paths through TVM (`relay.build`, `opt_level=3`, graph executor): **{PATH_LABELS['tflite_nhwc']}**
(`relay.frontend.from_tflite`), **{PATH_LABELS['tflite_nchw']}** (then
`ConvertLayout({{"nn.conv2d": ["NCHW", "default"], ...}})`, which x86 alter-layout packs to
NCHW{{b}}c), **{PATH_LABELS['onnx']}** (`relay.frontend.from_onnx`, same weights). **stock** is
TVM with `{SWITCH}=0`, **project** with `=1`, each in its own worker process.

Every engine is timed by the same Python loop (back-to-back calls of the graph executor's
`run`, LiteRT's `invoke`, ONNX Runtime's `run_with_iobinding`, OpenVINO's `infer`; input set
once), so each pays its own Python per-call overhead (microseconds, small against these
networks). The profile columns are TVM's debug executor (`run_individual`, each node's median
of 3 repeats of 10 runs): the time of the fused functions that hold a depthwise conv, and of
those that hold a `layout_transform` (and no depthwise conv); a profile sums node times, so it
is below the whole time (no executor overhead) and taken one node at a time (warm caches).
`# layout_transform` counts the `layout_transform` ops in the compiled graph. Checks: TVM's
TFLite paths against LiteRT's output, its ONNX path and OpenVINO against ONNX Runtime's, LiteRT
and ONNX Runtime against Keras (max abs error within 1e-4 of the output's scale).

Ratios divide a project time by another: **below 1 means the project is faster**.

## Targets (issue 14)

{targets(records, noise)}

## Project vs stock, per path

{table}

## Fastest TVM path vs the peers

{peer_table}

![ratios]({meta['png']})

## Errors and wrong outputs

{problems}
"""


def _float_problem(entry):
    """A failed entry's error, else how far its output is from its reference."""
    if entry["error"]:
        return entry["error"]
    return "output differs (max abs error " + _fmt(entry["err"], 3) + ")"


def chart(records, path):
    """The float report's chart of ratios, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = [r["network"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(12, 2.0 + 0.45 * len(names)), sharey=True)
    for ax, keys, title in (
        (
            axes[0],
            [(p, "project_vs_stock", PATH_LABELS[p]) for p in PATHS],
            "project ÷ stock, per path",
        ),
        (
            axes[1],
            [("best", f"project_vs_{p}", PEER_LABELS[p]) for p in PEERS]
            + [("best", "project_vs_stock", "fastest stock path")],
            "fastest project path ÷ peer",
        ),
    ):
        h = 0.8 / len(keys)
        for i, (group, key, label) in enumerate(keys):
            ys = [j + (i - (len(keys) - 1) / 2) * h for j in range(len(names))]
            ax.barh(ys, [r["ratios"][group][key] or np.nan for r in records], height=h, label=label)
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=1)
        lo, hi = ax.get_xlim()
        lo, hi = min(lo, 0.4), max(hi, 2.5)
        ax.set_xlim(lo, hi)
        ax.set_xticks([t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if lo <= t <= hi])
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(
            title=title,
            title_fontsize=9,
            fontsize=8,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=2,
            frameon=False,
        )
        ax.set_xlabel("time ratio, log scale (below 1: project faster)")
    axes[0].set_yticks(range(len(names)), names, fontsize=8)
    axes[0].set_ylim(len(names) - 0.5, -0.5)
    fig.suptitle("Whole networks, 2 threads: project TVM vs stock TVM and peers")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# quantized networks: <name>_int8.tflite through TVM (two paths) and LiteRT
INT8_PATH_LABELS = {
    "int8_nhwc": "TFLite int8 as imported (NHWC)",
    "int8_nchw": "TFLite int8 + ConvertLayout NCHW",
}


def litert_int8(name):
    """``(run, output)``: LiteRT (XNNPACK delegate) on ``<name>_int8.tflite``, int8 input."""
    from ai_edge_litert.interpreter import Interpreter

    with _stderr_to(os.path.join(LOGS, "litert.log")):
        interp = Interpreter(
            model_path=os.path.join(NETWORKS_DIR, f"{name}_int8.tflite"), num_threads=THREADS
        )
        interp.allocate_tensors()
    if "DELEGATE" not in [op["op_name"] for op in interp._get_ops_details()]:
        raise RuntimeError("LiteRT did not apply the XNNPACK delegate")
    interp.set_tensor(interp.get_input_details()[0]["index"], network_input(name, int8=True))
    out_index = interp.get_output_details()[0]["index"]
    return interp.invoke, lambda: interp.get_tensor(out_index)


def measure_int8(name, workers, repeat):
    """A quantized network's record: LiteRT checked against TensorFlow's TFLite interpreter
    (saved by make_networks.py), both TVM paths against LiteRT, stock against project."""
    npz = np.load(os.path.join(NETWORKS_DIR, f"{name}_int8.npz"))
    info = network_index()[name]
    rec = {
        "network": name,
        "description": info["description"],
        "params": info["params"],
        **{k: v for k, v in info["int8"].items() if k != "ops"},
    }
    timer = None
    reference = npz["tflite_int8_output"]
    try:
        call, output = litert_int8(name)
        call()
        got = np.array(output())
        ok, err = quanta_close(got, reference)
        rec["litert"] = {
            "ok": ok,
            "err": err,
            "error": None,
            "checked_against": "TensorFlow's TFLite interpreter",
        }
        timer = slice_timer(call, SLICE_MS)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # one failing engine must not stop the run: it is reported as failed
        got = reference
        rec["litert"] = _failed(" ".join(f"{type(exc).__name__}: {exc}".split())[:400])
    expected = os.path.join(LOGS, f"{name}-int8-litert.npy")
    np.save(expected, got)  # the TFLite interpreter's output if LiteRT failed
    for mode, worker in workers.items():
        outputs = {p: os.path.join(LOGS, f"{name}-{p}-{mode}.npy") for p in INT8_PATHS}
        rec[mode] = worker.build(name, {"int8": expected}, INT8_PATHS, outputs)
    rec["identical"] = {}
    for path in INT8_PATHS:
        s, p = rec["stock"][path], rec["project"][path]
        same = None
        if s.get("output") and p.get("output") and not s["error"] and not p["error"]:
            same = bool(np.array_equal(np.load(s["output"]), np.load(p["output"])))
        rec["identical"][path] = same
    settle()
    units = list(workers) + (["litert"] if timer else [])
    samples = {(m, p): [] for m in workers for p in INT8_PATHS}
    samples[("litert", None)] = []
    for r in range(repeat):
        for unit in units if r % 2 == 0 else reversed(units):
            if unit in workers:
                for path, ms in workers[unit].time().items():
                    samples[(unit, path)].append(ms)
            else:
                samples[(unit, None)].append(timer())
                settle()
    for (unit, path), values in samples.items():
        entry = rec[unit][path] if path else rec[unit]
        values = [v for v in values if v is not None]
        entry["ms"] = float(np.median(values)) if values else None
        entry["samples"] = values
    return summarize_int8(rec, list(workers))


def summarize_int8(rec, modes):
    """Ratios of an int8 record (as :func:`summarize`), and each mode's fastest path."""
    rec["ratios"] = {}
    for path in INT8_PATHS:
        s, p = rec["stock"][path], rec["project"][path]
        rec["ratios"][path] = {
            "project_vs_stock": _ratio(_good(p), _good(s)),
            "depthwise_vs_stock": _ratio(_prof(p, "depthwise_us"), _prof(s, "depthwise_us")),
            "stock_b_vs_stock": (
                _ratio(_good(rec["stock_b"][path]), _good(s)) if "stock_b" in modes else None
            ),
            "project_vs_litert": _ratio(_good(p), _good(rec["litert"])),
        }
    for mode in ("stock", "project"):
        times = {p: _good(rec[mode][p]) for p in INT8_PATHS if _good(rec[mode][p]) is not None}
        best = min(times, key=times.get) if times else None
        rec[f"{mode}_best_path"] = best
        rec[f"{mode}_best_ms"] = times.get(best)
    rec["ratios"]["best"] = {
        "project_vs_stock": _ratio(rec["project_best_ms"], rec["stock_best_ms"]),
        "project_vs_litert": _ratio(rec["project_best_ms"], _good(rec["litert"])),
        "stock_vs_litert": _ratio(rec["stock_best_ms"], _good(rec["litert"])),
    }
    return rec


def int8_target_of(records):
    """The target the int8 paths were built for (``network_worker.int8_target``)."""
    return next(
        (
            e["target"]
            for r in records
            for m in ("stock", "project")
            for p in INT8_PATHS
            for e in [r[m][p]]
            if e.get("target")
        ),
        None,
    )


def _same(value):
    return {True: "yes", False: "**no**"}.get(value, "–")


def markdown_int8(meta, records, smoke):
    """The int8 report (docs/networks-int8.md) of ``records``."""
    noise = "stock_b" in meta["workers"]
    head = (
        ["network", "path", "stock ms", "project ms", "project ÷ stock"]
        + (["stock_b ÷ stock"] if noise else [])
        + [
            "depthwise µs stock / project",
            "depthwise ratio",
            "# layout_transform stock / project",
            "LiteRT ms",
            "project ÷ LiteRT",
            "TVM − LiteRT quanta stock / project",
            "stock = project",
            "check",
        ]
    )
    rows = [head, ["---"] * 2 + ["---:"] * (len(head) - 5) + ["---:", "---", "---"]]
    for rec in records:
        for path in INT8_PATHS:
            s, p, r = rec["stock"][path], rec["project"][path], rec["ratios"][path]
            checks = {_check(s), _check(p)}
            rows.append(
                [
                    f"`{rec['network']}`",
                    INT8_PATH_LABELS[path],
                    _ms(_good(s)),
                    _ms(_good(p)),
                    _fmt(r["project_vs_stock"]),
                ]
                + ([_fmt(r["stock_b_vs_stock"])] if noise else [])
                + [
                    f"{_us(_prof(s, 'depthwise_us'))} / {_us(_prof(p, 'depthwise_us'))}",
                    _fmt(r["depthwise_vs_stock"]),
                    f"{s.get('layout_transforms', '–')} / {p.get('layout_transforms', '–')}",
                    _ms(_good(rec["litert"])) if rec["litert"]["ok"] else _check(rec["litert"]),
                    _fmt(r["project_vs_litert"]),
                    f"{'–' if s.get('err') is None else s['err']} / "
                    f"{'–' if p.get('err') is None else p['err']}",
                    _same(rec["identical"][path]),
                    "ok" if checks == {"ok"} else " / ".join(sorted(checks)),
                ]
            )
    for path in INT8_PATHS:
        tail = [None, None, "project_vs_litert", None, None, None]
        rows.append(_geomean_row(records, path, INT8_PATH_LABELS[path], noise, tail))
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)

    bhead = [
        "network",
        "fastest project path",
        "project ms",
        "fastest stock ms",
        "LiteRT ms",
        "project ÷ stock",
        "project ÷ LiteRT",
        "stock ÷ LiteRT",
        "LiteRT − TFLite interpreter (quanta)",
    ]
    brows = [bhead, ["---"] * 2 + ["---:"] * (len(bhead) - 2)]
    for rec in records:
        b, lite = rec["ratios"]["best"], rec["litert"]
        brows.append(
            [
                f"`{rec['network']}`",
                INT8_PATH_LABELS.get(rec["project_best_path"], "–"),
                _ms(rec["project_best_ms"]),
                _ms(rec["stock_best_ms"]),
                _ms(_good(lite)) if lite["ok"] else _check(lite),
                _fmt(b["project_vs_stock"]),
                _fmt(b["project_vs_litert"]),
                _fmt(b["stock_vs_litert"]),
                "–" if lite.get("err") is None else str(lite["err"]),
            ]
        )
    brows.append(
        ["**geomean**", "", "", "", ""]
        + [
            _fmt(geomean([r["ratios"]["best"][k] for r in records]))
            for k in ("project_vs_stock", "project_vs_litert", "stock_vs_litert")
        ]
        + [""]
    )
    best_table = "\n".join("| " + " | ".join(row) + " |" for row in brows)

    over = [
        f"`{r['network']}` {p} {_fmt(r['ratios'][p]['project_vs_stock'])}"
        for r in records
        for p in INT8_PATHS
        if r["ratios"][p]["project_vs_stock"] is None or r["ratios"][p]["project_vs_stock"] > 1.0
    ]
    target = (
        "| target | bound | met | missed by |\n| --- | ---: | --- | --- |\n"
        f"| project ÷ stock, every quantized network, every path | 1.00 | "
        f"{'**no**' if over else 'yes'} | {', '.join(over) or '-'} |"
    )
    if noise:
        spread = [
            abs(np.log(v))
            for r in records
            for p in INT8_PATHS
            for v in [r["ratios"][p]["stock_b_vs_stock"]]
            if v
        ]
        if spread:
            target += (
                f"\n\nNoise margin (stock_b ÷ stock, same build, another process): "
                f"median {np.exp(np.median(spread)):.3f}x, worst "
                f"{np.exp(max(spread)):.3f}x either way."
            )
    nets = "\n".join(
        f"- `{r['network']}`: {r['description']}; {r['tflite_depthwise']} int8 depthwise convs"
        + (
            f"; float ops kept by the converter: {', '.join(r['float_ops'])}"
            if r.get("float_ops")
            else ""
        )
        + f"; TFLite's int8 output {r['vs_keras_quanta']:.1f} output quanta from Keras' float"
        for r in records
    )
    problems = (
        [
            f"- `{r['network']}` {m} {p}: {_quanta_problem(e, 'output ', 'LiteRT')}"
            for r in records
            for m in meta["workers"]
            for p in INT8_PATHS
            for e in [r[m][p]]
            if not e["ok"]
        ]
        + [
            f"- `{r['network']}` {p}: project output differs from stock"
            for r in records
            for p in INT8_PATHS
            if r["identical"][p] is False
        ]
        + [
            f"- `{r['network']}` LiteRT: "
            f"{_quanta_problem(r['litert'], '', 'the TFLite interpreter')}"
            for r in records
            if not r["litert"]["ok"]
        ]
    )
    problems = "\n".join(problems) or "None: every engine built and matched its reference."
    project, versions = meta["workers"]["project"], meta["versions"]
    project_note = (
        f"installed, version {project['project']}"
        if project["project"]
        else "**not installed**: the stock and project columns are both stock TVM"
    )
    smoke_note = (
        (
            f"\n> **Smoke run** (`{meta['command']}`): {len(records)} network(s), "
            f"{meta['repeat']} rounds, to show the benchmark works end to end. Not the "
            "full measurement; the times are not the project's results.\n"
        )
        if smoke
        else ""
    )
    vnni_note = (
        (
            " (VNNI off: TVM 0.19's VNNI int8 code calls `llvm.x86.avx512.vpdpbusd.512` "
            "with the operand types of LLVM before 21, and this LLVM aborts on it for "
            "every int8 network, stock and project alike; TVM then uses "
            "`vpmaddubsw`/`vpmaddwd`. LiteRT uses what the CPU has)"
        )
        if "vnni" in (int8_target_of(records) or "")
        else ""
    )
    return f"""# Whole-network benchmark, quantized (int8) networks
{smoke_note}
- Date: {meta['date']} (the quantized part took {meta['wall_s'] / 60:.1f} min)
- Command: `{meta['command']}`
- Machine: {meta['machine']}
- TVM {meta['workers']['stock']['tvm']}, target `{int8_target_of(records) or meta['workers']['stock']['target']}`{vnni_note}; project {project_note}
- Peer: LiteRT {versions['ai_edge_litert']} (XNNPACK); Python {versions['python']}
- {THREADS} threads for every engine; times are medians over {meta['repeat']} rounds, in each
  round every engine runs back to back for about {SLICE_MS} ms

## How to run

```sh
.venv/bin/python bench/networks.py --int8     # the quantized networks only (the default runs both)
# --networks a,b  --repeat N  --noise  --quick as for the float networks; --no-int8 skips these
# only to remake bench/networks/*_int8.*: /tmp/tfvenv/bin/python bench/make_networks.py --int8-only
```

## What is measured

The networks of the float benchmark, converted full-integer by TensorFlow's TFLite converter
(`<name>_int8.tflite`, `bench/make_networks.py`: int8 input and output, per-channel int8
weights, int32 biases, calibrated on 32 seeded inputs); the input is the float benchmark's
input quantized with the model's input parameters:

{nets}

Paths through TVM (`relay.build`, `opt_level=3`, graph executor; **stock** `{SWITCH}=0`,
**project** `=1`): **{INT8_PATH_LABELS['int8_nhwc']}** (`relay.frontend.from_tflite`:
`qnn.conv2d` with NHWC data and HWOI weights, the depthwise ones in the multiplier form
`[kh, kw, C, m]`) and **{INT8_PATH_LABELS['int8_nchw']}** (then
`ConvertLayout({{"nn.conv2d": ["NCHW", "default"], "qnn.conv2d": ["NCHW", "default"]}})`).
Peer: **LiteRT** on the same file (XNNPACK delegate). ONNX Runtime and OpenVINO are not run
here: the networks exist as float ONNX only (tf2onnx does not convert a full-integer TFLite
model; a QDQ ONNX model would be another quantization, not the same integers), so their
outputs could not be checked against the same int8 model.

Checks: LiteRT against TensorFlow's TFLite interpreter (its own kernels), TVM's paths against
LiteRT, each within {INT8_QUANTA} quanta of the int8 output (the largest difference is
reported); *stock = project*: the two TVM outputs bit-identical. The profile columns are as in
the float report (`docs/networks.md`). Ratios divide a project time by another: **below 1
means the project is faster**.

## Target (issue 15: no quantized network slower than with the patch off)

{target}

## Quantized networks, project vs stock per path

{table}

## Fastest TVM path vs LiteRT

{best_table}

![ratios]({meta['png']})

## Errors and wrong outputs

{problems}
"""


def _quanta_problem(entry, prefix, against):
    """A failed entry's error, else how many quanta its output is from ``against``'s."""
    if entry["error"]:
        return entry["error"]
    return prefix + str(entry["err"]) + " quanta from " + against


def chart_int8(records, path):
    """The int8 report's chart of ratios, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = [r["network"] for r in records]
    keys = [
        (p, "project_vs_stock", f"project ÷ stock, {INT8_PATH_LABELS[p]}") for p in INT8_PATHS
    ] + [("best", "project_vs_litert", "fastest project ÷ LiteRT")]
    fig, ax = plt.subplots(figsize=(9, 2.0 + 0.45 * len(names)))
    h = 0.8 / len(keys)
    for i, (group, key, label) in enumerate(keys):
        ys = [j + (i - (len(keys) - 1) / 2) * h for j in range(len(names))]
        ax.barh(ys, [r["ratios"][group][key] or np.nan for r in records], height=h, label=label)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    lo, hi = ax.get_xlim()
    lo, hi = min(lo, 0.4), max(hi, 2.5)
    ax.set_xlim(lo, hi)
    ax.set_xticks([t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if lo <= t <= hi])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    ax.set_xlabel("time ratio, log scale (below 1: project faster)")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(len(names) - 0.5, -0.5)
    fig.suptitle("Quantized (int8) networks, 2 threads: project TVM vs stock TVM and LiteRT")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
def parse_args(argv):
    """The command line, the networks resolved (``names``) and ``repeat`` defaulted."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {', '.join(QUICK)}; 5 rounds unless --repeat",
    )
    ap.add_argument("--networks", help="comma-separated network names (bench/networks/index.json)")
    ap.add_argument("--repeat", type=int, help="timing rounds per network (default 15)")
    ap.add_argument(
        "--noise",
        action="store_true",
        help="also run a second stock worker (stock_b): the noise margin",
    )
    part = ap.add_mutually_exclusive_group()
    part.add_argument(
        "--int8",
        action="store_true",
        help="only the quantized networks (bench/networks/<name>_int8.tflite: "
        "stock, project, LiteRT int8)",
    )
    part.add_argument(
        "--no-int8", action="store_true", help="only the float networks (skip the quantized ones)"
    )
    ap.add_argument(
        "--out-prefix",
        default=os.path.join(DOCS, "networks"),
        help="write PREFIX.md, .json, .png (float networks) and PREFIX-int8.md, "
        ".json, .png (quantized networks) (default docs/networks)",
    )
    args = ap.parse_args(argv)
    known = list(network_index())
    names = args.networks.split(",") if args.networks else QUICK if args.quick else known
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        ap.error(f"unknown network(s) {', '.join(unknown)}; known: {', '.join(known)}")
    args.names = names
    if args.repeat is None:
        args.repeat = 5 if args.quick else 15
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def main(argv):
    """Runs the benchmark; writes the reports; 1 if any measurement failed or differed."""
    args = parse_args(argv)
    float_part, int8_part = not args.int8, not args.no_int8
    missing = [
        m
        for m in (
            "tvm",
            "tflite",
            "ai_edge_litert",
            "onnx",
            "onnxruntime",
            "openvino",
            "tqdm",
            "matplotlib",
        )
        if not run._importable(m)
    ]
    if missing:
        sys.exit(
            f"error: missing Python packages {', '.join(missing)} in {sys.executable}; "
            "pip install -e . -r bench/requirements.txt"
        )
    no_int8 = [
        n
        for n in args.names
        if int8_part
        and not all(
            os.path.exists(os.path.join(NETWORKS_DIR, f"{n}_int8.{ext}"))
            for ext in ("tflite", "npz")
        )
    ]
    if no_int8:
        sys.exit(
            f"error: no int8 model for {', '.join(no_int8)}; run "
            "bench/make_networks.py --int8-only (see its docstring), or pass --no-int8"
        )
    from tqdm import tqdm
    import ai_edge_litert
    import onnxruntime
    import openvino as ov

    os.makedirs(LOGS, exist_ok=True)
    start = time.time()
    modes = {"stock": "0", "project": "1", **({"stock_b": "0"} if args.noise else {})}
    workers = {mode: Worker(mode, switch) for mode, switch in modes.items()}
    records, int8_records = [], []
    if float_part:
        progress = tqdm(args.names, unit="network", dynamic_ncols=True)
        for name in progress:
            progress.set_postfix_str(name)
            records.append(measure(name, workers, args.repeat))
    float_s = time.time() - start
    if int8_part:
        progress = tqdm(args.names, unit="network", dynamic_ncols=True, desc="int8")
        for name in progress:
            progress.set_postfix_str(name)
            int8_records.append(measure_int8(name, workers, args.repeat))
    for worker in workers.values():
        worker.close()

    prefix = os.path.abspath(args.out_prefix)
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
            "openvino": ov.__version__.split("-")[0],
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    smoke = args.quick or len(args.names) < len(network_index())
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    rel = os.path.relpath(prefix, ROOT)
    bad = 0
    if float_part:
        with open(prefix + ".json", "w") as f:
            json.dump({"meta": meta, "smoke_run": smoke, "records": records}, f, indent=1)
        with open(prefix + ".md", "w") as f:
            f.write(markdown(meta, records, smoke))
        chart(records, prefix + ".png")
        print(f"wrote {rel}.md, .json, .png in {float_s / 60:.1f} min")
        for path in PATHS:
            print(
                f"  geomean project ÷ stock, {PATH_LABELS[path]}: "
                f"{_fmt(geomean([r['ratios'][path]['project_vs_stock'] for r in records]))}"
            )
        bad = sum(1 for r in records for m in workers for p in PATHS if not r[m][p]["ok"]) + sum(
            1 for r in records for p in PEERS if not r[p]["ok"]
        )
        if bad:
            print(f"  {bad} failed or wrong measurements: see {rel}.md")
    if int8_part:
        meta8 = dict(
            meta, wall_s=time.time() - start - float_s, png=os.path.basename(prefix) + "-int8.png"
        )
        with open(prefix + "-int8.json", "w") as f:
            json.dump({"meta": meta8, "smoke_run": smoke, "records": int8_records}, f, indent=1)
        with open(prefix + "-int8.md", "w") as f:
            f.write(markdown_int8(meta8, int8_records, smoke))
        chart_int8(int8_records, prefix + "-int8.png")
        print(f"wrote {rel}-int8.md, .json, .png in {meta8['wall_s'] / 60:.1f} min")
        for path in INT8_PATHS:
            print(
                f"  geomean project ÷ stock, {INT8_PATH_LABELS[path]}: "
                f"{_fmt(geomean([r['ratios'][path]['project_vs_stock'] for r in int8_records]))}"
            )
        bad8 = (
            sum(1 for r in int8_records for m in workers for p in INT8_PATHS if not r[m][p]["ok"])
            + sum(1 for r in int8_records for p in INT8_PATHS if r["identical"][p] is False)
            + sum(1 for r in int8_records if not r["litert"]["ok"])
        )
        if bad8:
            print(f"  {bad8} failed, wrong or differing quantized measurements: see {rel}-int8.md")
        bad += bad8
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
