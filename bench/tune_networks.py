"""Tuned whole networks: stock TVM and the project, each tuned, against LiteRT, ONNX Runtime
and OpenVINO.

The one command (from the repository root, in the venv of bench/networks.py)::

    python bench/tune_networks.py                                  # defaults below
    python bench/tune_networks.py --networks mobilenet_v2_a035 --trials 8 --tuners autotvm
    python bench/tune_networks.py --source torchvision --networks efficientnet_b0 \
        --tuners autotvm,metaschedule --trials 4 --append      # one network more

``--source`` (``bench/sources.py``) picks the networks: ``embedded`` (``bench/networks/``),
``mediapipe`` (the vendor's float TFLite models, fetched) or ``torchvision`` (exported with
``torch.onnx`` in a venv of its own, fetched at the first run: about 6 GB).

For each network of the source and each path (``--paths``, network_worker.py's names)
and tuner (``--tuners``: ``autotvm``, ``metaschedule``), ``bench/tune_worker.py`` tunes the
network twice, as stock TVM (``TVM_CANONICALIZE_DEPTHWISE=0``) and with the project (``=1``),
with the same trials per task (``--trials``), one after the other (never two at once: 2 cores);
its tasks and tuning minutes are recorded. Then, per network, network_worker.py workers build
every path untuned (stock, project) and tuned (stock and project, per tuner), each checked
against the source engine's output, and every build and the peers (LiteRT with XNNPACK, ONNX
Runtime, OpenVINO; as in networks.py) are timed by the same Python loop in ``--repeat``
interleaved rounds on 2 threads; an engine's time is its median.

Writes ``docs/tuned-networks.md`` and ``.json`` (``--out-prefix``); tuning logs go to
``bench/logs/tuned/``, the workers' stderr to ``bench/logs/``.
"""

# the benchmark's modules are imported once their directory is on sys.path and, for
# network_worker, once BENCH_NETWORKS_DIR names the source's networks
# pylint: disable=wrong-import-position

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sources  # noqa: E402


def _source(argv):
    """``--source``, read before network_worker is imported: it fixes the networks' folder."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--source", default="embedded", choices=sorted(sources.SOURCES))
    return ap.parse_known_args(argv)[0].source


SOURCE = _source(sys.argv[1:]) if __name__ == "__main__" else "embedded"
os.environ["BENCH_NETWORKS_DIR"] = sources.directory(SOURCE)  # this process and its workers
import networks  # noqa: E402  (its workers, peers and helpers)
import run  # noqa: E402
from network_worker import NETWORKS_DIR  # noqa: E402
from run import _fmt, _ms, geomean, machine  # noqa: E402
from timing import settle  # noqa: E402
from tvm_worker import host_target  # noqa: E402

_good = networks._good

ROOT, DOCS, LOGS, THREADS, SWITCH = run.ROOT, run.DOCS, run.LOGS, run.THREADS, run.SWITCH
TUNED_LOGS = os.path.join(LOGS, "tuned")
MODES = {"stock": "0", "project": "1"}
DEFAULT_NETWORKS = "mobilenet_v2_a035,face_landmark"


class Worker(networks.Worker):
    """A network_worker.py that builds ``paths``, with tuned ``records`` where given."""

    def build_paths(self, name, expected, paths, records=None):
        """Builds and checks network ``name``'s ``paths``, tuned by ``records`` where given:
        ``{path: result}``."""
        self.log.write(f"=== {name}\n")
        self.log.flush()
        self.died = None
        self.paths = paths
        answer = self._ask(
            {
                "op": "build",
                "network": name,
                "slice_ms": networks.SLICE_MS,
                "expected": expected,
                "paths": list(paths),
                "records": records,
            }
        )
        return {p: answer[p] if answer else networks._failed(self.died) for p in paths}


def tune(name, path, tuner, mode, trials):
    """Run tune_worker.py for one (network, path, tuner, mode): its JSON answer and log."""
    os.makedirs(TUNED_LOGS, exist_ok=True)
    out = os.path.join(TUNED_LOGS, f"{name}-{path}-{tuner}-{mode}")
    out += ".log" if tuner == "autotvm" else ""
    if tuner == "autotvm" and os.path.exists(out):
        os.remove(out)  # AutoTVM appends
    env = dict(os.environ, TOPHUB_LOCATION="NONE", TVM_NUM_THREADS=str(THREADS))
    env[SWITCH] = MODES[mode]
    with open(os.path.join(LOGS, f"tune-{mode}.log"), "a") as log:
        log.write(f"=== {name} {path} {tuner}\n")
        log.flush()
        done = subprocess.run(
            [
                sys.executable,
                os.path.join(HERE, "tune_worker.py"),
                name,
                path,
                tuner,
                str(trials),
                out,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            check=False,
        )
    if done.returncode != 0 or not done.stdout.strip():
        return {
            "error": f"tuning failed (exit {done.returncode}); see bench/logs/tune-{mode}.log",
            "log": out,
        }
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    answer["log"] = out
    return answer


def measure(name, paths, tuners, tuning, repeat):
    """Build every (mode, tuned or not) of ``paths``, set up the peers, time all interleaved."""
    npz = np.load(os.path.join(NETWORKS_DIR, f"{name}.npz"))
    rec = {"network": name, **networks.network_index()[name], "tuning": tuning[name]}
    peers, timers, expected = networks.setup_peers(name, npz["keras_output"])
    rec.update(peers)
    units = {}
    for mode, switch in MODES.items():
        units[mode] = (Worker(mode, switch), None)
        for tuner in tuners:
            records = {
                p: {"tuner": tuner, "log": tuning[name][p][tuner][mode]["log"]}
                for p in paths
                if "error" not in tuning[name][p][tuner][mode]
            }
            units[f"{mode}_{tuner}"] = (Worker(f"{mode}_{tuner}", switch), records)
    for unit, (worker, records) in units.items():
        if records is not None and not records:
            rec[unit] = {p: networks._failed("tuning failed") for p in paths}
            continue
        rec[unit] = worker.build_paths(name, expected, paths, records)
    settle()
    order = [u for u in units if any(rec[u][p].get("ok") for p in paths)] + [
        p for p in networks.PEERS if p in timers
    ]
    samples = {u: {p: [] for p in paths} for u in units}
    samples.update({p: [] for p in networks.PEERS})
    for r in range(repeat):
        for unit in order if r % 2 == 0 else reversed(order):
            if unit in units:
                for path, ms in units[unit][0].time().items():
                    samples[unit][path].append(ms)
            else:
                samples[unit].append(timers[unit]())
                settle()
    for worker, _ in units.values():
        worker.close()
    for unit in units:
        for path in paths:
            values = [v for v in samples[unit][path] if v is not None]
            rec[unit][path]["ms"] = float(np.median(values)) if values else None
            rec[unit][path].pop("profile", None)
    for peer in networks.PEERS:
        values = samples[peer]
        rec[peer]["ms"] = float(np.median(values)) if values else None
    return rec


def best_peer(rec):
    """``(name, ms)`` of the fastest peer that ran right, or ``(None, None)``."""
    times = {p: _good(rec[p]) for p in networks.PEERS if _good(rec[p]) is not None}
    return (min(times, key=times.get), min(times.values())) if times else (None, None)


def markdown(meta, records, paths, tuners):
    """The report (docs/tuned-networks.md) of ``records``."""
    lines = [
        "# Tuned networks: stock TVM and the project, each tuned, against the peers",
        "",
        f"- Command: `{meta['command']}` ({meta['wall_s'] / 60:.1f} min, tuning included)",
        f"- {meta['machine']}; {THREADS} threads for every engine; target " f"`{meta['target']}`",
        f"- Trials per task: {meta['trials']} (the same for stock and the project), conv tasks "
        "only (other fused functions keep TOPI's schedules); AutoTVM: random tuner plus the "
        "untuned configuration, local builder and runner; MetaSchedule: `tune_tasks`, "
        "replay-trace search, random cost model; the project's MetaSchedule build keeps the "
        "hand-written depthwise schedule where it ran faster than the tuned one "
        "(`tvm.meta_schedule.hand_written`)",
        f"- Times: medians of {meta['repeat']} interleaved rounds of about "
        f"{networks.SLICE_MS} ms each (same Python loop for every engine); every TVM build "
        "checked against the source engine's output",
        "",
        "## Tasks and tuning time",
        "",
        "| network | path | tuner | tasks stock | tasks project | depthwise tasks stock / "
        "project | tuning min stock | tuning min project |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rec in records:
        for path in paths:
            for tuner in tuners:
                s, p = (rec["tuning"][path][tuner][m] for m in MODES)
                lines.append(
                    f"| {rec['network']} | {path} | {tuner} | {len(s.get('tasks', []))} | "
                    f"{len(p.get('tasks', []))} | {_depthwise_tasks(s)} / {_depthwise_tasks(p)}"
                    f" | {_minutes(s)} | {_minutes(p)} |"
                )
    lines += [
        "",
        "## Times (ms) and ratios",
        "",
        "Ratios below 1: the project is faster. *best peer*: the fastest of LiteRT, "
        "ONNX Runtime and OpenVINO.",
        "",
    ]
    header = (
        ["network", "path"]
        + [u.replace("_", " ") for u in _units(tuners)]
        + ["LiteRT", "ONNX Runtime", "OpenVINO"]
        + [f"project {t} ÷ stock {t}" for t in tuners]
        + ["fastest TVM ÷ best peer"]
    )
    lines += [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |",
    ]
    for rec in records:
        peer, peer_ms = best_peer(rec)
        for path in paths:
            row = (
                [rec["network"], path]
                + [_cell(rec[u][path]) for u in _units(tuners)]
                + [_cell(rec[p]) for p in networks.PEERS]
            )
            row += [
                _fmt(
                    networks._ratio(
                        _good(rec[f"project_{t}"][path]), _good(rec[f"stock_{t}"][path])
                    )
                )
                for t in tuners
            ]
            fastest = min(
                [v for u in _units(tuners) for v in [_good(rec[u][path])] if v], default=None
            )
            row.append(f"{_fmt(networks._ratio(fastest, peer_ms))} ({peer})" if peer else "n/a")
            lines.append("| " + " | ".join(row) + " |")
    fastest = []
    for rec in records:
        _, peer_ms = best_peer(rec)
        best = min(
            [
                v
                for u in _units(tuners)
                for p in paths
                for v in [_good(rec[u][p])]
                if v and u.startswith("project")
            ],
            default=None,
        )
        fastest.append(networks._ratio(best, peer_ms))
    if "metaschedule" in tuners:
        lines += [
            "",
            "## The hand-written depthwise schedule in the project's MetaSchedule builds",
            "",
            "Per depthwise task with a tuned record, both timed alone at build "
            "(`prefer_hand_written`); the build keeps the faster.",
            "",
            "| network | path | depthwise tasks compared | hand-written kept | tuned ms (sum) "
            "| hand-written ms (sum) |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for rec in records:
            for path in paths:
                made = rec["project_metaschedule"][path].get("hand_written") or []
                kept = sum(c["hand_written_ms"] < c["tuned_ms"] for c in made)
                lines.append(
                    f"| {rec['network']} | {path} | {len(made)} | {kept} | "
                    f"{sum(c['tuned_ms'] for c in made):.3f} | "
                    f"{sum(c['hand_written_ms'] for c in made):.3f} |"
                )
    lines += [
        "",
        f"Geomean, the project's fastest tuned or untuned build ÷ the best peer: "
        f"{_fmt(geomean(fastest))}",
        "",
        "\\* built with `tir.disable_cse_tir` after LLVM rejected the tuned code "
        "(`#dbg_declare` on a vector; TVM 0.19 with LLVM 22, stock and project alike)",
        "",
    ]
    return "\n".join(lines) + "\n"


def _units(tuners):
    return ["stock", "project"] + [f"{m}_{t}" for t in tuners for m in MODES]


def _cell(entry):
    if not entry or entry.get("absent"):
        return "n/a"
    if not entry.get("ok"):
        return "failed" if entry and entry.get("error") else "wrong" if entry else "n/a"
    return _ms(entry["ms"]) + (" *" if entry.get("cse_off") else "")


def _depthwise_tasks(answer):
    return len(answer["depthwise"]) if "depthwise" in answer else "n/a"


def _minutes(answer):
    return f"{answer['tuning_s'] / 60:.1f}" if "tuning_s" in answer else "failed"


def _appended(path, meta, records):
    """This run's ``meta`` and ``records`` added to an earlier run's (a network measured again
    replaces its earlier record); the runs must agree on trials, repeat, target, paths and
    tuners."""
    with open(path) as f:
        old = json.load(f)
    for key in ("trials", "repeat", "target", "paths", "tuners"):
        if old["meta"].get(key) != meta[key]:
            raise SystemExit(
                f"--append: {key} {meta[key]} differs from {path}'s {old['meta'][key]}"
            )
    names = {rec["network"] for rec in records}
    merged = dict(meta, command=f"{old['meta']['command']}` then `{meta['command']}")
    merged["wall_s"] = old["meta"]["wall_s"] + meta["wall_s"]
    return merged, [r for r in old["records"] if r["network"] not in names] + records


def parse_args(argv):
    """The command line, with the networks, paths and tuners resolved into lists."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--source",
        default="embedded",
        choices=sorted(sources.SOURCES),
        help="where the networks come from (bench/sources.py; embedded)",
    )
    ap.add_argument(
        "--networks",
        help=f"comma-separated names of the source's networks (embedded: {DEFAULT_NETWORKS}; "
        "others: all)",
    )
    ap.add_argument(
        "--paths",
        help="comma-separated paths: tflite_nhwc, tflite_nchw, onnx (the first the source has "
        "of tflite_nchw, onnx)",
    )
    ap.add_argument("--tuners", default="autotvm", help="autotvm, metaschedule or both")
    ap.add_argument("--trials", type=int, default=8, help="trials per task (8)")
    ap.add_argument("--repeat", type=int, default=11, help="timing rounds (11)")
    ap.add_argument(
        "--out-prefix", help="docs/tuned-networks, with -SOURCE for a source not embedded"
    )
    ap.add_argument(
        "--append",
        action="store_true",
        help="add to the results already at --out-prefix (a long campaign, one network a run)",
    )
    args = ap.parse_args(argv)
    default = (
        DEFAULT_NETWORKS if args.source == "embedded" else ",".join(sources.names(args.source))
    )
    args.names = [n for n in (args.networks or default).split(",") if n]
    have = sources.PATHS[args.source]
    paths = args.paths or next(p for p in ("tflite_nchw", "onnx") if p in have)
    args.path_list = [p for p in paths.split(",") if p]
    args.tuner_list = [t for t in args.tuners.split(",") if t]
    suffix = "" if args.source == "embedded" else f"-{args.source}"
    args.out_prefix = args.out_prefix or os.path.join(DOCS, f"tuned-networks{suffix}")
    known = sources.names(args.source)
    bad = (
        [n for n in args.names if n not in known]
        + [p for p in args.path_list if p not in have]
        + [t for t in args.tuner_list if t not in ("autotvm", "metaschedule")]
    )
    if bad or args.trials < 1 or args.repeat < 1:
        ap.error(f"unknown or bad: {', '.join(bad) or '--trials/--repeat must be >= 1'}")
    return args


def main(argv):
    """Tunes every network, path, tuner and mode, times the builds; writes the report."""
    args = parse_args(argv)
    # a benchmark dependency (bench/requirements.txt): imported once the arguments are read
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel

    os.makedirs(LOGS, exist_ok=True)
    start = time.time()
    sources.prepare(args.source, args.names)
    jobs = [
        (n, p, t, m)
        for n in args.names
        for p in args.path_list
        for t in args.tuner_list
        for m in MODES
    ]
    tuning = {n: {p: {t: {} for t in args.tuner_list} for p in args.path_list} for n in args.names}
    progress = tqdm(jobs, unit="tuning", dynamic_ncols=True)
    for name, path, tuner, mode in progress:
        progress.set_postfix_str(f"{name} {path} {tuner} {mode}")
        tuning[name][path][tuner][mode] = tune(name, path, tuner, mode, args.trials)
    records = []
    for name in tqdm(args.names, unit="network", dynamic_ncols=True, desc="timing"):
        records.append(measure(name, args.path_list, args.tuner_list, tuning, args.repeat))
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python "
        + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT)] + list(argv)),
        "machine": machine(),
        "target": host_target(),
        "trials": args.trials,
        "repeat": args.repeat,
        "paths": args.path_list,
        "tuners": args.tuner_list,
        "wall_s": time.time() - start,
    }
    prefix = os.path.abspath(args.out_prefix)
    if args.append and os.path.exists(prefix + ".json"):
        meta, records = _appended(prefix + ".json", meta, records)
    with open(prefix + ".json", "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
    with open(prefix + ".md", "w") as f:
        f.write(markdown(meta, records, args.path_list, args.tuner_list))
    print(f"wrote {os.path.relpath(prefix, ROOT)}.md, .json in {meta['wall_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
