"""Makes ``default.tflite`` (the command's built-in model) and its ONNX twin for the tests.

The network is a tiny Keras model built offline from a fixed seed, small enough to compile in
seconds yet holding every kind of depthwise convolution a converter emits:

    input 1x32x32x3 (NHWC)
    Conv2D 8, 3x3                      + ReLU
    DepthwiseConv2D 3x3, multiplier 1  + ReLU      8 -> 8 channels
    DepthwiseConv2D 3x3, multiplier 2, stride 2    8 -> 16
    SeparableConv2D 24, 3x3, multiplier 1 + ReLU   depthwise 16 -> 16, then 1x1 to 24
    DepthwiseConv2D 3x3, multiplier 4  + ReLU      24 -> 96
    GlobalAveragePooling2D, Dense 10

Every weight and bias is drawn from ``numpy.random.default_rng(SEED)``. TensorFlow is needed
here only, so this script runs in a venv of its own (the versions it was last run with):

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 \\
        tf2onnx==1.17.0 onnx==1.23.2 onnxruntime==1.31.1
    /tmp/tfvenv/bin/python python/tvm_canonicalize_depthwise/data/make_default_model.py

It writes ``default.tflite`` beside itself (float32, ``tf.lite.TFLiteConverter`` with no
optimizations) and ``tests/python/driver/fixtures/default.onnx`` (``tf2onnx``, opset 17, NCHW
input), checks both against Keras on a random input and prints what it wrote. tf2onnx names
nodes with counters, so a rerun may write other bytes for the same graph.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TFLITE_PATH = os.path.join(HERE, "default.tflite")
ONNX_PATH = os.path.join(ROOT, "tests", "python", "driver", "fixtures", "default.onnx")
SEED = 15
INPUT_SHAPE = (1, 32, 32, 3)
OPSET = 17
TOLERANCE = 1e-4


def build_model():
    """The Keras network described in the module docstring, with seeded random weights."""
    keras.utils.set_random_seed(SEED)
    inp = keras.Input(INPUT_SHAPE[1:], batch_size=1, name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw_m1")(x)
    x = layers.DepthwiseConv2D(3, 2, padding="same", depth_multiplier=2, name="dw_m2_s2")(x)
    x = layers.SeparableConv2D(24, 3, padding="same", activation="relu", name="sep")(x)
    x = layers.DepthwiseConv2D(
        3, padding="same", depth_multiplier=4, activation="relu", name="dw_m4"
    )(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inp, layers.Dense(10, name="logits")(x))
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            # kernels scaled by fan-in so activations stay near 1 through the network
            layer.set_weights(
                [
                    rng.uniform(-1, 1, w.shape).astype("float32")
                    / np.sqrt(max(1, np.prod(w.shape[:-1]) if w.ndim > 1 else 1))
                    for w in weights
                ]
            )
    return model


def to_tflite(fn):
    # frozen first, so that the weights are constants in the .tflite (no resource variables)
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


def to_onnx(fn):
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(
        fn, input_signature=fn.input_signature, opset=OPSET, inputs_as_nchw=["image:0"]
    )
    proto.ir_version = min(proto.ir_version, 10)  # what onnxruntime 1.31 reads
    return proto


def main():
    model = build_model()
    x = np.random.default_rng(SEED + 1).uniform(-1, 1, INPUT_SHAPE).astype("float32")
    expected = model(x, training=False).numpy()

    @tf.function(input_signature=[tf.TensorSpec(INPUT_SHAPE, tf.float32, name="image")])
    def fn(image):
        return model(image, training=False)

    tflite_blob = to_tflite(fn)
    interp = tf.lite.Interpreter(model_content=tflite_blob)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    tflite_err = float(
        np.abs(interp.get_tensor(interp.get_output_details()[0]["index"]) - expected).max()
    )
    ops = [op["op_name"] for op in interp._get_ops_details()]  # pylint: disable=protected-access

    import onnxruntime

    onnx_blob = to_onnx(fn).SerializeToString()
    session = onnxruntime.InferenceSession(onnx_blob, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.transpose(0, 3, 1, 2)})[0]
    onnx_err = float(np.abs(got - expected).max())
    if max(tflite_err, onnx_err) > TOLERANCE:
        sys.exit(f"exports differ from Keras: TFLite {tflite_err:.3g}, ONNX {onnx_err:.3g}")

    with open(TFLITE_PATH, "wb") as out:
        out.write(tflite_blob)
    os.makedirs(os.path.dirname(ONNX_PATH), exist_ok=True)
    with open(ONNX_PATH, "wb") as out:
        out.write(onnx_blob)
    print(
        f"{TFLITE_PATH}: {len(tflite_blob)} bytes, {ops.count('DEPTHWISE_CONV_2D')} "
        f"DEPTHWISE_CONV_2D, max |TFLite - Keras| {tflite_err:.2g}"
    )
    print(f"{ONNX_PATH}: {len(onnx_blob)} bytes, max |ONNX Runtime - Keras| {onnx_err:.2g}")
    print("TFLite ops:", " ".join(ops))


if __name__ == "__main__":
    main()
