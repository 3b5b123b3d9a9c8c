"""``canonicalize-depthwise``: compile a model with and without the patch, check and time it."""
import argparse
import json
import logging
import os
import sys
import time

import numpy as np

from tvm_canonicalize_depthwise import ENV_VAR, enabled
from tvm_canonicalize_depthwise import reference as ref

# (name, data layout, kernel layout, C, m, kernel, stride): the embedded default model's
# depthwise convolutions, all in the multiplier form as TFLite and Keras hand them to Relay.
DEFAULT_MODEL = (
    ("dw1_nchw_m2", "NCHW", "OIHW", 16, 2, 3, 1),
    ("dw2_nhwc_m2", "NHWC", "HWOI", 16, 2, 3, 1),
    ("dw3_nchw_m4", "NCHW", "OIHW", 32, 4, 5, 2),
    ("dw4_nhwc_m1", "NHWC", "HWOI", 128, 1, 3, 1),
)
INPUT_SHAPE = (1, 16, 56, 56)
TOLERANCE = 1e-3


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parse_args(argv):
    parser = _ArgumentParser(
        prog="canonicalize-depthwise",
        description="Compile the embedded model (depthwise convolutions in the multiplier form, "
        "NCHW and NHWC) with TVM, show what CanonicalizeDepthwise rewrites, check the result "
        "against NumPy and time it with the patch on and off.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per build (>= 1)")
    parser.add_argument("--target", default=None, help="TVM target (default: host llvm)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    return args


def _weights(rng):
    weights = {}
    for name, _, kernel_layout, channels, mult, size, _ in DEFAULT_MODEL:
        oihw = rng.uniform(-1, 1, (channels, mult, size, size)).astype("float32")
        weights[name] = (oihw, ref.to_layout(oihw, "OIHW", kernel_layout))
    return weights


def build_default_model(weights):
    """The embedded model as a Relay module: x -> dw1 -> dw2 (NHWC) -> (+x2) -> dw3 -> dw4."""
    from tvm import IRModule, relay  # pylint: disable=import-outside-toplevel

    def conv(name, data):
        _, data_layout, kernel_layout, channels, mult, size, stride = _spec(name)
        return relay.nn.conv2d(
            data,
            relay.const(weights[name][1]),
            strides=(stride, stride),
            padding=(size // 2, size // 2),
            channels=channels * mult,
            groups=channels,
            kernel_size=(size, size),
            data_layout=data_layout,
            kernel_layout=kernel_layout,
        )

    x = relay.var("x", shape=INPUT_SHAPE, dtype="float32")
    y = relay.nn.relu(conv("dw1_nchw_m2", x))
    y = relay.layout_transform(y, "NCHW", "NHWC")
    y = relay.nn.relu(conv("dw2_nhwc_m2", relay.strided_slice(y, [0, 0, 0, 0], [1, 56, 56, 16])))
    y = relay.layout_transform(y, "NHWC", "NCHW")
    y = conv("dw3_nchw_m4", y)
    y = relay.layout_transform(y, "NCHW", "NHWC")
    y = conv("dw4_nhwc_m1", y)
    return IRModule.from_expr(relay.Function([x], y))


def _spec(name):
    return next(spec for spec in DEFAULT_MODEL if spec[0] == name)


def reference_output(data, weights):
    """The embedded model computed with NumPy only."""

    def conv(name, nchw):
        _, _, _, _, _, size, stride = _spec(name)
        pad = size // 2
        canonical = ref.multiplier_to_canonical(weights[name][0])
        return ref.depthwise_conv2d_nchw(nchw, canonical, (stride, stride), (pad,) * 4)

    y = np.maximum(conv("dw1_nchw_m2", data), 0)
    y = np.maximum(conv("dw2_nhwc_m2", y[:, :16]), 0)
    y = conv("dw3_nchw_m4", y)
    return ref.to_layout(conv("dw4_nhwc_m1", y), "NCHW", "NHWC")


class _RewriteLog(logging.Handler):
    """Collects the pass's DEBUG records, which say what it found and rewrote."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _build(mod, target, patch_on):
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relay  # pylint: disable=import-outside-toplevel

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


def _time_ms(module, repeat):
    import tvm  # pylint: disable=import-outside-toplevel

    timer = module.module.time_evaluator("run", tvm.cpu(0), number=10, repeat=repeat)
    return float(np.median(timer().results)) * 1e3


def run(args):
    """Compile, check and time the embedded model; returns the report as a dict."""
    os.environ.setdefault("TOPHUB_LOCATION", "NONE")
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.contrib import graph_executor  # pylint: disable=import-outside-toplevel
    from tvm.relay.transform import canonicalize_depthwise  # pylint: disable=import-outside-toplevel

    target = tvm.target.Target(
        args.target or f"llvm -mcpu={tvm.target.codegen.llvm_get_system_cpu()}"
    )
    # TVM's own warnings ("not optimized", "not tuned") are about the stock build: keep quiet.
    for name in ("strategy", "autotvm", "te_compiler"):
        logging.getLogger(name).setLevel(logging.ERROR)
    rng = np.random.default_rng(0)
    weights = _weights(rng)
    data = rng.uniform(-1, 1, INPUT_SHAPE).astype("float32")
    mod = build_default_model(weights)

    log = _RewriteLog()
    pass_logger = logging.getLogger(canonicalize_depthwise.__name__)
    pass_logger.addHandler(log)
    pass_logger.setLevel(logging.DEBUG)
    try:
        convs = _describe_convs(mod)
        lib_on = _build(mod, target, True)
    finally:
        pass_logger.removeHandler(log)
    lib_off = _build(mod, target, False)

    expected = reference_output(data, weights)
    runs, errors = {}, {}
    for label, lib in (("patch_on", lib_on), ("patch_off", lib_off)):
        module = graph_executor.GraphModule(lib["default"](tvm.cpu(0)))
        module.set_input("x", data)
        module.run()
        errors[label] = float(np.abs(module.get_output(0).numpy() - expected).max())
        runs[label] = module
    latency = {label: [] for label in runs}
    for _ in range(3):  # alternate, so both see the same machine noise
        for label, module in runs.items():
            latency[label].append(_time_ms(module, args.repeat))
    latency = {label: float(np.median(times)) for label, times in latency.items()}
    return {
        "target": str(target),
        "convs": convs,
        "rewrites": [m for m in log.messages if "->" in m],
        "rewritten": sum("->" in m for m in log.messages),
        "max_abs_err": max(errors.values()),
        "max_abs_err_by_build": errors,
        "latency_ms": latency,
        "speedup": latency["patch_off"] / latency["patch_on"],
    }


def _describe_convs(mod):
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relay  # pylint: disable=import-outside-toplevel
    from tvm.relay.transform.canonicalize_depthwise import conv2d_call_form

    typed = relay.transform.InferType()(mod)
    found = []

    def visit(node):
        if isinstance(node, relay.Call) and node.op == tvm.ir.Op.get("nn.conv2d"):
            form = conv2d_call_form(node)
            found.append(
                {
                    "layouts": f"{node.attrs.data_layout}/{node.attrs.kernel_layout}",
                    "weight_shape": [int(e) for e in node.args[1].checked_type.shape],
                    "form": form.kind,
                    "C": form.in_channels,
                    "m": form.multiplier,
                    "why": form.reason,
                }
            )

    relay.analysis.post_order_visit(typed["main"], visit)
    return found


def _print_report(report):
    print(f"target: {report['target']}")
    print("depthwise convolutions found:")
    for conv in report["convs"]:
        print(
            f"  {conv['layouts']:<10} weight {str(conv['weight_shape']):<16} "
            f"{conv['form']:<10} C={conv['C']} m={conv['m']}  ({conv['why']})"
        )
    print(f"rewrites made by CanonicalizeDepthwise ({report['rewritten']}):")
    for line in report["rewrites"]:
        print(f"  {line}")
    print(f"max |TVM - NumPy| = {report['max_abs_err']:.3g} (tolerance {TOLERANCE})")
    on, off = report["latency_ms"]["patch_on"], report["latency_ms"]["patch_off"]
    print(f"latency: patch on {on:.3f} ms, patch off {off:.3f} ms, speedup {off / on:.2f}x")


def main(argv=None):
    """Entry point of ``canonicalize-depthwise``; returns the exit code."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        enabled()
    except ValueError as err:
        print(f"canonicalize-depthwise: error: {err}", file=sys.stderr)
        return 2
    try:
        report = run(args)
    except Exception as err:  # pylint: disable=broad-except
        message = str(err).strip().splitlines()
        print(f"canonicalize-depthwise: error: {message[-1] if message else type(err).__name__}",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    if report["max_abs_err"] > TOLERANCE:
        print(f"canonicalize-depthwise: error: output differs from NumPy by "
              f"{report['max_abs_err']:.3g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
