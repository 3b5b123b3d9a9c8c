"""Writes bench/models/<name>.tflite: one DepthwiseConv2D per workload, made with TensorFlow.

TensorFlow is needed by this script only, so it runs in a venv of its own:

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 numpy
    /tmp/tfvenv/bin/python bench/make_tflite_models.py            # all workloads
    /tmp/tfvenv/bin/python bench/make_tflite_models.py NAME ...   # some of them
    /tmp/tfvenv/bin/python bench/make_tflite_models.py --int8     # the int8 models (below)

Each model is ``tf.nn.depthwise_conv2d`` on an NHWC float32 input ``[1, H, W, C]`` with the
workload's HWCM weight ``[kh, kw, C, m]`` as a constant and TensorFlow's 'SAME'/'VALID'
padding, converted without optimizations. The script checks that the model holds exactly one
DEPTHWISE_CONV_2D and that TFLite's output matches the NumPy reference (which uses the
workload's explicit padding), so the padding of the model and of the other engines agree.

With ``--int8`` it writes ``bench/models/<name>_int8.tflite`` instead: the same float graph
converted full-integer (``Optimize.DEFAULT``, ``TFLITE_BUILTINS_INT8``, int8 input and output,
so no QUANTIZE/DEQUANTIZE op remains), calibrated on a representative dataset of 16 seeded
inputs uniform in [-1, 1) (the distribution of the benchmark's input). The weight gets one
scale per output channel (zero point 0), input and output one scale and zero point each, the
bias (which the converter adds, zeros) int32. The script checks that the model is one
DEPTHWISE_CONV_2D with int8 input and output and per-channel weight scales, and that TFLite's
output for the quantized benchmark input is within one quantum of an exact integer reference
(``bench/quant.py``; TFLite requantizes in fixed point).
"""

# TensorFlow reads TF_CPP_MIN_LOG_LEVEL at import; the benchmark's modules need sys.path first
# pylint: disable=wrong-import-position
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import check, reference_output  # noqa: E402
from workloads import SEED, WORKLOADS, select  # noqa: E402
import quant  # noqa: E402

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def convert(wl, int8=False):
    """TFLite flatbuffer bytes of the workload's depthwise convolution (full-integer int8 if
    ``int8``)."""
    weight = tf.constant(wl.weight_hwcm())

    @tf.function(input_signature=[tf.TensorSpec([1, wl.H, wl.W, wl.C], tf.float32, name="x")])
    def dwconv(x):
        return tf.nn.depthwise_conv2d(
            x, weight, strides=[1, wl.stride, wl.stride, 1], padding=wl.padding
        )

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [dwconv.get_concrete_function()], dwconv
    )
    if int8:
        rng = np.random.default_rng([SEED, 8, *map(ord, wl.name)])

        def samples():
            for _ in range(16):
                yield [rng.uniform(-1.0, 1.0, (1, wl.H, wl.W, wl.C)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _interpreter(model):
    # TFLite's own kernels, not the XNNPACK delegate (which would show up as a DELEGATE op)
    resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = tf.lite.Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    ops = [op["op_name"] for op in interp._get_ops_details()]  # no public API for this
    return interp, ops


def verify(wl, model):
    """Raise if the model is not one depthwise conv computing the reference result."""
    interp, ops = _interpreter(model)
    if ops != ["DEPTHWISE_CONV_2D"]:
        raise RuntimeError(f"{wl.name}: expected one DEPTHWISE_CONV_2D, got {ops}")
    interp.set_tensor(interp.get_input_details()[0]["index"], wl.input_nhwc())
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"]).transpose(0, 3, 1, 2)
    ok, err = check(got, reference_output(wl))
    if not ok:
        raise RuntimeError(
            f"{wl.name}: TFLite output differs from the reference " f"(max abs error {err:.3g})"
        )
    return err


def verify_int8(wl, model):
    """Raise if the model is not one full-integer depthwise conv within one quantum of the
    integer reference; the largest difference in quanta and the quantization parameters."""
    interp, ops = _interpreter(model)
    if ops != ["DEPTHWISE_CONV_2D"]:
        raise RuntimeError(f"{wl.name}: expected one DEPTHWISE_CONV_2D, got {ops}")
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if inp["dtype"] != np.int8 or out["dtype"] != np.int8:
        raise RuntimeError(f"{wl.name}: input/output {inp['dtype']}/{out['dtype']}, not int8")
    qp = quant.read_qparams(interp)
    if qp.w_scale.size != wl.C * wl.m or len(set(qp.w_scale.tolist())) < 2:
        raise RuntimeError(f"{wl.name}: the weight scales are not per channel")
    x = quant.int8_input_nhwc(wl, qp)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    got = interp.get_tensor(out["index"]).transpose(0, 3, 1, 2)
    diff = quant.quanta(got, quant.int8_reference(wl, qp, x))
    if diff is None or diff > 1 or len(np.unique(got)) < 16:
        raise RuntimeError(
            f"{wl.name}: TFLite int8 output differs from the integer reference "
            f"by {diff} quanta (or hardly varies)"
        )
    return diff, qp


def main(argv):
    """Writes and checks the model of each workload named in ``argv`` (default: all)."""
    int8 = "--int8" in argv
    names = [a for a in argv if a != "--int8"]
    workloads = select(names) if names else WORKLOADS
    os.makedirs(MODELS_DIR, exist_ok=True)
    for wl in workloads:
        model = convert(wl, int8)
        if int8:
            diff, qp = verify_int8(wl, model)
            path = os.path.join(MODELS_DIR, f"{wl.name}_int8.tflite")
            note = (
                f"{diff} quanta from the integer reference, x scale {qp.x_scale:.3g} "
                f"zp {qp.x_zero}, y scale {qp.y_scale:.3g} zp {qp.y_zero}, "
                f"{'int32 bias' if qp.bias is not None else 'no bias'}"
            )
        else:
            err = verify(wl, model)
            path = os.path.join(MODELS_DIR, f"{wl.name}.tflite")
            note = f"max abs error {err:.2g}"
        with open(path, "wb") as f:
            f.write(model)
        print(f"{path}: {len(model)} bytes, {wl.describe()}, {note}")


if __name__ == "__main__":
    main(sys.argv[1:])
