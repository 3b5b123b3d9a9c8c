"""Writes tests/python/frontend/fixtures/: small depthwise networks made by the real tools.

One Keras network holds every kind of depthwise layer a frontend test should see:
``DepthwiseConv2D`` with ``depth_multiplier`` 1, 2 and 4, ``SeparableConv2D``, strides 1 and 2,
dilation 2, 'same' and 'valid' padding, with and without bias, ReLU/ReLU6/no activation, 3x3
and 5x5 kernels. From the same seeded weights it is exported as

* ``dw_mix.tflite``: float32 TFLite (``tf.lite.TFLiteConverter``, no optimizations);
* ``dw_mix_int8.tflite``: full-integer int8 TFLite (int8 input and output, per-channel weight
  scales, a representative dataset of seeded random inputs);
* ``dw_mix.onnx``: ONNX (opset 17, ``tf2onnx``, NCHW input).

``dw_mix.npz`` holds the input and what each source engine computed from it: TensorFlow's
TFLite interpreter (XNNPACK) for both .tflite files, ONNX Runtime for the .onnx, and Keras. The
tests compare TVM's builds with those outputs, so CI needs none of these tools. TensorFlow runs
in a venv of its own (the versions used for the committed files):

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 \\
        tf2onnx==1.17.0 onnx==1.23.2 onnxruntime==1.31.1
    /tmp/tfvenv/bin/python tests/scripts/make_frontend_models.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# pylint: disable=wrong-import-position
import numpy as np
import tensorflow as tf
import keras
from keras import layers

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "python", "frontend", "fixtures"
)
SEED = 2026
SHAPE = (1, 20, 20, 6)


def network():
    """The Keras network (seeded weights, biases nonzero)."""
    keras.utils.set_random_seed(SEED)
    inp = keras.Input(SHAPE[1:], batch_size=1, name="input")
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw_m1_same")(inp)
    x = layers.DepthwiseConv2D(
        3, strides=2, padding="valid", depth_multiplier=2, name="dw_m2_valid_s2"
    )(x)
    x = layers.DepthwiseConv2D(
        3,
        dilation_rate=2,
        padding="same",
        depth_multiplier=4,
        use_bias=False,
        activation="relu",
        name="dw_m4_dilated",
    )(x)
    x = layers.SeparableConv2D(
        16, 3, padding="same", depth_multiplier=2, activation="relu", name="separable_m2"
    )(x)
    x = layers.DepthwiseConv2D(5, strides=2, padding="same", name="dw_m1_5x5_s2")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(SEED)
    model.set_weights(
        [rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in model.get_weights()]
    )
    return model


def _frozen(model):
    # frozen first, so that the variables become constants in the .tflite
    from tensorflow.python.framework.convert_to_constants import (  # pylint: disable=import-outside-toplevel
        convert_variables_to_constants_v2,
    )

    @tf.function(input_signature=[tf.TensorSpec(SHAPE, tf.float32, name="input")])
    def forward(inp):
        return model(inp, training=False)

    return forward, convert_variables_to_constants_v2(forward.get_concrete_function())


def to_tflite(model, int8=False):
    """The model as a .tflite: float32, or full-integer int8 calibrated on seeded inputs."""
    _, frozen = _frozen(model)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], model)
    if int8:
        rng = np.random.default_rng(SEED + 1)

        def samples():
            for _ in range(32):
                yield [rng.uniform(-1, 1, SHAPE).astype("float32")]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def run_tflite(blob, x):
    """The interpreter's output for float input ``x`` (quantized in and out where int8)."""
    interp = tf.lite.Interpreter(model_content=blob, num_threads=2)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    ops = [op["op_name"] for op in interp._get_ops_details()]  # pylint: disable=protected-access
    return x, interp.get_tensor(out["index"]), ops


def to_onnx(model):
    """The model as an .onnx (opset 17, NCHW input), by tf2onnx."""
    import tf2onnx  # pylint: disable=import-outside-toplevel

    forward, _ = _frozen(model)
    proto, _ = tf2onnx.convert.from_function(
        forward, input_signature=forward.input_signature, opset=17, inputs_as_nchw=["input:0"]
    )
    proto.ir_version = min(proto.ir_version, 10)  # what onnxruntime 1.31 reads
    return proto.SerializeToString()


def run_onnx(blob, x_nchw):
    """ONNX Runtime's output for ``x_nchw``."""
    import onnxruntime  # pylint: disable=import-outside-toplevel

    session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x_nchw})[0]


def main():
    """Writes the fixtures and the engines' outputs, each checked against Keras."""
    os.makedirs(OUT, exist_ok=True)
    model = network()
    x = np.random.default_rng(SEED + 2).uniform(-1, 1, SHAPE).astype("float32")
    keras_out = model(x, training=False).numpy()
    outputs = {"input_nhwc": x, "keras": keras_out}
    for name, int8 in (("dw_mix", False), ("dw_mix_int8", True)):
        blob = to_tflite(model, int8)
        given, out, ops = run_tflite(blob, x)
        assert ops.count("DEPTHWISE_CONV_2D") == 5, ops
        with open(os.path.join(OUT, f"{name}.tflite"), "wb") as file:
            file.write(blob)
        outputs[f"{name}_input"] = given
        outputs[f"{name}_tflite"] = out
    blob = to_onnx(model)
    with open(os.path.join(OUT, "dw_mix.onnx"), "wb") as file:
        file.write(blob)
    outputs["dw_mix_onnx"] = run_onnx(blob, x.transpose(0, 3, 1, 2))
    for key in ("dw_mix_tflite", "dw_mix_onnx"):
        got = outputs[key] if key.endswith("tflite") else outputs[key]
        if got.shape != keras_out.shape:
            got = got.transpose(0, 2, 3, 1)
        err = float(np.abs(got - keras_out).max())
        assert err < 1e-4, (key, err)
        print(f"{key}: max |engine - Keras| = {err:.2e}")
    np.savez_compressed(os.path.join(OUT, "dw_mix.npz"), **outputs)
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")


if __name__ == "__main__":
    main()
