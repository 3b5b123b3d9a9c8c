"""Vendor-made float TFLite networks: layout transforms, their share of time, stock vs project vs
LiteRT and OpenVINO.

The one command (from the repository root, in the venv of bench/networks.py)::

    python bench/vendor_networks.py                   # every network below, 11 rounds
    python bench/vendor_networks.py --networks iris_landmark,palm_detection_lite --repeat 5

The networks are the float TFLite models that Google ships in the ``mediapipe`` wheel (version
pinned in ``bench/sources.py``; nobody here designed them). They are fetched at benchmark time
with ``pip download`` into ``bench/cache/`` (not committed), each checked by its SHA-256. Each
gets a seeded random input in [-1, 1] and LiteRT's output as the reference
(``bench/cache/mediapipe/*.npz``).

Like ``bench/networks.py`` this starts ``bench/network_worker.py`` twice, with the patch off
("stock") and on ("project"); each builds, checks (output 0 against LiteRT's) and profiles two
paths: TFLite as imported (NHWC), and TFLite + ``ConvertLayout`` NCHW (as tvmc does). This
process runs LiteRT (XNNPACK delegate) on the .tflite and OpenVINO (CPU, latency hint, f32) on
the same .tflite (its TFLite frontend); ONNX Runtime does not read TFLite and there is no ONNX
export of these models, so it is not a peer here. All engines use 2 threads and are timed in
alternating order in each of ``--repeat`` rounds (median).

Reported per network and path: ``layout_transform`` nodes in the compiled graph, their share
of node time (debug executor), whole-network ms, and ratios to stock and to the faster peer;
and per network, the project's node time by op class on its faster path against OpenVINO's
(its performance counters), naming the class of ops where TVM loses the most time.
Writes ``docs/vendor-networks.md``, ``.json`` and ``.png``.
"""

# the benchmark's modules are imported once their directory is on sys.path and, for
# network_worker, once BENCH_NETWORKS_DIR names the fetched networks
# pylint: disable=wrong-import-position
# the peers' and the report's packages (bench/requirements.txt) are imported where used;
# TVM runs in the workers (here only its version is read, at the end)
# pylint: disable=import-outside-toplevel

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sources  # noqa: E402

CACHE = sources.directory("mediapipe")
os.environ["BENCH_NETWORKS_DIR"] = CACHE  # read by network_worker, here and in the workers
import networks  # noqa: E402
import run  # noqa: E402
from network_worker import close  # noqa: E402
from timing import slice_timer  # noqa: E402

WHEEL, MODELS = sources.MEDIAPIPE_WHEEL, sources.MEDIAPIPE
PATHS = ("tflite_nhwc", "tflite_nchw")
PEERS = ("litert", "openvino")
THREADS, SLICE_MS = run.THREADS, networks.SLICE_MS


def _litert(name):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=os.path.join(CACHE, f"{name}.tflite"), num_threads=THREADS)
    interp.allocate_tensors()
    x = np.load(os.path.join(CACHE, f"{name}.npz"))["input_nhwc"]
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    out_index = interp.get_output_details()[0]["index"]
    return interp.invoke, (lambda: interp.get_tensor(out_index))


def _openvino_request(name, **config):
    """An OpenVINO infer request of the network (CPU, latency, 2 threads, f32; more
    ``config``), its input set."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(os.path.join(CACHE, f"{name}.tflite")),
        "CPU",
        {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": THREADS,
            "INFERENCE_PRECISION_HINT": "f32",
            **config,
        },
    )
    request = compiled.create_infer_request()
    request.set_input_tensor(ov.Tensor(np.load(os.path.join(CACHE, f"{name}.npz"))["input_nhwc"]))
    return request


def _openvino(name):
    request = _openvino_request(name)

    def output():  # read after the run, not now
        return request.get_output_tensor(0).data.copy()

    return request.infer, output


# the op classes of a profile (bench/network_worker.py's), in the report's order
CLASSES = ("pointwise", "conv", "depthwise", "layout_transform", "other")
PROFILE_RUNS = 30


def _openvino_class(info):
    """The class of one node of OpenVINO's profile: its CPU plugin runs a depthwise conv as a
    GroupConvolution, and a 1x1 convolution with oneDNN's 1x1 kernels (``1x1`` in the kernel's
    name); a reorder or a transpose moves data between layouts."""
    if info.node_type == "GroupConvolution":
        return "depthwise"
    if info.node_type == "Convolution":
        return "pointwise" if "1x1" in info.exec_type else "conv"
    if info.node_type in ("Reorder", "Transpose"):
        return "layout_transform"
    return "other"


def openvino_profile(name):
    """OpenVINO's node time by op class (us; the median over ``PROFILE_RUNS`` runs of each
    class's sum), from a compilation of its own with performance counters on."""
    request = _openvino_request(name, PERF_COUNT="YES")
    runs = []
    for _ in range(PROFILE_RUNS):
        request.infer()
        totals = dict.fromkeys(CLASSES, 0.0)
        for info in request.get_profiling_info():
            if info.status.name == "EXECUTED":
                totals[_openvino_class(info)] += info.real_time.total_seconds() * 1e6
        runs.append(totals)
    return {cls: float(np.median([run[cls] for run in runs])) for cls in CLASSES}


def measure(name, workers, repeat):
    """One network's record: the peers' and both workers' checks and median times."""
    reference = np.load(os.path.join(CACHE, f"{name}.npz"))["keras_output"]
    rec = {"network": name}
    timers = {}
    for peer, make in (("litert", _litert), ("openvino", _openvino)):
        try:
            call, output = make(name)
            call()
            ok, err = close(np.array(output()).reshape(reference.shape), reference)
            rec[peer] = {"ok": ok, "err": err, "error": None}
            timers[peer] = slice_timer(call, SLICE_MS)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # one failing engine must not stop the run: it is reported as failed
            rec[peer] = {"ok": False, "err": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        rec["openvino_profile"] = openvino_profile(name)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # the profile is an explanation, not a result: its failure is reported, the run goes on
        rec["openvino_profile"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    expected = os.path.join(run.LOGS, f"{name}-litert.npy")
    np.save(expected, reference)
    for mode, worker in workers.items():
        rec[mode] = worker.build(name, {"tflite": expected}, paths=PATHS)
    networks.time_rounds(rec, workers, timers, PATHS, repeat)
    return rec


def _good(entry):
    return entry["ms"] if entry and entry.get("ok") and entry.get("ms") is not None else None


def _row(rec, mode, path):
    entry = rec[mode][path]
    ms = _good(entry)
    prof = entry.get("profile") or {}
    share = prof.get("layout_transform_us", 0) / prof["total_us"] if prof.get("total_us") else None
    peers = [_good(rec[p]) for p in PEERS if _good(rec.get(p))]
    best = min(peers) if peers else None
    return {
        "ms": ms,
        "transforms": entry.get("layout_transforms"),
        "share": share,
        "vs_best_peer": ms / best if ms and best else None,
        "ok": entry.get("ok"),
        "error": entry.get("error"),
        "cse_off": entry.get("cse_off"),
    }


def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


def markdown(meta, records):
    """The report (docs/vendor-networks.md) of ``records``."""
    lines = [
        "# Vendor networks: layout transforms and time (issue 24)",
        "",
        f"- Date: {meta['date']} (run took {meta['minutes']:.1f} min)",
        f"- Command: `{meta['command']}`",
        f"- Machine: {meta['machine']}; target `{meta['target']}`",
        f"- Networks: float TFLite models of the `{WHEEL}` wheel (fetched, SHA-256 checked)",
        f"- Peers: LiteRT {meta['versions']['litert']} (XNNPACK), OpenVINO "
        f"{meta['versions']['openvino']} (CPU, latency, f32, reading the .tflite); "
        "ONNX Runtime does not read TFLite",
        "",
        f"- 2 threads for every engine; medians over {meta['repeat']} rounds",
        "",
        "`# lt`: `layout_transform` nodes in the compiled graph; `lt share`: their share of node "
        "time (debug executor); `÷ peer`: TVM time ÷ the faster of LiteRT and OpenVINO "
        "(below 1: TVM faster); `÷ stock`: project ÷ stock, same path.",
        "",
        "| network | path | stock # lt | project # lt | stock lt share | project lt share "
        "| stock ms | project ms | LiteRT ms | OpenVINO ms | ÷ stock | stock ÷ peer "
        "| project ÷ peer |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for rec in records:
        for path in PATHS:
            s, p = _row(rec, "stock", path), _row(rec, "project", path)
            ratio = p["ms"] / s["ms"] if p["ms"] and s["ms"] else None
            lines.append(
                f"| `{rec['network']}` | {path} | {_f(s['transforms'], 'd')} | "
                f"{_f(p['transforms'], 'd')} | {_f(s['share'], '.0%')} | {_f(p['share'], '.0%')} "
                f"| {_f(s['ms'], '.3f')}{' (failed)' if not s['ok'] else ''} | "
                f"{_f(p['ms'], '.3f')}{' (failed)' if not p['ok'] else ''} | "
                f"{_f(_good(rec['litert']), '.3f')} | {_f(_good(rec['openvino']), '.3f')} | "
                f"{_f(ratio, '.2f')} | {_f(s['vs_best_peer'], '.2f')} | "
                f"{_f(p['vs_best_peer'], '.2f')} |"
            )
    lines += _where_time_goes(records)
    lines += ["", "Failures (an engine or a build):", ""]
    failures = [
        f"- `{rec['network']}` {who} {path or ''}: {entry['error']}"
        for rec in records
        for who, path, entry in [(m, q, rec[m][q]) for m in ("stock", "project") for q in PATHS]
        + [(peer, None, rec[peer]) for peer in PEERS]
        if entry.get("error")
    ]
    lines += failures or ["- none"]
    return "\n".join(lines) + "\n"


def _faster_path(rec):
    """The project's faster path of ``rec`` (None if neither ran)."""
    timed = [(p["ms"], path) for path in PATHS for p in [_row(rec, "project", path)] if p["ms"]]
    return min(timed)[1] if timed else None


def _where_time_goes(records):
    """The report's second table: the project's time by op class on its faster path against
    OpenVINO's, and the class where TVM loses the most time."""
    lines = [
        "",
        "## Where the time goes: project (faster path) vs OpenVINO, by op class",
        "",
        "Each engine's measured time (ms, above) split in the shares of its node time by op class: "
        "TVM's debug executor (a fused function's class: depthwise if it holds a depthwise conv, "
        "else layout_transform if it holds one, else pointwise if all its convs are regular 1x1 "
        "ones, else conv if it holds a conv, else other) and OpenVINO's performance counters "
        f"(median of {PROFILE_RUNS} runs; a GroupConvolution is depthwise, a Convolution run by "
        "a 1x1 kernel pointwise, Reorder and Transpose layout_transform). `most lost`: the class "
        "where TVM spends the most time over OpenVINO.",
        "",
        "| network | path | "
        + " | ".join(f"{cls} ms TVM / OV" for cls in CLASSES)
        + " | TVM ms / OV ms | most lost |",
        "| --- | --- | " + " | ".join("---:" for _ in CLASSES) + " | ---: | --- |",
    ]
    for rec in records:
        path = _faster_path(rec)
        ov_prof = rec.get("openvino_profile") or {}
        prof = (rec["project"].get(path) or {}).get("profile") if path else None
        ov_ms, ms = _good(rec.get("openvino")), _row(rec, "project", path)["ms"] if path else None
        if not prof or not ov_ms or "error" in ov_prof or not ov_prof:
            lines.append(
                f"| `{rec['network']}` | {path or '-'} | " + "- | " * len(CLASSES) + "- | - |"
            )
            continue
        tvm_us = {cls: prof.get(f"{cls}_us", 0.0) for cls in CLASSES}
        tvm_ms = {cls: ms * us / sum(tvm_us.values()) for cls, us in tvm_us.items()}
        ov_split = {cls: ov_ms * ov_prof[cls] / sum(ov_prof[c] for c in CLASSES) for cls in CLASSES}
        excess, lost = max((tvm_ms[cls] - ov_split[cls], cls) for cls in CLASSES)
        cells = " | ".join(f"{tvm_ms[cls]:.3f} / {ov_split[cls]:.3f}" for cls in CLASSES)
        lines.append(
            f"| `{rec['network']}` | {path} | {cells} | {ms:.3f} / {ov_ms:.3f} | "
            + (f"{lost} (+{excess:.3f} ms)" if excess > 0 else "none")
            + " |"
        )
    return lines


def chart(records, path):
    """The report's chart (time over the faster peer's), written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    names = [r["network"] for r in records]
    width = 0.2
    for k, (mode, p) in enumerate([(m, q) for m in ("stock", "project") for q in PATHS]):
        values = [_row(r, mode, p)["vs_best_peer"] or 0 for r in records]
        ax.bar(np.arange(len(names)) + (k - 1.5) * width, values, width, label=f"{mode} {p}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("time ÷ faster of LiteRT, OpenVINO")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv):
    """Fetches the networks, measures each; writes the report and prints it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", default=",".join(MODELS))
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--out-prefix", default=os.path.join(run.DOCS, "vendor-networks"))
    args = parser.parse_args(argv)
    names = [n for n in args.networks.split(",") if n]
    os.makedirs(run.LOGS, exist_ok=True)
    sources.prepare("mediapipe", names)
    start = time.time()
    workers = {mode: networks.Worker(mode) for mode in ("stock", "project")}
    records = []
    try:
        for i, name in enumerate(names):
            print(f"[{i + 1}/{len(names)}] {name}", file=sys.stderr, flush=True)
            records.append(measure(name, workers, args.repeat))
    finally:
        for worker in workers.values():
            worker.close()
    import ai_edge_litert
    import openvino
    import tvm

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": (time.time() - start) / 60,
        "repeat": args.repeat,
        "command": "python bench/vendor_networks.py " + " ".join(argv),
        "machine": f"{run.machine()}, {platform.machine()}",
        "target": "llvm -mcpu=" + tvm.target.codegen.llvm_get_system_cpu(),
        "versions": {
            "litert": getattr(ai_edge_litert, "__version__", "?"),
            "openvino": openvino.__version__,
        },
    }
    with open(args.out_prefix + ".json", "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1, default=str)
    with open(args.out_prefix + ".md", "w") as f:
        f.write(markdown(meta, records))
    chart(records, args.out_prefix + ".png")
    print(markdown(meta, records))


if __name__ == "__main__":
    main(sys.argv[1:])
