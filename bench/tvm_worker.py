"""Builds, checks and times each workload's depthwise conv with TVM Relay; run as a subprocess.

For a workload it builds three inputs with ``relay.build`` at ``opt_level=3`` on
``llvm -mcpu=<host cpu>`` and runs them with the graph executor:

* ``mult``:   NCHW ``nn.conv2d``, multiplier-form weight ``[C, m, kh, kw]`` as a constant;
* ``canon``:  the same with the canonical weight ``[C*m, 1, kh, kw]``;
* ``tflite``: ``relay.frontend.from_tflite`` of ``bench/models/<name>.tflite`` (NHWC);
* ``packed``: ``nn.contrib_depthwise_conv2d_NCHWc``, input and output packed NCHW{b}c and the
  canonical weight packed OIHW1i{b}o, ``b`` the largest divisor of C up to the target's lanes
  (16 on AVX-512, 8 on AVX2): the layer as it sits between packed neighbours in a network
  that x86 alter-layout packed (stock TVM: ``depthwise_conv2d_NCHWc``).

and, asked for the quantized section (``"kinds": ["int8"]``), one more:

* ``int8``: ``relay.frontend.from_tflite`` of ``bench/models/<name>_int8.tflite`` (NHWC, int8
  in and out: ``qnn.conv2d`` with an HWOI weight ``[kh, kw, C, m]``, the multiplier form, then
  ``qnn.requantize``), run on the int8 input run.py passes and checked against LiteRT's int8
  output (within one quantum); the output is saved for run.py to compare stock with project.
  The answer also says what the conv became after QNN lowering (``lowered``: op, dtypes,
  layouts and weight shape of each grouped conv in ``relay.optimize``'s result).

Each output is checked against the NumPy reference. Whether the project's pass is active is
up to the environment (``TVM_CANONICALIZE_DEPTHWISE=0`` gives stock TVM); this file does not
look at the project. Set ``TOPHUB_LOCATION=NONE`` and ``TVM_NUM_THREADS=2`` (run.py does).

Protocol with run.py, one JSON object per line: the first stdout line is a ``hello`` (versions,
target). Then, read from stdin,

* ``{"op": "build", "name": NAME, "slice_ms": T}`` builds and checks NAME's three inputs and
  answers ``{"name": NAME, "mult": {"ok", "err", "build_s", "error"}, "canon": ..., ...}``;
  with ``"kinds": ["int8"], "int8": {"input": npy, "expected": npy, "output": npy}`` it
  builds the int8 input instead (``err`` is then the largest difference in quanta);
* ``{"op": "time"}`` times each built input once for about T ms (``time_evaluator``; the
  input timed first rotates from request to request), waits until its thread pool is idle,
  and answers ``{"mult": ms, "canon": ms, "tflite": ms}``
  (null for an input that failed).

run.py alternates ``time`` requests with the other engines, so all engines of a workload see
the same machine noise. Standalone, ``python bench/tvm_worker.py NAME [NAME ...]`` prints
each workload's build result with medians of 15 timings.
"""

# the benchmark's modules are imported once their directory is on sys.path
# pylint: disable=wrong-import-position
# TVM is imported where used: after main() has moved stdout (the protocol) aside, and not at
# all by the scripts that import this module's helpers
# pylint: disable=import-outside-toplevel
import json
import logging
import os
import sys
import time
import traceback
from importlib import metadata

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from reference import check, reference_output  # noqa: E402
from timing import settle  # noqa: E402
from workloads import BY_NAME  # noqa: E402

MODELS_DIR = os.path.join(HERE, "models")
KINDS = ("mult", "canon", "tflite", "packed")
INT8_KINDS = ("int8",)


def relay_conv(wl, weight):
    """IRModule of an NCHW depthwise ``nn.conv2d`` with ``weight`` as a constant."""
    from tvm import IRModule, relay

    data = relay.var("data", shape=(1, wl.C, wl.H, wl.W), dtype="float32")
    out = relay.nn.conv2d(
        data,
        relay.const(weight),
        strides=(wl.stride, wl.stride),
        padding=wl.pads,
        dilation=(wl.dilation, wl.dilation),
        groups=wl.C,
        channels=wl.C * wl.m,
        kernel_size=(wl.kh, wl.kw),
    )
    return IRModule.from_expr(relay.Function([data], out))


def channel_block(channels, lanes):
    """The largest divisor of ``channels`` up to ``lanes``: x86's block for a packed layer."""
    return next(b for b in range(min(channels, lanes), 0, -1) if channels % b == 0)


def packed_module(wl, target):
    """``(mod, block)``: the packed layer (see ``packed`` above) with a constant weight."""
    import tvm
    from tvm import IRModule, relay
    from tvm.target.x86 import get_simd_32bit_lanes

    with tvm.target.Target(target):
        block = channel_block(wl.C, get_simd_32bit_lanes())
    out_c = wl.C * wl.m
    weight = wl.weight_canonical().reshape(out_c // block, block, 1, wl.kh, wl.kw)
    weight = np.ascontiguousarray(weight.transpose(0, 2, 3, 4, 1))[:, :, :, :, None, :]
    data = relay.var("data", shape=(1, wl.C // block, wl.H, wl.W, block), dtype="float32")
    out = relay.nn.contrib_depthwise_conv2d_nchwc(
        data,
        relay.const(weight),
        strides=(wl.stride, wl.stride),
        padding=wl.pads,
        dilation=(wl.dilation, wl.dilation),
        groups=wl.C,
        channels=out_c,
        kernel_size=(wl.kh, wl.kw),
        data_layout=f"NCHW{block}c",
        kernel_layout=f"OIHW1i{block}o",
        out_layout=f"NCHW{block}c",
    )
    return IRModule.from_expr(relay.Function([data], out)), block


def tflite_module(wl, int8=False):
    """``(mod, params, input_name)`` from the workload's .tflite file (``_int8.tflite``)."""
    import tflite
    from tvm import relay

    path = os.path.join(MODELS_DIR, f"{wl.name}{'_int8' if int8 else ''}.tflite")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} is missing: run bench/make_tflite_models.py" + (" --int8" if int8 else "")
        )
    with open(path, "rb") as f:
        model = tflite.Model.GetRootAsModel(f.read(), 0)
    graph = model.Subgraphs(0)
    name = graph.Tensors(graph.Inputs(0)).Name().decode()
    mod, params = relay.frontend.from_tflite(
        model,
        shape_dict={name: (1, wl.H, wl.W, wl.C)},
        dtype_dict={name: "int8" if int8 else "float32"},
    )
    return mod, params, name


def lowered_convs(mod, target, params):
    """What each grouped conv is after ``relay.optimize`` (QNN lowered, layouts altered):
    ``"op data*weight->out data_layout/kernel_layout"`` strings, in post order."""
    import tvm
    from tvm import relay

    with tvm.transform.PassContext(opt_level=3):
        opt, _ = relay.optimize(mod, target=target, params=params)
    found = []

    def visit(node):
        if (
            isinstance(node, relay.Call)
            and isinstance(node.op, tvm.ir.Op)
            and "conv2d" in node.op.name
            and int(getattr(node.attrs, "groups", 1)) > 1
        ):
            a = node.attrs
            w = node.args[1].checked_type
            found.append(
                f"{node.op.name} {node.args[0].checked_type.dtype}*{w.dtype}->"
                f"{node.checked_type.dtype} {a.data_layout}/{a.kernel_layout} "
                f"weight {'x'.join(str(int(d)) for d in w.shape)}"
            )

    relay.analysis.post_order_visit(opt["main"], visit)
    return sorted(set(found))


def build_int8(wl, target, files, slice_ms):
    """Build and check the int8 input; its output is saved to ``files["output"]``."""
    import tvm
    from tvm import relay
    from tvm.contrib import graph_executor

    mod, params, input_name = tflite_module(wl, int8=True)
    x = np.load(files["input"])
    expected = np.load(files["expected"])
    relay.backend.te_compiler.get().clear()
    start = time.perf_counter()
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=target, params=params)
    build_s = time.perf_counter() - start
    dev = tvm.cpu(0)
    gmod = graph_executor.GraphModule(lib["default"](dev))
    gmod.set_input(input_name, x)
    gmod.run()
    out = gmod.get_output(0).numpy()
    np.save(files["output"], out)
    diff = (
        None
        if out.shape != expected.shape or out.dtype != expected.dtype
        else int(np.max(np.abs(out.astype(np.int32) - expected.astype(np.int32))))
    )
    probe = gmod.module.time_evaluator("run", dev, number=10, repeat=3)
    number = max(1, int(slice_ms / max(min(probe().results) * 1e3, 1e-4)))
    timer = gmod.module.time_evaluator("run", dev, number=number, repeat=1)
    result = {
        "ok": diff is not None and diff <= 1,
        "err": diff,
        "build_s": round(build_s, 2),
        "error": None,
        "output": files["output"],
        "dtype": str(out.dtype),
        "lowered": lowered_convs(mod, target, params),
    }
    return result, (lambda: timer().mean * 1e3)


def build(kind, wl, target, expected, slice_ms):
    """Build and check one input: ``(result dict, timer)``; the timer returns ms per run."""
    import tvm
    from tvm import relay
    from tvm.contrib import graph_executor

    if kind == "tflite":
        mod, params, input_name = tflite_module(wl)
        x = wl.input_nhwc()
    elif kind == "packed":
        mod, block = packed_module(wl, target)
        params, input_name = None, "data"
        x = wl.input_nchw().reshape(1, wl.C // block, block, wl.H, wl.W).transpose(0, 1, 3, 4, 2)
        x = np.ascontiguousarray(x)
    else:
        weight = wl.weight_multiplier() if kind == "mult" else wl.weight_canonical()
        mod, params, input_name, x = relay_conv(wl, weight), None, "data", wl.input_nchw()

    relay.backend.te_compiler.get().clear()  # no kernel reused from an earlier build
    start = time.perf_counter()
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=target, params=params)
    build_s = time.perf_counter() - start

    dev = tvm.cpu(0)
    gmod = graph_executor.GraphModule(lib["default"](dev))
    gmod.set_input(input_name, x)
    gmod.run()
    out = gmod.get_output(0).numpy()
    if kind == "tflite":
        out = out.transpose(0, 3, 1, 2)
    elif kind == "packed":
        out = out.transpose(0, 1, 4, 2, 3).reshape(expected.shape)
    ok, err = check(out, expected)

    probe = gmod.module.time_evaluator("run", dev, number=10, repeat=3)
    number = max(1, int(slice_ms / max(min(probe().results) * 1e3, 1e-4)))
    timer = gmod.module.time_evaluator("run", dev, number=number, repeat=1)
    result = {"ok": ok, "err": err, "build_s": round(build_s, 2), "error": None}
    return result, (lambda: timer().mean * 1e3)


def short_error(exc):
    """The telling part of a (TVM) exception: its last non-empty lines, trimmed."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " | ".join(lines[-3:]) if lines else ""
    return f"{type(exc).__name__}: {text}"[:400]


class Session:
    """The inputs of the workload built last, and their timers."""

    def __init__(self, target):
        self.target = target
        self.timers = {}
        self.kinds = KINDS
        self.rounds = 0

    def build(self, name, slice_ms=20, kinds=KINDS, int8_files=None):
        """Builds and checks workload ``name``'s inputs of ``kinds``, keeping their timers;
        the answer to a ``build`` request."""
        self.kinds = tuple(kinds)
        wl = BY_NAME.get(name)
        if wl is None:
            return {"name": name, **{k: _failed(f"unknown workload {name!r}") for k in self.kinds}}
        expected = None if self.kinds == INT8_KINDS else reference_output(wl)
        self.timers = {}
        result = {"name": name}
        for kind in self.kinds:
            try:
                if kind == "int8":
                    result[kind], self.timers[kind] = build_int8(
                        wl, self.target, int8_files, slice_ms
                    )
                else:
                    result[kind], self.timers[kind] = build(
                        kind, wl, self.target, expected, slice_ms
                    )
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # one failing input must not stop the run: it is reported as failed
                logging.error("%s/%s failed:\n%s", name, kind, traceback.format_exc())
                result[kind] = _failed(short_error(exc))
        settle()
        return result

    def time(self):
        """Times each built input once; the answer to a ``time`` request."""
        # the inputs take turns at going first, so none always follows another engine
        kinds = self.kinds
        start = self.rounds % len(kinds)
        self.rounds += 1
        order = kinds[start:] + kinds[:start]
        times = {kind: self.timers[kind]() if kind in self.timers else None for kind in order}
        times = {kind: times[kind] for kind in kinds}
        settle()  # TVM's thread pool spins for a while: let it sleep before the next engine
        return times


def _failed(error):
    return {"ok": False, "err": None, "build_s": None, "error": error}


def host_target():
    """``llvm -mcpu=<this host's CPU>``."""
    import tvm

    return "llvm -mcpu=" + tvm.target.codegen.llvm_get_system_cpu()


def hello(target):
    """A worker's first protocol line: versions, target, switch and threads."""
    import tvm

    try:  # metadata only, for the report header
        project = metadata.version("tvm-canonicalize-depthwise")
    except metadata.PackageNotFoundError:
        project = None
    return {
        "hello": True,
        "tvm": tvm.__version__,
        "target": target,
        "project": project,
        "switch": os.environ.get("TVM_CANONICALIZE_DEPTHWISE"),
        "threads": os.environ.get("TVM_NUM_THREADS"),
    }


def main(argv):
    """Answers run.py's requests from stdin, or with NAMEs in ``argv`` builds and times them."""
    # stdout carries the protocol; anything TVM or LLVM prints goes to stderr
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("TOPHUB_LOCATION", "NONE")

    session = Session(host_target())
    proto.write(json.dumps(hello(session.target)) + "\n")

    if argv:  # standalone
        for name in argv:
            result = session.build(name)
            samples = [session.time() for _ in range(15)]
            for kind in session.timers:
                result[kind]["ms"] = float(np.median([s[kind] for s in samples]))
            proto.write(json.dumps(result) + "\n")
        return
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "build":
            answer = session.build(
                req["name"], req.get("slice_ms", 20), req.get("kinds", KINDS), req.get("int8")
            )
        elif req["op"] == "time":
            answer = session.time()
        else:
            answer = {"error": f"unknown op {req['op']!r}"}
        proto.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
