"""``canonicalize-depthwise [MODEL]``: the patch on the user's model, on and off, checked and timed.

The command imports a ``.tflite`` or ``.onnx`` file with TVM's frontends (without an argument,
the built-in ``data/default.tflite``), lists its depthwise convolutions with the form each is in
and the rewrite ``CanonicalizeDepthwise`` makes, compiles it with the patch on and off, on the
path as imported and, for a model with NHWC convolutions, also converted to NCHW, checks the
outputs against the model's own engine (LiteRT, ONNX Runtime) when installed, and times it.
Each build is compiled in a child process, so that a crash in TVM or LLVM fails that build
only; the report says which.

Exit status: 0 when every build matches the reference, 1 when one does not or a build fails,
2 for unusable input (arguments, a missing or damaged file, a model TVM cannot import).
"""
# TVM and the frontends' packages are imported where needed: the command checks its
# arguments and the model file before paying for them.
# pylint: disable=import-outside-toplevel
import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import warnings

import numpy as np

from tvm_canonicalize_depthwise import ENV_VAR, enabled
from tvm_canonicalize_depthwise import models, remote
from tvm_canonicalize_depthwise.llvm_compat import VNNI_OFF, llvm_major, without_broken_vnni
from tvm_canonicalize_depthwise.models import ModelError, one_line

PROG = "canonicalize-depthwise"
RELATIVE_TOLERANCE = 1e-3
"""Float outputs match when ``max |TVM - reference| <= 1e-3 * max(1, max |reference|)``;
integer (quantized) outputs may differ by one step of rounding."""
NCHW_LAYOUTS = {"nn.conv2d": ["NCHW", "default"], "qnn.conv2d": ["NCHW", "default"]}
CONV_OPS = ("nn.conv2d", "qnn.conv2d")


class UsageError(Exception):
    """Bad input from the user: reported on one line, exit status 2."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _input_shape(text):
    """``NAME:D1,D2,...`` -> ``(name, (d1, d2, ...))``; the name may itself hold colons."""
    name, sep, dims = text.rpartition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:D1,D2,...")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: dimensions must be positive integers separated by commas") from None
    if any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"{text!r}: dimensions must be positive integers")
    return name, shape


def _parse_args(argv):
    parser = _ArgumentParser(
        prog=PROG,
        description="Import a TFLite or ONNX model with TVM, list its depthwise convolutions and "
        "what CanonicalizeDepthwise rewrites, compile it with the patch on and off (as imported "
        "and, for NHWC models, converted to NCHW), check the output against the model's own "
        "engine and time it.",
    )
    parser.add_argument("model", nargs="?", default=None,
                        help="a .tflite or .onnx file (default: the built-in small TFLite "
                        "network with depth multipliers 1, 2 and 4)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per build (>= 1)")
    parser.add_argument("--target", default=None, help="TVM target (default: host llvm)")
    parser.add_argument("--input-shape", type=_input_shape, action="append", default=[],
                        metavar="NAME:D1,D2,...",
                        help="shape of an input the model leaves dynamic (repeatable)")
    parser.add_argument("--rpc-tracker", metavar="HOST:PORT",
                        help="run the builds on a device behind this RPC tracker (needs "
                        "--rpc-key and the device's --target)")
    parser.add_argument("--rpc-key", help="the device's key at the RPC tracker")
    parser.add_argument("--cross-compiler", help="the C++ compiler that links libraries for "
                        "the target (default: <target triple>-g++ for another triple)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if bool(args.rpc_tracker) != bool(args.rpc_key):
        parser.error("--rpc-tracker and --rpc-key go together")
    if args.rpc_tracker:
        if not args.target:
            parser.error("--rpc-tracker needs --target, the device's target")
        try:
            args.rpc_tracker = remote.parse_tracker(args.rpc_tracker)
        except ValueError as err:
            parser.error(str(err))
    shapes = {}
    for name, shape in args.input_shape:
        if name in shapes:
            parser.error(f"--input-shape given twice for {name!r}")
        shapes[name] = shape
    args.input_shape = shapes
    return args


def _progress(message):
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: TVM's C++ logging and LiteRT's delegate notice write there."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w", encoding="utf-8") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class _Records(logging.Handler):
    """Keeps log records' messages (the pass's DEBUG records, the frontends' warnings)."""

    def __init__(self, level):
        super().__init__(level)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _pass_log():
    """Collect what CanonicalizeDepthwise logs (one DEBUG record per conv it rewrites)."""
    from tvm.relay.transform import canonicalize_depthwise

    records = _Records(logging.DEBUG)
    logger = logging.getLogger(canonicalize_depthwise.__name__)
    previous = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    try:
        yield records.messages
    finally:
        logger.removeHandler(records)
        logger.setLevel(previous)


# ---------------------------------------------------------------------------------------------
# what the model holds
def _shape(ty):
    return [int(e) if hasattr(e, "value") else str(e) for e in ty.shape]


def _conv_calls(func):
    """The ``nn.conv2d``/``qnn.conv2d`` calls of a typed function, in post order."""
    import tvm
    from tvm import relay

    calls = []

    def visit(node):
        if (isinstance(node, relay.Call) and isinstance(node.op, tvm.ir.Op)
                and node.op.name in CONV_OPS):
            calls.append(node)

    relay.analysis.post_order_visit(func, visit)
    return calls


def _source_name(call):
    """The frontend's name for a call (its span), or None. TFLite names an op by its output
    tensor, whose name lists the TensorFlow ops fused into it, separated by ';'."""
    span = call.span
    if span is None or span.source_name is None:
        return None
    name = str(span.source_name.name)
    return name or None


def _short_name(name):
    if name is None:
        return "(unnamed)"
    parts = name.split(";")
    for word in ("depthwise", "conv"):
        for part in parts:
            if word in part.lower():
                return part
    return parts[0]


def describe_depthwise(mod):
    """Every depthwise conv of ``mod`` (params bound) and what the pass makes of it.

    Returns ``(convs, depthwise, pass_log)``: the number of convolutions, one dict per
    depthwise convolution and the pass's log. The pass is run here on the module as imported;
    the conv calls before and after it are paired in post order (the rewrite swaps weights,
    never adds or drops a conv).
    """
    from tvm import relay
    from tvm.relay.transform.canonicalize_depthwise import (
        CanonicalizeDepthwise, conv_call_form)

    typed = relay.transform.InferType()(mod)
    before = _conv_calls(typed["main"])
    with _pass_log() as log:
        after_mod = CanonicalizeDepthwise()(typed)
    after = _conv_calls(after_mod["main"])
    paired = len(after) == len(before)
    found = []
    for index, call in enumerate(before):
        form = conv_call_form(call)
        if not form.is_depthwise:
            continue
        weight = _shape(call.args[1].checked_type)
        new_weight = _shape(after[index].args[1].checked_type) if paired else None
        if form.kind == "canonical":
            rewrite = "none needed"
        elif new_weight is not None and new_weight != weight:
            rewrite = f"weight {weight} -> {new_weight}"
        else:
            rewrite = "left as is"
        attrs = call.attrs
        found.append({
            "name": _source_name(call),
            "short_name": _short_name(_source_name(call)),
            "op": call.op.name,
            "layout": f"{attrs.data_layout}/{attrs.kernel_layout}",
            "input_shape": _shape(call.args[0].checked_type),
            "weight_shape": weight,
            "output_shape": _shape(call.checked_type),
            "strides": [int(s) for s in attrs.strides],
            "in_channels": form.in_channels,
            "multiplier": form.multiplier,
            "form": form.kind,
            "why": form.reason,
            "rewritten": rewrite.startswith("weight"),
            "rewrite": rewrite,
            "canonical_weight_shape": new_weight,
        })
    return len(before), found, log


# ---------------------------------------------------------------------------------------------
# building, checking, timing
def _build(mod, target, patch_on):
    """``relay.build`` with the patch switched by the environment variable it reads."""
    import tvm
    from tvm import relay

    previous = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = "1" if patch_on else "0"
    try:
        with tvm.transform.PassContext(opt_level=3):
            return relay.build(mod, target=target)
    finally:
        if previous is None:
            del os.environ[ENV_VAR]
        else:
            os.environ[ENV_VAR] = previous


def import_model(model, shapes):
    """The model in Relay as the command compiles it: imported by TVM's frontend, its weights
    bound as constants, typed. Raises :class:`ModelError` where TVM cannot import or type it."""
    from tvm import relay

    mod, params = models.to_relay(model, shapes)
    try:
        if params:
            mod["main"] = relay.build_module.bind_params_by_name(mod["main"], params)
        return relay.transform.InferType()(mod)
    except Exception as err:  # pylint: disable=broad-except
        raise ModelError(f"{model.path}: TVM cannot type the imported model: "
                         f"{one_line(err)}") from None


def _to_nchw(mod):
    import tvm
    from tvm import relay

    with tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(
            [relay.transform.InferType(), relay.transform.ConvertLayout(NCHW_LAYOUTS)])(mod)


def depthwise_functions(lib):
    """Names of the compiled functions that compute a depthwise convolution.

    Each compiled (fused) function keeps, in ``lib.function_metadata``, the Relay primitive
    function it was lowered from, after layout alteration. A function counts as depthwise when
    it holds a convolution (``nn.conv2d``, ``qnn.conv2d``, ``nn.contrib_*conv2d_NCHWc`` ...)
    whose shapes and ``groups`` make it depthwise by ``conv_form``, the same test the patch's
    dispatch uses, whatever its layout, or an op named depthwise.
    """
    import tvm
    from tvm import relay
    from tvm.relay.transform.canonicalize_depthwise import conv_call_form

    names = set()
    for name, info in lib.function_metadata.items():
        if name == "__tvm_main__":
            continue
        hits = []

        def visit(node, hits=hits):
            if not (isinstance(node, relay.Call) and isinstance(node.op, tvm.ir.Op)):
                return
            if "depthwise" in node.op.name:
                hits.append(node)
            elif "conv2d" in node.op.name and hasattr(node.attrs, "groups"):
                try:
                    if conv_call_form(node).is_depthwise:
                        hits.append(node)
                except Exception:  # pylint: disable=broad-except
                    pass  # an attribute set conv_form cannot read: not counted

        for func in info.relay_primfuncs.values():
            relay.analysis.post_order_visit(func, visit)
        if hits:
            names.add(str(name))
    return names


class _Build:
    """One compiled variant: the library loaded back, what the compile reported, or its error."""

    def __init__(self, error=None, factory=None, library=None, graph_json=None, params=None,
                 depthwise=(), rewritten=0, library_path=None):
        # factory["default"](device) makes the executor; library holds the compiled functions
        self.error, self.factory, self.library = error, factory, library
        self.graph_json, self.params = graph_json, params
        self.depthwise, self.rewritten = set(depthwise), rewritten
        self.library_path = library_path  # the exported library (what a device is sent)
        self.module, self.outputs = None, None
        # measured on a device: latencies (ms) of each round and the depthwise share
        self.latencies, self.share = None, None
        self.in_child = True  # compiled in a child process (False: here, as a fallback)


def compile_request(directory):
    """Carry out the compile described in ``directory/request.json`` (see :func:`_compile`).

    Writes ``lib.so``, ``params.bin`` and ``result.json`` (the graph, the depthwise functions,
    the pass's rewrite count) there, or ``result.json`` with the error and the stage it
    happened in. Runs in a process of its own (``python -m
    tvm_canonicalize_depthwise._compile_worker DIR``).
    """
    import tvm

    with open(os.path.join(directory, "request.json"), encoding="utf-8") as stream:
        request = json.load(stream)
    stage = "compiling"
    try:
        with open(os.path.join(directory, "module.json"), encoding="utf-8") as stream:
            mod = tvm.ir.load_json(stream.read())
        with _pass_log() as log:
            lib = _build(mod, tvm.target.Target(request["target"]), request["patch_on"])
        result = {"graph_json": lib.get_graph_json(),
                  "depthwise": sorted(depthwise_functions(lib)),
                  "rewritten": sum("->" in m for m in log)}
        stage = "exporting the library"
        fcompile = None
        if request.get("cross_compiler"):
            from tvm.contrib import cc

            fcompile = cc.cross_compiler(request["cross_compiler"])
        lib.export_library(os.path.join(directory, "lib.so"), fcompile=fcompile)
        with open(os.path.join(directory, "params.bin"), "wb") as stream:
            stream.write(bytes(tvm.runtime.save_param_dict(lib.get_params())))
    except Exception as err:  # pylint: disable=broad-except
        result = {"error": one_line(err), "stage": stage}
    with open(os.path.join(directory, "result.json"), "w", encoding="utf-8") as stream:
        json.dump(result, stream)


def _compile(mod, target, patch_on, workdir, cross_compiler=None, local=True):
    """Compile ``mod`` in a child process, so that a crash inside TVM or LLVM (an assertion, a
    signal) costs this build only; the library comes back as a shared object (linked by
    ``cross_compiler`` where given), loaded here where ``local``.

    The child is a fresh interpreter, not a fork: this process may already have run compiled
    code (the ONNX frontend evaluates shapes with it), and TVM's thread pool does not survive
    a fork. Where the child cannot export the library (no C compiler to link it with), the
    compile is done again here, unprotected.
    """
    import signal
    import subprocess

    import tvm

    directory = tempfile.mkdtemp(prefix="build", dir=workdir)
    with open(os.path.join(directory, "module.json"), "w", encoding="utf-8") as stream:
        stream.write(tvm.ir.save_json(mod))
    with open(os.path.join(directory, "request.json"), "w", encoding="utf-8") as stream:
        json.dump({"target": str(target), "patch_on": patch_on,
                   "cross_compiler": cross_compiler}, stream)
    with open(os.path.join(directory, "stderr.log"), "w+", encoding="utf-8") as log:
        child = subprocess.run(
            [sys.executable, "-m", "tvm_canonicalize_depthwise._compile_worker", directory],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=False)
        log.seek(0)
        lines = [line.strip() for line in log if line.strip()]
    result_path = os.path.join(directory, "result.json")
    if not os.path.exists(result_path):
        code = child.returncode
        how = (f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}")
        detail = f": {lines[-1][:300]}" if lines else ""
        return _Build(error=f"the compiler crashed ({how}){detail}")
    with open(result_path, encoding="utf-8") as stream:
        result = json.load(stream)
    if "error" in result:
        if result["stage"] == "compiling" or not local:
            return _Build(error=result["error"])
        with _pass_log() as log:
            lib = _build(mod, target, patch_on)
        build = _Build(factory=lib, library=lib.get_lib(), graph_json=lib.get_graph_json(),
                       params=lib.get_params(), depthwise=depthwise_functions(lib),
                       rewritten=sum("->" in m for m in log))
        build.in_child = False
        return build
    library_path = os.path.join(directory, "lib.so")
    library = tvm.runtime.load_module(library_path) if local else None
    with open(os.path.join(directory, "params.bin"), "rb") as stream:
        params = tvm.runtime.load_param_dict(stream.read())
    return _Build(factory=library, library=library, graph_json=result["graph_json"],
                  params=params, depthwise=result["depthwise"], rewritten=result["rewritten"],
                  library_path=library_path)


def _depthwise_share(build, feeds, repeat):
    """Share of the per-node time (TVM's debug executor) spent in depthwise functions."""
    import tvm

    with _quiet_stderr():
        return remote.depthwise_share(build.graph_json, build.library, tvm.cpu(0),
                                      build.depthwise, {**build.params, **feeds}, repeat)


def _time_ms(module, repeat):
    import tvm

    timer = module.module.time_evaluator("run", tvm.cpu(0), number=10, repeat=repeat)
    return float(np.median(timer().results)) * 1e3


def _outputs(module):
    return [module.get_output(i).numpy() for i in range(module.get_num_outputs())]


def _max_abs_err(got, expected):
    if len(got) != len(expected):
        return float("inf")
    err = 0.0
    for a, b in zip(got, expected):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float("inf")
        if a.size:
            err = max(err, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
    return err


def _tolerance(expected):
    if all(np.asarray(e).dtype.kind in "iub" for e in expected):
        return 1.0
    scale = max([1.0] + [float(np.max(np.abs(e))) for e in expected if np.asarray(e).size])
    return RELATIVE_TOLERANCE * scale


def _quantized(mod):
    """Whether the module holds a QNN operator (a quantized model)."""
    from tvm import relay

    found = []

    def visit(node):
        if isinstance(node, relay.Call) and getattr(node.op, "name", "").startswith("qnn."):
            found.append(node.op.name)

    relay.analysis.post_order_visit(mod["main"], visit)
    return bool(found)


def _host_target():
    import tvm

    return f"llvm -mcpu={tvm.target.codegen.llvm_get_system_cpu()}"


def run(args):
    """Import, describe, compile, check and time the model; returns the report as a dict.

    Raises :class:`ModelError` or :class:`UsageError` for unusable input, and anything else
    for a failure past that point.
    """
    path = args.model if args.model is not None else models.DEFAULT_MODEL
    model = models.read_model(path)
    shapes = models.resolve_shapes(model, args.input_shape)
    feeds = models.random_inputs(model, shapes)

    os.environ.setdefault("TOPHUB_LOCATION", "NONE")
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    import tvm
    from tvm.contrib import graph_executor

    try:
        target = tvm.target.Target(args.target or _host_target())
    except Exception as err:  # pylint: disable=broad-except
        raise UsageError(f"--target {args.target!r}: {one_line(err)}") from None
    device, cross_compiler = None, None
    if args.rpc_tracker:
        device = remote.Device(args.rpc_tracker, args.rpc_key)
        try:
            cross_compiler = remote.cross_compiler_for(target, args.cross_compiler)
            device.check()
        except (ValueError, remote.RemoteError) as err:
            raise UsageError(str(err)) from None
    elif args.cross_compiler:
        raise UsageError("--cross-compiler is for a device (--rpc-tracker)")

    # Frontend warnings and TVM's "not tuned" notices go to the report, not to the terminal.
    notices = _Records(logging.WARNING)
    logging.getLogger().addHandler(notices)
    for name in ("strategy", "autotvm", "te_compiler"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")
        mod = import_model(model, shapes)
        try:
            convs, depthwise, pass_log = describe_depthwise(mod)
        except Exception as err:  # pylint: disable=broad-except
            raise ModelError(f"{model.path}: TVM cannot type the imported model: "
                             f"{one_line(err)}") from None

    target_note = None
    if _quantized(mod):
        safe = without_broken_vnni(str(target))
        if safe != str(target):
            target = tvm.target.Target(safe)
            target_note = (f"VNNI off ({VNNI_OFF}): TVM 0.19's int8 VNNI code does not compile "
                           f"with LLVM {llvm_major()}")

    layouts = sorted({str(call.attrs.data_layout) for call in _conv_calls(mod["main"])})
    as_imported = f"{'/'.join(layouts) or 'no conv'} as imported"
    paths = [("as_imported", as_imported, mod)]
    if "NHWC" in layouts:
        _progress("converting the layout to NCHW (ConvertLayout)...")
        try:
            paths.append(("nchw", "converted to NCHW", _to_nchw(mod)))
        except Exception as err:  # pylint: disable=broad-except
            paths.append(("nchw", "converted to NCHW", f"ConvertLayout failed: {one_line(err)}"))

    builds = {}
    with tempfile.TemporaryDirectory(prefix="canonicalize-depthwise-") as workdir:
        for path_id, label, path_mod in paths:
            for patch_on in (True, False):
                if isinstance(path_mod, str):  # the path's module could not be made
                    builds[(path_id, patch_on)] = _Build(error=path_mod)
                    continue
                _progress(f"compiling (patch {'on' if patch_on else 'off'}, {label})...")
                builds[(path_id, patch_on)] = _compile(
                    path_mod, target, patch_on, workdir, cross_compiler, local=device is None)
        for key, build in builds.items():
            if build.error is not None:
                continue
            if device is not None:
                _progress(f"running on {device} ({_build_label(key, paths)})...")
                try:
                    build.outputs, build.latencies, build.share = device.measure(
                        build, feeds, args.repeat)
                except remote.RemoteError as err:
                    build.error = str(err)
                continue
            build.module = graph_executor.GraphModule(build.factory["default"](tvm.cpu(0)))
            build.module.set_input(**feeds)
            build.module.run()
            build.outputs = _outputs(build.module)
        ok = [key for key, build in builds.items() if build.error is None]
        if not ok:
            raise RuntimeError("no build succeeded: " + "; ".join(
                f"{_build_label(key, paths)}: {build.error}" for key, build in builds.items()))
        report = _check_and_time(args, model, feeds, paths, builds)
    report.update({
        "model": model.path,
        "format": model.kind,
        "default_model": model.is_default,
        "inputs": [{"name": name, "shape": list(shapes[name]), "dtype": dtype}
                   for name, _, dtype in model.inputs],
        "target": str(target),
        "target_note": target_note,
        "device": str(device) if device else "this machine",
        "threads": int(os.environ.get("TVM_NUM_THREADS", "2")),
        "convolutions": convs,
        "depthwise": depthwise,
        "rewritten": sum(conv["rewritten"] for conv in depthwise),
        "pass_log": pass_log,
        "notices": sorted(set(notices.messages)),
    })
    return report


def _build_label(key, paths):
    path_id, patch_on = key
    label = next(label for pid, label, _ in paths if pid == path_id)
    return f"patch {'on' if patch_on else 'off'}, {label}"


def _check_and_time(args, model, feeds, paths, builds):
    """Compare every build with the reference and time it; the report's measured part."""
    ok = {key: build for key, build in builds.items() if build.error is None}
    engine, expected = models.reference_engine(model), None
    if engine is not None:
        reference, run_reference = engine
        _progress(f"running the reference ({reference})...")
        try:
            with _quiet_stderr():
                expected = [np.asarray(o) for o in run_reference(feeds)]
        except Exception as err:  # pylint: disable=broad-except
            why = f"{reference} failed on the model: {one_line(err)}"
    else:
        why = "no engine for the model's format is installed"
    if expected is None:
        key = ("as_imported", False) if ("as_imported", False) in ok else next(iter(ok))
        reference = f"TVM, {_build_label(key, paths)} ({why})"
        expected = ok[key].outputs
    tolerance = _tolerance(expected)

    latency = {key: build.latencies or [] for key, build in ok.items()}
    local = {key: build for key, build in ok.items() if build.latencies is None}
    if local:
        _progress(f"timing {len(local)} builds ({args.repeat} x 10 runs each, 3 rounds)...")
        for _ in range(3):  # alternate, so that all builds see the same machine noise
            for key, build in local.items():
                latency[key].append(_time_ms(build.module, args.repeat))
        _progress("timing each op with the debug executor...")

    report_paths = []
    for path_id, label, _ in paths:
        entry = {"path": path_id, "description": label, "latency_ms": {}, "max_abs_err": {},
                 "depthwise_share": {}, "rewritten": builds[(path_id, True)].rewritten,
                 "errors": {}, "compiled_in_child": {}}
        for patch_on, name in ((True, "on"), (False, "off")):
            build = builds[(path_id, patch_on)]
            entry["compiled_in_child"][name] = build.in_child
            if build.error is not None:
                entry["errors"][name] = build.error
                continue
            entry["latency_ms"][name] = float(np.median(latency[(path_id, patch_on)]))
            entry["max_abs_err"][name] = _max_abs_err(build.outputs, expected)
            entry["depthwise_share"][name] = (
                build.share if build.latencies is not None
                else _depthwise_share(build, feeds, args.repeat))
        complete = not entry["errors"]
        entry["speedup"] = (entry["latency_ms"]["off"] / entry["latency_ms"]["on"]
                            if complete else None)
        # the patch's own check: what it changes in the outputs (0 for quantized models)
        entry["on_off_max_abs_diff"] = (
            _max_abs_err(builds[(path_id, True)].outputs, builds[(path_id, False)].outputs)
            if complete else None)
        report_paths.append(entry)
    complete = [p for p in report_paths if not p["errors"]]
    # the fastest path among those that compute the reference's result (any, if none does)
    right = [p for p in complete if max(p["max_abs_err"].values()) <= tolerance] or complete
    best = min(right, key=lambda p: p["latency_ms"]["on"]) if right else None
    errors = [err for p in report_paths for err in p["max_abs_err"].values()]
    return {
        "outputs": [{"shape": list(e.shape), "dtype": str(e.dtype)} for e in expected],
        "reference": reference,
        "tolerance": tolerance,
        "max_abs_err": max(errors),
        "paths": report_paths,
        "path": best["path"] if best else None,
        "latency_ms": dict(best["latency_ms"]) if best else None,
        "speedup": best["speedup"] if best else None,
        "depthwise_share": dict(best["depthwise_share"]) if best else None,
        "failed_builds": sum(len(p["errors"]) for p in report_paths),
    }


# ---------------------------------------------------------------------------------------------
def _print_report(report):
    kind = {"tflite": "TFLite", "onnx": "ONNX"}[report["format"]]
    default = ", the built-in default" if report["default_model"] else ""
    print(f"model: {report['model']} ({kind}{default})")
    for item in report["inputs"]:
        print(f"input: {item['name']} {item['shape']} {item['dtype']}")
    where = "" if report["device"] == "this machine" else f" on {report['device']}"
    threads = f", {report['threads']} threads" if not where else ""
    print(f"target: {report['target']}{where}{threads}")
    if report["target_note"]:
        print(f"  {report['target_note']}")
    print(f"depthwise convolutions: {len(report['depthwise'])} of {report['convolutions']} "
          "convolutions")
    for conv in report["depthwise"]:
        print(f"  {conv['short_name']}")
        print(f"    {conv['op']} {conv['layout']} in {conv['input_shape']} out "
              f"{conv['output_shape']} strides {conv['strides']}: C={conv['in_channels']} "
              f"m={conv['multiplier']}, {conv['form']} form; rewrite: {conv['rewrite']}")
    print(f"rewritten by CanonicalizeDepthwise: {report['rewritten']}")
    print(f"reference: {report['reference']}")
    print(f"max |TVM - reference| = {report['max_abs_err']:.3g} over all builds "
          f"(tolerance {report['tolerance']:.3g})")
    print(f"  {'path':<28} {'patch on':>10} {'patch off':>10} {'speedup':>8}  "
          "depthwise share on/off")
    for entry in report["paths"]:
        lat, share = entry["latency_ms"], entry["depthwise_share"]
        cells = [f"{lat[k]:>7.3f} ms" if k in lat else f"{'failed':>10}" for k in ("on", "off")]
        shares = " / ".join(f"{share[k]:.0%}" if share.get(k) is not None else "-"
                            for k in ("on", "off"))
        speedup = f"{entry['speedup']:>7.2f}x" if entry["speedup"] else f"{'-':>8}"
        print(f"  {entry['description']:<28} {cells[0]} {cells[1]} {speedup}  {shares:>11}")
        for key, error in entry["errors"].items():
            print(f"    patch {key} failed: {error}")
        errs = entry["max_abs_err"]
        if any(err > report["tolerance"] for err in errs.values()):
            same = entry["on_off_max_abs_diff"]
            print("    differs from the reference: " + ", ".join(
                f"patch {k} by {err:.3g}" for k, err in errs.items())
                + ("" if same is None else f"; patch on - off: {same:.3g}"))
    if report["path"] is None:
        print("fastest: none (no path compiled both with the patch on and off)")
        return
    best = next(p for p in report["paths"] if p["path"] == report["path"])
    print(f"fastest: {best['description']} with the patch on, {report['latency_ms']['on']:.3f} ms"
          f" ({report['speedup']:.2f}x the patch off on that path)")


def _difference(report):
    """One line: which builds differ from the reference, and whether the patch is the cause."""
    wrong = []
    for entry in report["paths"]:
        bad = [k for k, err in entry["max_abs_err"].items() if err > report["tolerance"]]
        if not bad:
            continue
        worst = max(entry["max_abs_err"][k] for k in bad)
        text = f"{entry['description']} (patch {' and '.join(bad)}) by {worst:.3g}"
        if len(bad) == 2 and entry["on_off_max_abs_diff"] <= report["tolerance"]:
            text += (" with the same outputs patch on and off: TVM without the patch computes "
                     "this too")
        wrong.append(text)
    return f"output differs from the reference ({report['reference']}): " + "; ".join(wrong)


def _error(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv=None):
    """Entry point of ``canonicalize-depthwise``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    try:
        enabled()
    except ValueError as err:
        _error(str(err))
        return 2
    try:
        report = run(args)
    except (ModelError, UsageError) as err:
        _error(str(err))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 1
    except Exception as err:  # pylint: disable=broad-except
        _error(one_line(err))
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    if report["max_abs_err"] > report["tolerance"]:
        _error(_difference(report))
        return 1
    if report["failed_builds"]:
        _error(f"{report['failed_builds']} build(s) failed; see the report")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
