"""Writes bench/models/<name>.tflite: one DepthwiseConv2D per workload, made with TensorFlow.

TensorFlow is needed by this script only, so it runs in a venv of its own:

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 numpy
    /tmp/tfvenv/bin/python bench/make_tflite_models.py            # all workloads
    /tmp/tfvenv/bin/python bench/make_tflite_models.py NAME ...   # some of them

Each model is ``tf.nn.depthwise_conv2d`` on an NHWC float32 input ``[1, H, W, C]`` with the
workload's HWCM weight ``[kh, kw, C, m]`` as a constant and TensorFlow's 'SAME'/'VALID'
padding, converted without optimizations. The script checks that the model holds exactly one
DEPTHWISE_CONV_2D and that TFLite's output matches the NumPy reference (which uses the
workload's explicit padding), so the padding of the model and of the other engines agree.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings  # noqa: E402

import tensorflow as tf  # noqa: E402

warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import check, reference_output  # noqa: E402
from workloads import WORKLOADS, select  # noqa: E402

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def convert(wl):
    """TFLite flatbuffer bytes of the workload's depthwise convolution."""
    weight = tf.constant(wl.weight_hwcm())

    @tf.function(input_signature=[tf.TensorSpec([1, wl.H, wl.W, wl.C], tf.float32, name="x")])
    def dwconv(x):
        return tf.nn.depthwise_conv2d(x, weight, strides=[1, wl.stride, wl.stride, 1],
                                      padding=wl.padding)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [dwconv.get_concrete_function()], dwconv)
    return converter.convert()


def verify(wl, model):
    """Raise if the model is not one depthwise conv computing the reference result."""
    # TFLite's own kernels, not the XNNPACK delegate (which would show up as a DELEGATE op)
    resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = tf.lite.Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    ops = [op["op_name"] for op in interp._get_ops_details()]  # no public API for this
    if ops != ["DEPTHWISE_CONV_2D"]:
        raise RuntimeError(f"{wl.name}: expected one DEPTHWISE_CONV_2D, got {ops}")
    interp.set_tensor(interp.get_input_details()[0]["index"], wl.input_nhwc())
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"]).transpose(0, 3, 1, 2)
    ok, err = check(got, reference_output(wl))
    if not ok:
        raise RuntimeError(f"{wl.name}: TFLite output differs from the reference "
                           f"(max abs error {err:.3g})")
    return err


def main(argv):
    workloads = select(argv) if argv else WORKLOADS
    os.makedirs(MODELS_DIR, exist_ok=True)
    for wl in workloads:
        model = convert(wl)
        err = verify(wl, model)
        path = os.path.join(MODELS_DIR, f"{wl.name}.tflite")
        with open(path, "wb") as f:
            f.write(model)
        print(f"{path}: {len(model)} bytes, {wl.describe()}, max abs error {err:.2g}")


if __name__ == "__main__":
    main(sys.argv[1:])
