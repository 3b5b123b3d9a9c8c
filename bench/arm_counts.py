"""Depthwise layers on aarch64, counted: instructions and bytes per output under QEMU, cycles of
the hot loop from llvm-mca, the project against stock's best arm_cpu implementation.

    .venv/bin/python bench/arm_counts.py            # the ARM workloads, float32 and int8
    .venv/bin/python bench/arm_counts.py --quick    # two workloads, float32

Wall time under emulation means nothing, so this counts. Each workload of
``bench/workloads.py`` (float32, and int8 data and weight with int32 sums) is built for
``llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon`` with the patch on
("project") and off ("stock": TVM's own arm_cpu implementations), in both weight forms
(multiplier and canonical, m > 1) and both layouts TFLite and ONNX give (NHWC/HWOI,
NCHW/OIHW); a variant that does not build is recorded as such. Each side's best variant
(fewest instructions) is what is compared: what a user of either would pick.

All libraries are loaded by one process on the emulated board (``tests/scripts/
aarch64_board.py``), which then runs each twice on one thread; QEMU logs every translated
block of the libraries' code (``-d in_asm,exec,nochain`` with ``-dfilter`` set to their
address ranges, found by a first process that loads them in the same order) to a FIFO this
process reads. Instructions retired = executions of each block x its instructions; bytes
loaded and stored = the same, weighted by each load's and store's access size (from its
operands). Per output: divided by 2 runs and by N*C*m*OH*OW. The hot loop is the block that
retires the most instructions; its instructions, branches left out, go to llvm-mca for
Cortex-A76 and Neoverse-N1: its cycles per iteration times its executions, per output.

Writes ``docs/arm-counts.md``, ``.json`` and ``.png``. Counts are not times: a load that
misses the cache and one that hits count the same.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "scripts")]
import aarch64_board  # noqa: E402  pylint: disable=wrong-import-position
from workloads import select  # noqa: E402  pylint: disable=wrong-import-position
from tvm.topi.testing import (  # noqa: E402  pylint: disable=wrong-import-position
    depthwise_conv2d_canonical_python as ref,
)

TARGET = "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon -num-cores=1"
WORKLOADS = [
    "mnv1_32x112",
    "mnv1_64x112_s2",
    "mnv2_144x56",
    "mnv1_512x14",
    "effb0_240x28_k5",
    "m2_32x56",
    "m4_16x56",
    "m16_8x32",
    "m4_8x22x32_k22x1",
]
QUICK = ["mnv1_32x112", "m4_16x56"]
LAYOUTS = {"nhwc": ("NHWC", "HWOI"), "nchw": ("NCHW", "OIHW")}
CPUS = ("cortex-a76", "neoverse-n1")
RUNS = 2
LLVM_MCA = (
    Path(sys.prefix)
    / "lib"
    / f"python{sys.version_info.major}.{sys.version_info.minor}"
    / "site-packages"
    / "llvm"
    / "bin"
    / "llvm-mca"
)


# ---- building ------------------------------------------------------------------------------
def _model(workload, dtype, form, layouts):
    """The conv as a Relay module, and its input (in the data layout)."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relay  # pylint: disable=import-outside-toplevel

    data_layout, kernel_layout = layouts
    weight = _model_weight(workload, dtype)
    if form == "multiplier":  # the same numbers, [C, m, kh, kw]
        weight = weight.reshape(workload.C, workload.m, workload.kh, workload.kw)
    weight = ref.to_layout(weight, "OIHW", kernel_layout)
    data = ref.to_layout(_input_nchw(workload, dtype), "NCHW", data_layout)
    x = relay.var("x", shape=data.shape, dtype=dtype)
    y = relay.nn.conv2d(
        x,
        relay.const(weight),
        strides=(workload.stride,) * 2,
        padding=workload.pads,
        groups=workload.C,
        channels=workload.C * workload.m,
        kernel_size=(workload.kh, workload.kw),
        data_layout=data_layout,
        kernel_layout=kernel_layout,
        out_dtype="int32" if dtype == "int8" else dtype,
    )
    return tvm.IRModule.from_expr(relay.Function([x], y)), data


def _input_nchw(workload, dtype):
    """The workload's input as ``_model`` feeds it, NCHW."""
    data = workload.input_nchw()
    if dtype == "int8":
        data = np.clip(np.round(data * 127), -128, 127).astype("int8")
    return data


def _model_weight(workload, dtype):
    """The canonical OIHW weight as ``_model`` gives it to the conv."""
    weight = workload.weight_canonical()
    if dtype == "int8":
        weight = np.clip(np.round(weight * 64), -127, 127).astype("int8")
    return weight


def _build(mod, patch_on, path):
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relay  # pylint: disable=import-outside-toplevel
    from tvm.contrib import cc  # pylint: disable=import-outside-toplevel

    os.environ["TVM_CANONICALIZE_DEPTHWISE"] = "1" if patch_on else "0"
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=TARGET)
    lib.export_library(str(path), fcompile=cc.cross_compiler(aarch64_board.CROSS_CXX))
    return lib.get_graph_json()


def variants(workload):
    """``(side, form, layout)`` to build for one workload."""
    forms = ("multiplier", "canonical") if workload.m > 1 else ("canonical",)
    return [
        (side, form, layout)
        for side in ("project", "stock")
        for form in forms
        for layout in LAYOUTS
    ]


# ---- counting on the board -----------------------------------------------------------------
BOARD_SCRIPT = r"""
import json, sys
import numpy as np
import tvm
from tvm.contrib import graph_executor
jobs = json.load(open(sys.argv[1]))
libs = [tvm.runtime.load_module(job["library"]) for job in jobs]
maps = {}
for line in open("/proc/self/maps"):
    fields = line.split()
    if len(fields) >= 6 and "x" in fields[1] and fields[5] in {job["library"] for job in jobs}:
        start, end = (int(v, 16) for v in fields[0].split("-"))
        maps.setdefault(fields[5], []).append([start, end])
print("MAPS " + json.dumps(maps), flush=True)
if sys.argv[2] == "run":
    for job, lib in zip(jobs, libs):
        module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
        module.set_input("x", np.load(job["input"]))
        for _ in range(int(sys.argv[3])):
            module.run()
        np.save(job["output"], module.get_output(0).numpy())
"""

_INSN = re.compile(r"^0x([0-9a-f]+):\s+[0-9a-f]{8}\s+(\S+)\s*(.*)$")
_EXEC = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/")
_SIZES = {"q": 16, "d": 8, "x": 8, "s": 4, "w": 4, "h": 2, "b": 1}
_LANES = {"16b": 16, "8h": 16, "4s": 16, "2d": 16, "8b": 8, "4h": 8, "2s": 8, "1d": 8}
_BRANCH = re.compile(r"^(b(\..+)?|bl|blr|br|ret|cbn?z|tbn?z)$")


def access_bytes(mnemonic, operands):
    """``(loaded, stored)`` bytes of one AArch64 instruction (0, 0 for others)."""
    mnemonic = mnemonic.lower()
    if not re.match(r"^(ld|st)", mnemonic) or mnemonic.startswith(("ldadd", "stadd")):
        return 0, 0
    load = mnemonic.startswith("ld")
    if re.match(r"^(ld|st)[1-4]r?$", mnemonic):  # SIMD structure loads: the register list
        group = re.search(r"\{([^}]*)\}", operands)
        regs = group.group(1).split(",") if group else []
        if "-" in (group.group(1) if group else "") and len(regs) == 1:  # {v0.4s - v3.4s}
            first, last = re.findall(r"v(\d+)", regs[0])[:2]
            regs = [regs[0]] * (int(last) - int(first) + 1)
        lane = re.search(r"\}\[\d+\]", operands) or mnemonic.endswith("r")
        size = 0
        for reg in regs:
            arrangement = re.search(r"\.(\d*[bhsd])", reg)
            if not arrangement:
                continue
            key = arrangement.group(1)
            size += _SIZES[key[-1]] if lane or key in "bhsd" else _LANES.get(key, 16)
    else:
        first = re.match(r"\s*([qdxswhb])\d+|\s*(wzr|xzr)", operands)
        if mnemonic.rstrip("s").endswith(("rb", "urb")) or mnemonic in ("ldrsb", "ldursb"):
            size = 1
        elif mnemonic.endswith(("rh", "urh", "rsh")):
            size = 2
        elif mnemonic in ("ldrsw", "ldursw"):
            size = 4
        elif first:
            size = _SIZES[(first.group(1) or first.group(2))[0]]
        else:
            size = 0
        if mnemonic.startswith(("ldp", "stp", "ldnp", "stnp")):
            size *= 2
    return (size, 0) if load else (0, size)


class _Trace:
    """QEMU's in_asm and exec log, read as it is written: blocks and their executions."""

    def __init__(self, path):
        self.blocks = {}  # first pc -> [(pc, mnemonic, operands)]
        self.runs = Counter()
        self.thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self.thread.start()

    def _read(self, path):
        block = None
        with open(path, encoding="utf-8", errors="replace") as log:
            for line in log:
                if line.startswith("Trace"):
                    found = _EXEC.search(line)
                    if found:
                        self.runs[int(found.group(1), 16)] += 1
                    block = None
                elif line.startswith("IN:"):
                    block = []
                elif block is not None:
                    found = _INSN.match(line.strip())
                    if found:
                        pc = int(found.group(1), 16)
                        if not block:
                            self.blocks[pc] = block
                        block.append((pc, found.group(2), found.group(3)))


def count_on_board(board, jobs, workdir):
    """Run ``jobs`` (dicts with library, input, output) on the board; per job: instructions,
    bytes loaded, bytes stored (all runs) and the hot block."""
    manifest = workdir / "jobs.json"
    manifest.write_text(json.dumps(jobs))
    script = workdir / "count.py"
    script.write_text(BOARD_SCRIPT)
    # without address randomization, the libraries load where the probe saw them
    qemu = ["setarch", "x86_64", "-R", "qemu-aarch64-static", "-L", str(board.sysroot)]
    python = str(board.sysroot / "usr" / "bin" / "python3.11")
    env = board.env(threads=1)
    probe = subprocess.run(
        [*qemu, python, str(script), str(manifest), "probe"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=True,
    )
    maps = _maps(probe.stdout)
    ranges = ",".join(
        f"0x{start:x}..0x{end - 1:x}" for spans in maps.values() for start, end in spans
    )
    fifo = workdir / "qemu.log"
    os.mkfifo(fifo)
    trace = _Trace(fifo)
    counted = subprocess.run(
        [
            *qemu,
            "-d",
            "in_asm,exec,nochain",
            "-dfilter",
            ranges,
            "-D",
            str(fifo),
            python,
            str(script),
            str(manifest),
            "run",
            str(RUNS),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
    )
    trace.thread.join(600)
    if counted.returncode != 0:
        raise RuntimeError(f"the counted run failed: {counted.stderr[-2000:]}")
    if _maps(counted.stdout) != maps:
        raise RuntimeError("the libraries moved between the probe and the counted run")
    totals = {
        job["library"]: {"instructions": 0, "loaded": 0, "stored": 0, "hot": None} for job in jobs
    }
    hottest = defaultdict(lambda: (0, None, 0))
    for pc, runs in trace.runs.items():
        library = next(
            (lib for lib, spans in maps.items() if any(start <= pc < end for start, end in spans)),
            None,
        )
        block = trace.blocks.get(pc)
        if library is None or block is None:
            continue
        entry = totals[library]
        entry["instructions"] += runs * len(block)
        for _, mnemonic, operands in block:
            loaded, stored = access_bytes(mnemonic, operands)
            entry["loaded"] += runs * loaded
            entry["stored"] += runs * stored
        if runs * len(block) > hottest[library][0]:
            hottest[library] = (runs * len(block), block, runs)
    for library, (retired, block, runs) in hottest.items():
        totals[library].update(hot=block, hot_runs=runs, hot_retired=retired)
    return totals


def _maps(stdout):
    line = next(line for line in stdout.splitlines() if line.startswith("MAPS "))
    return {lib: [tuple(span) for span in spans] for lib, spans in json.loads(line[5:]).items()}


def mca_cycles(block, cpu):
    """llvm-mca's cycles per iteration of ``block`` (branches left out) on ``cpu``, or None."""
    lines = [
        f"{mnemonic} {operands}".strip()
        for _, mnemonic, operands in block
        if not _BRANCH.match(mnemonic.lower())
    ]
    if not lines:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".s") as source:
        source.write("\n".join(lines) + "\n")
        source.flush()
        result = subprocess.run(
            [
                str(LLVM_MCA),
                "-mtriple=aarch64-linux-gnu",
                f"-mcpu={cpu}",
                "-iterations=100",
                source.name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    found = re.search(r"Total Cycles:\s+(\d+)", result.stdout)
    return int(found.group(1)) / 100 if found else None


# ---- the benchmark -------------------------------------------------------------------------
def measure(names, dtypes, workdir):
    """Build, run on the board, check and count every variant; returns the result rows."""
    board = aarch64_board.setup()
    jobs, rows, reference = [], [], {}
    for workload in select(names):
        for dtype in dtypes:
            reference[(workload.name, dtype)] = ref.depthwise_conv2d_nchw(
                _input_nchw(workload, dtype),
                _model_weight(workload, dtype),
                (workload.stride,) * 2,
                workload.pads,
                out_dtype="float64",
            )
            for side, form, layout in variants(workload):
                mod, data = _model(workload, dtype, form, LAYOUTS[layout])
                tag = f"{workload.name}-{dtype}-{side}-{form}-{layout}"
                row = {
                    "workload": workload.name,
                    "describe": workload.describe(),
                    "dtype": dtype,
                    "side": side,
                    "form": form,
                    "layout": layout,
                    "outputs": workload.C * workload.m * math.prod(workload.out_hw),
                }
                print(f"building {tag}", file=sys.stderr, flush=True)
                try:
                    _build(mod, side == "project", workdir / f"{tag}.so")
                except Exception as error:  # pylint: disable=broad-except
                    row["error"] = (str(error).strip().splitlines() or [type(error).__name__])[-1][
                        :200
                    ]
                    rows.append(row)
                    continue
                np.save(workdir / f"{tag}-in.npy", data)
                jobs.append(
                    {
                        "library": str(workdir / f"{tag}.so"),
                        "input": str(workdir / f"{tag}-in.npy"),
                        "output": str(workdir / f"{tag}-out.npy"),
                    }
                )
                row["job"] = jobs[-1]
                rows.append(row)
    print(f"counting {len(jobs)} libraries on the board...", file=sys.stderr, flush=True)
    totals = count_on_board(board, jobs, workdir)
    for row in rows:
        job = row.pop("job", None)
        if job is None:
            continue
        total = totals[job["library"]]
        row["instructions_per_output"] = total["instructions"] / RUNS / row["outputs"]
        row["loaded_per_output"] = total["loaded"] / RUNS / row["outputs"]
        row["stored_per_output"] = total["stored"] / RUNS / row["outputs"]
        row["hot_block_instructions"] = len(total["hot"] or [])
        row["hot_block"] = [f"{m} {o}".strip() for _, m, o in total["hot"] or []]
        row["hot_share"] = total.get("hot_retired", 0) / max(1, total["instructions"])
        # the hot block's cycles (llvm-mca, per iteration) x its executions, per output
        row["mca_cycles"] = (
            {
                cpu: (
                    cycles * total["hot_runs"] / RUNS / row["outputs"]
                    if (cycles := mca_cycles(total["hot"], cpu)) is not None
                    else None
                )
                for cpu in CPUS
            }
            if total["hot"]
            else {}
        )
        got = np.load(job["output"])
        expected = reference[(row["workload"], row["dtype"])]
        got_nchw = got if row["layout"] == "nchw" else got.transpose(0, 3, 1, 2)
        row["max_abs_err"] = float(np.max(np.abs(got_nchw.astype("float64") - expected)))
    return rows


def _best(rows, workload, dtype, side):
    candidates = [
        r
        for r in rows
        if r["workload"] == workload
        and r["dtype"] == dtype
        and r["side"] == side
        and "instructions_per_output" in r
    ]
    return min(candidates, key=lambda r: r["instructions_per_output"]) if candidates else None


def summarize(rows):
    """Per workload and dtype: each side's best variant and the project/stock ratios."""
    table = []
    for workload, dtype in dict.fromkeys((r["workload"], r["dtype"]) for r in rows):
        project, stock = (_best(rows, workload, dtype, side) for side in ("project", "stock"))
        entry = {
            "workload": workload,
            "dtype": dtype,
            "describe": next(r["describe"] for r in rows if r["workload"] == workload),
            "project": project and _brief(project),
            "stock": stock and _brief(stock),
        }
        if project and stock:
            entry["instructions_ratio"] = (
                project["instructions_per_output"] / stock["instructions_per_output"]
            )
            entry["bytes_ratio"] = (
                project["loaded_per_output"] + project["stored_per_output"]
            ) / max(1e-9, stock["loaded_per_output"] + stock["stored_per_output"])
        table.append(entry)
    ratios = [e["instructions_ratio"] for e in table if "instructions_ratio" in e]
    geomean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
    return table, geomean


def _brief(row):
    keys = (
        "form",
        "layout",
        "instructions_per_output",
        "loaded_per_output",
        "stored_per_output",
        "hot_block_instructions",
        "hot_share",
        "mca_cycles",
        "max_abs_err",
    )
    return {key: row[key] for key in keys}


def write_docs(rows, table, geomean, prefix, command):
    """Writes PREFIX.json (rows and table), PREFIX.md (the table) and PREFIX.png (the chart)."""
    Path(f"{prefix}.json").write_text(
        json.dumps(
            {
                "command": command,
                "target": TARGET,
                "runs": RUNS,
                "rows": rows,
                "table": table,
                "geomean_instructions_ratio": geomean,
            },
            indent=1,
        )
    )
    lines = [
        "# Depthwise layers on aarch64, counted under QEMU (issue 21)",
        "",
        f"`{command}`; target `{TARGET}`, one thread, {RUNS} runs per library. Per output: "
        "instructions retired in the library's code, bytes loaded + stored (access sizes of "
        "the executed loads and stores); llvm-mca: cycles per iteration of the block that "
        "retires the most instructions (branches left out), times its executions, per output: "
        "the cycles of the hot loop alone. Each side's best variant over weight form and "
        "layout (`bench/arm_counts.py`); every output checked against NumPy (max error in "
        "the JSON). Counts are not times.",
        "",
        "| workload | dtype | project (form, layout) | instr/out | bytes/out | stock (form, "
        "layout) | instr/out | bytes/out | instr ratio | A76 hot cyc/out p/s "
        "| N1 hot cyc/out p/s |",
        "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for entry in table:
        cells = []
        for side in ("project", "stock"):
            best = entry[side]
            if best is None:
                cells += ["does not build", "-", "-"]
                continue
            cells += [
                f"{best['form']}, {best['layout']}",
                f"{best['instructions_per_output']:.2f}",
                f"{best['loaded_per_output'] + best['stored_per_output']:.1f}",
            ]
        ratio = f"{entry['instructions_ratio']:.2f}" if "instructions_ratio" in entry else "-"
        mca = []
        for cpu in CPUS:
            values = [entry[s] and entry[s]["mca_cycles"].get(cpu) for s in ("project", "stock")]
            mca.append(" / ".join("-" if v is None else f"{v:.2f}" for v in values))
        lines.append(
            f"| {entry['workload']} ({entry['describe']}) | {entry['dtype']} | "
            + " | ".join(cells)
            + f" | {ratio} | {mca[0]} | {mca[1]} |"
        )
    if geomean:
        lines += ["", f"Geomean of project ÷ stock instructions per output: **{geomean:.2f}**."]
    failed = [r for r in rows if "error" in r]
    if failed:
        lines += ["", "Variants that did not build:", ""]
        lines += [
            f"- {r['workload']} {r['dtype']} {r['side']} {r['form']} {r['layout']}: "
            f"{r['error']}"
            for r in failed
        ]
    Path(f"{prefix}.md").write_text("\n".join(lines) + "\n")
    _plot(table, geomean, f"{prefix}.png")


def _plot(table, geomean, path):
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    entries = [e for e in table if "instructions_ratio" in e]
    if not entries:
        return
    labels = [f"{e['workload']} {e['dtype']}" for e in entries]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(entries) + 1.5))
    ax.barh(labels, [e["instructions_ratio"] for e in entries], color="#4c72b0")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("project ÷ stock best, instructions per output (aarch64, QEMU count)")
    ax.set_title(f"geomean {geomean:.2f}" if geomean else "")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    """Builds, counts and checks every workload's variants on the board; writes the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two workloads, float32")
    parser.add_argument("--workloads", help="comma-separated names from bench/workloads.py")
    parser.add_argument("--dtypes", default="float32,int8")
    parser.add_argument("--out-prefix", default=str(ROOT / "docs" / "arm-counts"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TOPHUB_LOCATION", "NONE")
    names = QUICK if args.quick else (args.workloads.split(",") if args.workloads else WORKLOADS)
    dtypes = ["float32"] if args.quick else args.dtypes.split(",")
    command = "python bench/arm_counts.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="arm-counts-") as workdir:
        rows = measure(names, dtypes, Path(workdir))
    table, geomean = summarize(rows)
    write_docs(rows, table, geomean, args.out_prefix, command.strip())
    for entry in table:
        print(entry["workload"], entry["dtype"], entry.get("instructions_ratio"))
    print("geomean", geomean)
    return 0


if __name__ == "__main__":
    sys.exit(main())
