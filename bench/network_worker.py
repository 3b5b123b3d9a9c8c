"""Builds, checks, profiles and times whole networks with TVM Relay; a subprocess of networks.py.

For a network of ``bench/networks/`` it builds three paths with ``relay.build`` at
``opt_level=3`` on ``llvm -mcpu=<host cpu>`` and runs them with the graph executor:

* ``tflite_nhwc``: ``relay.frontend.from_tflite`` of ``<name>.tflite``, as imported (NHWC);
* ``tflite_nchw``: the same, then ``ConvertLayout`` of the convolutions to NCHW (TVM's usual
  x86 path: alter-layout then packs them to NCHW{b}c);
* ``onnx``: ``relay.frontend.from_onnx`` of ``<name>.onnx`` (NCHW, the same weights);

and, for the quantized networks (asked for with ``"paths": ["int8_nhwc", "int8_nchw"]``), the
full-integer ``<name>_int8.tflite`` on the int8 input of ``<name>_int8.npz``:

* ``int8_nhwc``: ``relay.frontend.from_tflite``, as imported (NHWC, ``qnn.conv2d``);
* ``int8_nchw``: the same, then ``ConvertLayout`` of ``nn.conv2d`` and ``qnn.conv2d`` to NCHW.

Their outputs (int8) are checked against LiteRT's within ``INT8_QUANTA`` quanta (``err`` is
the largest difference in quanta) and saved (``output``: a .npy path) so that networks.py can
compare stock with project. They are built for :func:`int8_target` (without VNNI where the
LLVM is 21 or newer: TVM 0.19's VNNI code no longer compiles there).

Whether the project's pass is active is up to the environment (``TVM_CANONICALIZE_DEPTHWISE=0``
gives stock TVM). Set ``TOPHUB_LOCATION=NONE`` and ``TVM_NUM_THREADS=2`` (networks.py does).

For each path it reports, besides whether it built and matched the source engine's output
(LiteRT's for the TFLite paths, ONNX Runtime's for ONNX; networks.py passes them as .npy files):

* ``profile``: TVM's debug executor (``run_individual``), per node of the compiled graph the
  median time, each fused function attributed by the Relay ops it holds: ``depthwise`` (it
  holds a conv whose ``groups`` equals its input channels, or a
  ``contrib_depthwise_conv2d_NCHWc``), else ``layout_transform`` (it holds one), else ``conv``,
  else ``other``; totals per class in microseconds and the nodes themselves;
* ``layout_transforms``: the number of ``layout_transform`` ops in the compiled graph (each
  call of a fused function counted), ``depthwise_convs`` likewise.

The ops of each fused function come from ``relay.optimize`` of the same module in the same
``PassContext`` (what ``relay.build`` lowers): the k-th call of a primitive function in its
``main`` is the k-th ``tvm_op`` node of the graph; the names are checked to agree.

Protocol, one JSON object per line (as ``tvm_worker.py``): first a ``hello``; then
``{"op": "build", "network": N, "slice_ms": T, "expected": {"tflite": npy, "onnx": npy}}``
answers ``{path: {"ok", "err", "build_s", "error", "profile", "layout_transforms", ...}}``
(with ``"records": {path: {"tuner", "log"}}`` those paths are built with tuned records, see
:func:`compile_path`)
(with ``"paths": [...int8 paths], "expected": {"int8": npy}, "outputs": {path: npy}`` the
quantized paths, each output saved where ``outputs`` says);
``{"op": "time"}`` times each built path once for about T ms with the same Python loop as the
other engines (``timing.slice_timer`` around the graph executor's ``run``) and answers
``{path: ms}``. Standalone: ``python bench/network_worker.py NAME`` prints a build answer.
"""

# the benchmark's modules are imported once their directory is on sys.path
# pylint: disable=wrong-import-position
# TVM and the frontends' packages are imported where used: after main() has moved stdout (the
# protocol) aside, and not at all by networks.py, which imports this module's helpers
# pylint: disable=import-outside-toplevel
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from timing import settle, slice_timer  # noqa: E402
from tvm_worker import hello, host_target, short_error  # noqa: E402
from tvm_canonicalize_depthwise.onnx_compat import ensure_onnx_mapping  # noqa: E402

# bench/vendor_networks.py points its workers at the models it fetched
NETWORKS_DIR = os.environ.get("BENCH_NETWORKS_DIR") or os.path.join(HERE, "networks")
PATHS = ("tflite_nhwc", "tflite_nchw", "onnx")
INT8_PATHS = ("int8_nhwc", "int8_nchw")
INT8_QUANTA = 4  # how far (in output quanta) a quantized network's TVM output may be from LiteRT
# TVM's ConvertLayout recipe for TFLite models (conv ops to NCHW, kernels in their default)
DESIRED_LAYOUTS = {
    "nn.conv2d": ["NCHW", "default"],
    "nn.conv2d_transpose": ["NCHW", "default"],
    "qnn.conv2d": ["NCHW", "default"],
}
# "pointwise": a function whose convolutions are all regular 1x1 ones (no depthwise)
CLASSES = ("depthwise", "layout_transform", "pointwise", "conv", "other")
CONVS = ("nn.conv2d", "nn.contrib_conv2d_NCHWc", "nn.contrib_depthwise_conv2d_NCHWc", "qnn.conv2d")


def close(got, expected):
    """``(ok, max_abs_err)``: equal within 1e-4 of the output's scale (deep float networks
    reorder sums differently per engine); err is None if the shapes differ."""
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return False, None
    err = float(np.max(np.abs(got.astype(np.float64) - expected)))
    return bool(err <= 1e-4 * max(1.0, float(np.max(np.abs(expected))))), err


def network_input(name, int8=False):
    """The network's input, NHWC, as make_networks.py saved it (float32, or int8 for the
    quantized network)."""
    if int8:
        return np.load(os.path.join(NETWORKS_DIR, f"{name}_int8.npz"))["input_int8"]
    return np.load(os.path.join(NETWORKS_DIR, f"{name}.npz"))["input_nhwc"]


def quanta_close(got, expected):
    """``(ok, max difference in quanta)``: int8 outputs within ``INT8_QUANTA``."""
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return False, None
    err = int(np.max(np.abs(got.astype(np.int32) - expected.astype(np.int32))))
    return err <= INT8_QUANTA, err


def import_module(name, path):
    """``(mod, params, input_name, x)`` of one path."""
    from tvm import relay

    int8 = path in INT8_PATHS
    x = network_input(name, int8)
    if path.startswith("tflite") or int8:
        import tflite

        with open(os.path.join(NETWORKS_DIR, f"{name}{'_int8' if int8 else ''}.tflite"), "rb") as f:
            model = tflite.Model.GetRootAsModel(f.read(), 0)
        graph = model.Subgraphs(0)
        input_name = graph.Tensors(graph.Inputs(0)).Name().decode()
        mod, params = relay.frontend.from_tflite(
            model, shape_dict={input_name: x.shape}, dtype_dict={input_name: str(x.dtype)}
        )
        if path in ("tflite_nchw", "int8_nchw"):
            import tvm

            seq = tvm.transform.Sequential(
                [
                    relay.transform.RemoveUnusedFunctions(),
                    relay.transform.ConvertLayout(DESIRED_LAYOUTS),
                ]
            )
            with tvm.transform.PassContext(opt_level=3):
                mod = seq(mod)
        return mod, params, input_name, x
    import onnx

    ensure_onnx_mapping()
    model = onnx.load(os.path.join(NETWORKS_DIR, f"{name}.onnx"))
    inits = {i.name for i in model.graph.initializer}
    input_name = next(i.name for i in model.graph.input if i.name not in inits)
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    mod, params = relay.frontend.from_onnx(model, shape={input_name: x.shape}, freeze_params=True)
    return mod, params, input_name, x


# ---------------------------------------------------------------------------------------------
# attribution of the compiled graph's nodes
def _channels(shape, layout):
    """Channels of a tensor of ``shape`` in ``layout`` (NCHW, NHWC, NCHW8c, ...)."""
    axes = re.findall(r"\d*[A-Za-z]", layout)
    c = 1
    for axis, extent in zip(axes, shape):
        if axis[-1] in "Cc":
            c *= int(extent)
    return c


def _kernel_hw(call):
    """A convolution call's kernel (height, width)."""
    size = getattr(call.attrs, "kernel_size", None)
    if size is not None and len(size) == 2:
        return tuple(int(k) for k in size)
    layout = str(call.attrs.kernel_layout)
    shape = [int(d) for d in call.args[1].checked_type.shape]
    return shape[layout.index("H")], shape[layout.index("W")]


def _ops(func):
    """The Relay ops a primitive function holds, in post order, and its classification."""
    from tvm import relay

    ops, depthwise, kernels = [], 0, []

    def visit(node):
        nonlocal depthwise
        if isinstance(node, relay.Call) and isinstance(node.op, __import__("tvm").ir.Op):
            name = node.op.name
            ops.append(name)
            if name == "nn.contrib_depthwise_conv2d_NCHWc":
                depthwise += 1
            elif name in CONVS and int(node.attrs.groups) > 1:
                layout = str(node.attrs.data_layout)
                shape = [int(d) for d in node.args[0].checked_type.shape]
                if int(node.attrs.groups) == _channels(shape, layout):
                    depthwise += 1
            if name in CONVS:
                kernels.append(_kernel_hw(node))

    relay.analysis.post_order_visit(func.body, visit)
    if depthwise:
        cls = "depthwise"
    elif "layout_transform" in ops:
        cls = "layout_transform"
    elif kernels and all(k == (1, 1) for k in kernels):
        cls = "pointwise"
    elif any(op in CONVS or op.startswith("nn.conv") for op in ops):
        cls = "conv"
    else:
        cls = "other"
    return ops, cls, depthwise


def primitive_calls(mod, target, params):
    """The primitive functions ``main`` calls, in the graph executor's node order."""
    import tvm
    from tvm import relay

    with tvm.transform.PassContext(opt_level=3):
        opt_mod, _ = relay.optimize(mod, target=target, params=params)
    opt_mod = relay.transform.InferType()(opt_mod)
    calls = []

    def visit(node):
        if (
            isinstance(node, relay.Call)
            and isinstance(node.op, relay.Function)
            and node.op.attrs
            and int(node.op.attrs.get("Primitive", 0)) == 1
        ):
            calls.append(_ops(node.op))

    relay.analysis.post_order_visit(opt_mod["main"], visit)
    return calls


def _name_matches(func_name, ops):
    """Whether a lowered function's name was made from these ops (``fused_nn_conv2d_add``...)."""
    if func_name == "__nop":
        return all(
            op in ("reshape", "squeeze", "expand_dims", "contrib_reverse_reshape")
            or "reshape" in op
            for op in ops
        )
    base = re.sub(r"^tvmgen_default_", "", func_name)
    return base.startswith("fused_" + ops[0].replace(".", "_")) if ops else False


def profile(lib, dev, input_name, x, calls):
    """Per-class totals (us) and per-node records from the debug executor."""
    from tvm.contrib.debugger import debug_executor

    graph = json.loads(lib.get_graph_json())
    with tempfile.TemporaryDirectory(prefix="tvmdbg_") as dump:
        m = debug_executor.GraphModuleDebug(
            lib["debug_create"]("default", dev), [dev], lib.get_graph_json(), dump
        )
        m.set_input(input_name, x)
        m.run()
        times = m.run_individual(number=10, repeat=3)
    op_nodes = [(i, n) for i, n in enumerate(graph["nodes"]) if n["op"] == "tvm_op"]
    matched = len(op_nodes) == len(calls) and all(
        _name_matches(n["attrs"]["func_name"], c[0]) for (_, n), c in zip(op_nodes, calls)
    )
    totals = dict.fromkeys(CLASSES, 0.0)
    nodes = []
    for k, (i, node) in enumerate(op_nodes):
        us = float(np.median(times[i])) * 1e6
        name = node["attrs"]["func_name"]
        if matched:
            _, cls, _ = calls[k]
        else:  # fall back to the function's name
            cls = (
                "depthwise"
                if "depthwise" in name
                else (
                    "layout_transform"
                    if "layout_transform" in name
                    else "conv" if "conv" in name else "other"
                )
            )
        totals[cls] += us
        nodes.append({"name": name, "class": cls, "us": round(us, 2)})
    return {
        "total_us": round(sum(totals.values()), 1),
        **{f"{c}_us": round(v, 1) for c, v in totals.items()},
        "attributed_by": "ops" if matched else "name",
        "nodes": nodes,
    }


def int8_target(target):
    """The target of the int8 paths: ``target``, without VNNI where LLVM rejects TVM 0.19's
    VNNI code (see :mod:`tvm_canonicalize_depthwise.llvm_compat`), stock TVM as much as the
    project; TVM then uses ``vpmaddubsw``/``vpmaddwd``."""
    from tvm_canonicalize_depthwise.llvm_compat import without_broken_vnni

    return without_broken_vnni(target)


def compile_path(mod, params, target, records=None, config=None, choices=None):
    """``relay.build`` at opt_level 3, untuned, or with tuned ``records``: ``{"tuner":
    "autotvm", "log": file}`` (under ``apply_history_best``) or ``{"tuner": "metaschedule",
    "log": work_dir}`` (MetaSchedule's ``compile_relay`` with its JSON database; with the patch
    on, the hand-written depthwise schedule kept where it ran faster: ``choices``, a list, gets
    what was chosen per task). ``config``: the PassContext's."""
    import tvm
    from tvm import autotvm, relay
    from tvm import meta_schedule as ms

    if records and records["tuner"] == "metaschedule":
        database = ms.database.JSONDatabase(work_dir=records["log"])
        if os.environ.get("TVM_CANONICALIZE_DEPTHWISE", "1") != "0":
            # the project's build: the hand-written depthwise schedule where it ran faster
            from tvm.meta_schedule.hand_written import prefer_hand_written

            database, made = prefer_hand_written(database, mod, target, params)
            if choices is not None:
                choices[:] = made
        pass_config = {
            "relay.backend.use_meta_schedule": True,  # compile_relay's default
            "relay.backend.tir_converter": "default",
            **(config or {}),
        }
        return ms.relay_integration.compile_relay(
            database, mod, target, params, pass_config=pass_config
        )
    tuned = autotvm.apply_history_best(records["log"]) if records else contextlib.nullcontext()
    with tuned, tvm.transform.PassContext(opt_level=3, config=config):
        return relay.build(mod, target=target, params=params)


# TVM 0.19's LLVM code generator attaches debug info to every let-bound TIR value, which LLVM
# 22 rejects for vectors; some tuned configurations of stock's conv2d_NCHWc make TIR's CSE bind
# one (stock and project alike), as do some untuned stock builds (mediapipe's palm and pose
# networks). Such a build is retried without CSE, and reported as such.
CSE_OFF = {"tir.disable_cse_tir": True}


def compile_tuned(mod, params, target, records, choices=None):
    """:func:`compile_path`, retried without TIR's CSE where LLVM rejects the code:
    ``(lib, whether CSE was turned off)``."""
    import tvm

    try:
        return compile_path(mod, params, target, records, choices=choices), False
    except tvm.TVMError as err:
        if "dbg_declare" not in str(err):
            raise
    return compile_path(mod, params, target, records, CSE_OFF, choices), True


def tuning_target(target, tuner):
    """The target a tuner compiles for: MetaSchedule needs the cores in it."""
    if tuner != "metaschedule":
        return target
    return f"{target} -num-cores={os.environ.get('TVM_NUM_THREADS', '2')}"


def build(name, path, target, expected, slice_ms, save_to=None, records=None):
    """Build, check and profile one path: ``(result dict, timer)``."""
    import tvm
    from tvm import relay
    from tvm.contrib import graph_executor

    if path in INT8_PATHS:
        target = int8_target(target)
    if records:
        target = tuning_target(target, records["tuner"])
    mod, params, input_name, x = import_module(name, path)
    relay.backend.te_compiler.get().clear()
    start = time.perf_counter()
    choices = []
    lib, cse_off = compile_tuned(mod, params, target, records, choices)
    build_s = time.perf_counter() - start
    calls = primitive_calls(mod, target, params)

    dev = tvm.cpu(0)
    gmod = graph_executor.GraphModule(lib["default"](dev))
    gmod.set_input(input_name, x)
    gmod.run()
    out = gmod.get_output(0).numpy()
    ok, err = (quanta_close if path in INT8_PATHS else close)(out, expected)
    result = {
        "ok": ok,
        "err": err,
        "build_s": round(build_s, 2),
        "error": None,
        "layout_transforms": sum(c[0].count("layout_transform") for c in calls),
        "depthwise_convs": sum(c[2] for c in calls),
        "fused_functions": len(calls),
        "profile": profile(lib, dev, input_name, x, calls),
        "cse_off": cse_off,
        "hand_written": [
            {"task": c.task, "tuned_ms": c.tuned_ms, "hand_written_ms": c.hand_written_ms}
            for c in choices
        ],
    }
    if save_to:
        np.save(save_to, out)
        result["output"] = save_to
        result["target"] = target
    return result, slice_timer(gmod.module["run"], slice_ms)


def _failed(error):
    return {"ok": False, "err": None, "build_s": None, "error": error}


class Session:
    """The paths of the network built last, and their timers."""

    def __init__(self, target):
        self.target = target
        self.timers = {}
        self.paths = PATHS
        self.rounds = 0

    def build(self, name, expected, slice_ms, paths=PATHS, outputs=None, records=None):
        """Builds and checks network ``name``'s ``paths``, keeping their timers; the answer to
        a ``build`` request."""
        self.timers = {}
        self.paths = tuple(paths)
        result = {"network": name}
        for path in self.paths:
            try:
                ref = np.load(expected[path.split("_")[0]])
                result[path], self.timers[path] = build(
                    name,
                    path,
                    self.target,
                    ref,
                    slice_ms,
                    (outputs or {}).get(path),
                    (records or {}).get(path),
                )
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # one failing path must not stop the run: it is reported as failed
                logging.error("%s/%s failed:\n%s", name, path, traceback.format_exc())
                result[path] = _failed(short_error(exc))
        settle()
        return result

    def time(self):
        """Times each built path once; the answer to a ``time`` request."""
        paths = self.paths
        start = self.rounds % len(paths)  # the paths take turns at going first
        self.rounds += 1
        order = paths[start:] + paths[:start]
        times = {p: self.timers[p]() if p in self.timers else None for p in order}
        settle()
        return {p: times[p] for p in paths}


def main(argv):
    """Answers networks.py's requests from stdin, or builds and times the NAMEs in ``argv``."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)  # stdout carries the protocol only
    os.dup2(2, 1)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("TOPHUB_LOCATION", "NONE")
    session = Session(host_target())
    proto.write(json.dumps(hello(session.target)) + "\n")
    if argv:  # standalone: check against Keras' output (no LiteRT/ONNX Runtime needed)
        for name in argv:
            keras_out = os.path.join(tempfile.mkdtemp(), "keras.npy")
            np.save(keras_out, np.load(os.path.join(NETWORKS_DIR, f"{name}.npz"))["keras_output"])
            result = session.build(name, {"tflite": keras_out, "onnx": keras_out}, 20)
            for path in PATHS:
                if path in session.timers:
                    result[path]["ms"] = float(
                        np.median([session.timers[path]() for _ in range(5)])
                    )
                    result[path].get("profile", {}).pop("nodes", None)
            proto.write(json.dumps(result) + "\n")
        return
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "build":
            answer = session.build(
                req["network"],
                req["expected"],
                req.get("slice_ms", 100),
                req.get("paths", PATHS),
                req.get("outputs"),
                req.get("records"),
            )
        elif req["op"] == "time":
            answer = session.time()
        else:
            answer = {"error": f"unknown op {req['op']!r}"}
        proto.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
