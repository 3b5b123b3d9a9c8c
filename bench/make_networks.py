"""Writes bench/networks/<name>.{tflite,onnx,npz}: depthwise-heavy Keras networks, random weights.

TensorFlow is needed by this script only, so it runs in a venv of its own (the versions this
script was run with; the TFLite and ONNX files it wrote are committed):

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 \\
        tf2onnx==1.17.0 onnx==1.23.2 onnxruntime==1.31.1        # keras 3.15.1 comes with it
    /tmp/tfvenv/bin/python bench/make_networks.py                 # all networks
    /tmp/tfvenv/bin/python bench/make_networks.py NAME ...        # some of them
    /tmp/tfvenv/bin/python bench/make_networks.py --int8-only [NAME ...]  # only the int8 files

Every network is built offline (``weights=None``, no download) from a fixed seed, with batch
1 and a small input. BatchNormalization layers get random statistics (so that folding them is
not a no-op) and PReLU layers random slopes. Each Keras model is exported twice from the same
weights: as float32 TFLite (``tf.lite.TFLiteConverter``, no optimizations) and as ONNX (opset
17, ``tf2onnx`` from the same model's ``tf.function``, NCHW input: a Transpose of the NHWC
input is the ONNX graph's first node only if tf2onnx cannot push it through, see
``inputs_as_nchw``). ``<name>.npz`` holds the input (NHWC, seeded uniform [-1, 1]) and Keras'
output. The script checks that TFLite (TensorFlow's interpreter, with XNNPACK) and ONNX
Runtime both reproduce Keras' output (``close()``), and that each .tflite holds at least one
DEPTHWISE_CONV_2D.

What the exporters make of it: TFLite folds every BatchNormalization into its conv; tf2onnx
folds those after a regular conv but leaves those after a depthwise conv as Mul + Add, and
writes PReLU as Relu/Neg/Mul/Add (TFLite keeps PRELU). tf2onnx names nodes with counters, so
remaking a network rewrites its .onnx with other bytes (same graph): remake only the networks
that change.

Quantized versions (issue 15): each network is also converted full-integer to
``<name>_int8.tflite`` from the same Keras weights (``Optimize.DEFAULT``,
``TFLITE_BUILTINS_INT8`` only, int8 input and output, so the file holds no QUANTIZE or
DEQUANTIZE op except around an op TFLite has no int8 kernel for, EEGNet's ELU, which stays
float32: ``index.json`` lists such ops as ``float_ops``; convolution weights per-channel int8,
fully-connected weights per-tensor int8 (TVM 0.19's TFLite frontend rejects per-channel
FULLY_CONNECTED scales, so ``_experimental_disable_per_channel_quantization_for_dense_layers``
is set), biases int32, activations per-tensor int8; every DEPTHWISE_CONV_2D is checked to be
int8),
calibrated on a representative dataset of 32 seeded inputs uniform in [-1, 1) (the
distribution of the benchmark input, another seed). ``<name>_int8.npz`` holds the benchmark
input quantized with the model's input parameters (``input_int8``, NHWC) and the output of
TensorFlow's TFLite interpreter (its own kernels, no XNNPACK) for it (``tflite_int8_output``,
int8). ``index.json`` records
under ``int8`` the size, the ops, the quantization of input and output and how far the
dequantized output is from Keras' float output (in output quanta: quantizing a network with
random weights loses accuracy, which is recorded, not checked). ``--int8-only`` writes only
these files (the float .tflite/.onnx/.npz stay as they are: tf2onnx would rewrite the .onnx
with other bytes).
"""

# TensorFlow reads its environment variables at import: they are set first
# pylint: disable=wrong-import-position
# tf2onnx and onnxruntime: imported by the float exports only (not needed with --int8-only)
# pylint: disable=import-outside-toplevel
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402
from tensorflow.python.framework.convert_to_constants import (  # noqa: E402
    convert_variables_to_constants_v2,
)

warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "networks")
SEED = 14
OPSET = 17


# ---------------------------------------------------------------------------------------------
# the networks: name -> (input shape HWC, builder, one line of description)
def mobilenet_v1():
    """Keras' MobileNet (v1), alpha 0.25, 128x128, 100 classes."""
    return keras.applications.MobileNet(
        input_shape=(128, 128, 3),
        alpha=0.25,
        weights=None,
        classes=100,
        dropout=0.0,
        classifier_activation=None,
    )


def mobilenet_v2():
    """Keras' MobileNetV2, alpha 0.35, 96x96, 100 classes."""
    return keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=100, classifier_activation=None
    )


def mobilenet_v3_small():
    """Keras' MobileNetV3Small, alpha 0.75, 128x128, no top (average pooling)."""
    return keras.applications.MobileNetV3Small(
        input_shape=(128, 128, 3),
        alpha=0.75,
        weights=None,
        include_top=False,
        pooling="avg",
        include_preprocessing=False,
    )


def _conv_bn(x, filters, kernel=1, stride=1, act="relu6"):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation(act)(x) if act else x


def _dw_bn(x, kernel=3, stride=1, multiplier=1, act="relu6"):
    x = layers.DepthwiseConv2D(
        kernel, stride, padding="same", depth_multiplier=multiplier, use_bias=False
    )(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation(act)(x) if act else x


def efficientnet_lite():
    """EfficientNet-lite0 style: MBConv blocks (expand 1x1, 5x5 or 3x3 depthwise, project),
    ReLU6, no squeeze-excite, residuals where shapes allow; narrowed to 0.5x channels."""
    inp = keras.Input((128, 128, 3), batch_size=1)
    x = _conv_bn(inp, 16, 3, 2)
    # (expand, out channels, repeats, stride, kernel)
    for expand, out, repeats, stride, kernel in [
        (1, 8, 1, 1, 3),
        (6, 12, 2, 2, 3),
        (6, 20, 2, 2, 5),
        (6, 40, 3, 2, 3),
        (6, 56, 3, 1, 5),
        (6, 96, 4, 2, 5),
        (6, 160, 1, 1, 3),
    ]:
        for r in range(repeats):
            s = stride if r == 0 else 1
            y = _conv_bn(x, x.shape[-1] * expand) if expand != 1 else x
            y = _dw_bn(y, kernel, s)
            y = _conv_bn(y, out, act=None)
            x = layers.Add()([x, y]) if s == 1 and x.shape[-1] == out else y
    x = _conv_bn(x, 640)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(100)(x))


def face_landmark():
    """Face-mesh style: stride-2 stem, residual (3x3 depthwise + 1x1) blocks with PReLU down to
    4x4 at 192 channels, then a regression head (468 landmarks x 3)."""
    inp = keras.Input((128, 128, 3), batch_size=1)
    x = layers.Conv2D(16, 3, 2, padding="same")(inp)
    x = layers.PReLU(shared_axes=[1, 2])(x)
    for channels, repeats in [(16, 2), (32, 2), (64, 2), (128, 3), (192, 3), (192, 2)]:
        for r in range(repeats):
            stride = 2 if r == 0 and channels != 16 else 1
            y = layers.DepthwiseConv2D(3, stride, padding="same")(x)
            y = layers.Conv2D(channels, 1)(y)
            if stride == 2 or x.shape[-1] != channels:
                x = layers.MaxPooling2D(2, stride, padding="same")(x) if stride == 2 else x
                x = layers.Conv2D(channels, 1)(x)
            x = layers.PReLU(shared_axes=[1, 2])(layers.Add()([x, y]))
    x = layers.Conv2D(32, 1)(x)
    x = layers.PReLU(shared_axes=[1, 2])(x)
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(468 * 3)(x))


def eegnet():
    """EEGNet-8,2: temporal conv (1x32), depthwise over all 22 electrodes (22x1, multiplier
    2), separable conv (1x16); 22 electrodes x 256 samples."""
    chans, samples = 22, 256
    inp = keras.Input((chans, samples, 1), batch_size=1)
    x = layers.Conv2D(8, (1, 32), padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.DepthwiseConv2D((chans, 1), depth_multiplier=2, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("elu")(x)
    x = layers.AveragePooling2D((1, 4))(x)
    x = layers.SeparableConv2D(16, (1, 16), padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("elu")(x)
    x = layers.AveragePooling2D((1, 8))(x)
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(4, activation="softmax")(x))


def multipliers():
    """Depth multipliers 2 to 8: each block is a depthwise conv with multiplier m (3x3, some
    stride 2, one 5x5) and a 1x1 projection; 96x96 input."""
    inp = keras.Input((96, 96, 3), batch_size=1)
    x = _conv_bn(inp, 8, 3, 1)
    for m, stride, kernel, out in [
        (2, 2, 3, 16),
        (4, 1, 3, 16),
        (8, 2, 3, 24),
        (3, 1, 5, 24),
        (2, 2, 3, 48),
        (4, 1, 3, 48),
        (6, 2, 3, 64),
        (8, 1, 3, 64),
    ]:
        y = _dw_bn(x, kernel, stride, m)
        y = _conv_bn(y, out, act=None)
        x = layers.Add()([x, y]) if stride == 1 and x.shape[-1] == out else y
        x = layers.Activation("relu6")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(100)(x))


NETWORKS = {
    "mobilenet_v1_a025": (mobilenet_v1, "MobileNetV1, alpha 0.25, 128x128"),
    "mobilenet_v2_a035": (mobilenet_v2, "MobileNetV2, alpha 0.35, 96x96"),
    "mobilenet_v3s_a075": (
        mobilenet_v3_small,
        "MobileNetV3-small, alpha 0.75, 128x128 (5x5 dw, SE, hard-swish)",
    ),
    "efficientnet_lite": (
        efficientnet_lite,
        "EfficientNet-lite0 style, 0.5x channels, 128x128 (5x5 dw)",
    ),
    "face_landmark": (face_landmark, "face-mesh style, PReLU, 128x128 down to 4x4x192"),
    "eegnet": (eegnet, "EEGNet-8,2, 22x256x1 (22x1 dw, m = 2)"),
    "multipliers": (multipliers, "depth multipliers 2 to 8, 96x96"),
}


# ---------------------------------------------------------------------------------------------
def build(name):
    """The Keras model ``name``, seeded; random batch-norm statistics and PReLU slopes."""
    keras.utils.set_random_seed(SEED)
    model = NETWORKS[name][0]()
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c),
                    rng.uniform(-0.2, 0.2, c),
                    rng.uniform(-0.2, 0.2, c),
                    rng.uniform(0.5, 1.5, c),
                ]
            )
        elif isinstance(layer, layers.PReLU):
            layer.set_weights([rng.uniform(0.05, 0.4, layer.alpha.shape)])
    return model


def close(got, expected):
    """``(ok, max_abs_err)``: equal within 1e-4 of the output's scale (deep float nets)."""
    err = float(np.max(np.abs(got.astype(np.float64) - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    return got.shape == expected.shape and err <= 1e-4 * scale, err


def to_tflite(fn):
    """The float32 .tflite of the tf.function ``fn``."""
    # frozen first: otherwise Keras 3's variables stay resource variables in the .tflite
    # (VAR_HANDLE/READ_VARIABLE ops, never initialized) and BatchNormalization is not folded
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


def to_tflite_int8(fn, shape):
    """The full-integer int8 .tflite of ``fn``, calibrated on 32 seeded inputs of ``shape``."""
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    rng = np.random.default_rng(SEED + 2)

    def samples():
        for _ in range(32):
            yield [rng.uniform(-1, 1, (1,) + shape).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # TVM 0.19's TFLite frontend takes only a per-tensor scale for FULLY_CONNECTED weights
    # ("Expr is not a constant scalar"); convolutions keep their per-channel scales
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return converter.convert()


def write_int8(name, fn, shape, x, expected):
    """``<name>_int8.tflite`` and ``.npz``; the index entry."""
    blob = to_tflite_int8(fn, shape)
    # TFLite's own kernels (no XNNPACK): every op is listed, the output is the reference's
    resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = tf.lite.Interpreter(
        model_content=blob, num_threads=2, experimental_op_resolver_type=resolver
    )
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if inp["dtype"] != np.int8 or out["dtype"] != np.int8:
        raise RuntimeError(f"{name}: int8 model has {inp['dtype']} in, {out['dtype']} out")
    (xs, xz), (ys, yz) = inp["quantization"], out["quantization"]
    xq = np.clip(np.sign(x) * np.floor(np.abs(x) / xs + 0.5) + xz, -128, 127).astype(np.int8)
    interp.set_tensor(inp["index"], xq)
    interp.invoke()
    got = interp.get_tensor(out["index"])
    details = interp._get_ops_details()
    ops = [op["op_name"] for op in details]
    dtypes = {d["index"]: d["dtype"] for d in interp.get_tensor_details()}
    # ops the converter left in float (it wraps them in DEQUANTIZE/QUANTIZE: EEGNet's ELU)
    float_ops = sorted(
        {
            op["op_name"]
            for op in details
            if op["op_name"] != "DEQUANTIZE" and any(dtypes[i] == np.float32 for i in op["outputs"])
        }
    )
    dw = [op for op in details if op["op_name"] == "DEPTHWISE_CONV_2D"]
    if not dw or any(
        dtypes[op["inputs"][i]] != np.int8 or dtypes[op["outputs"][0]] != np.int8
        for op in dw
        for i in (0, 1)
    ):
        raise RuntimeError(f"{name}: the depthwise convs are not all int8 ({sorted(set(ops))})")
    err_quanta = float(np.max(np.abs((got.astype(np.float64) - yz) * ys - expected)) / ys)
    with open(os.path.join(OUT_DIR, f"{name}_int8.tflite"), "wb") as f:
        f.write(blob)
    np.savez(os.path.join(OUT_DIR, f"{name}_int8.npz"), input_int8=xq, tflite_int8_output=got)
    print(
        f"{name}_int8: tflite {len(blob) / 1e6:.2f} MB, {ops.count('DEPTHWISE_CONV_2D')} "
        f"depthwise convs, dequantized output {err_quanta:.1f} quanta from Keras"
        + (f", float ops {float_ops}" if float_ops else ""),
        flush=True,
    )
    return {
        "tflite_bytes": len(blob),
        "tflite_depthwise": ops.count("DEPTHWISE_CONV_2D"),
        "ops": sorted(set(ops)),
        "float_ops": float_ops,
        "input_scale": float(xs),
        "input_zero_point": int(xz),
        "output_scale": float(ys),
        "output_zero_point": int(yz),
        "vs_keras_quanta": err_quanta,
    }


def run_tflite(blob, x):
    """The TFLite interpreter's output for ``x``, and the names of the file's ops."""
    interp = tf.lite.Interpreter(model_content=blob, num_threads=2)
    interp.allocate_tensors()
    ops = [op["op_name"] for op in interp._get_ops_details()]
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]), ops


def _patch_tf2onnx():
    """tf2onnx 1.17's transpose optimizer fails (``max() arg is an empty sequence``, logged,
    then it gives up) on a Conv followed by an Add of a scalar constant, hard-swish's ``x + 3``:
    the ONNX MobileNetV3 then keeps an NHWC<->NCHW Transpose around every op (103 of them).
    A scalar needs no bias merge: treat it like any other input of the Add."""
    from tf2onnx.optimizer.transpose_optimizer import TransposeOptimizer

    original = TransposeOptimizer._add_handler
    if getattr(original, "scalar_patch", False):
        return

    def add_handler(self, trans, node):
        if node.inputs[1].is_const() and node.inputs[1].get_tensor_value(as_list=False).ndim == 0:
            return self._handle_node_having_branches(trans, node)
        return original(self, trans, node)

    add_handler.scalar_patch = True
    TransposeOptimizer._add_handler = add_handler


def to_onnx(fn, input_name):
    """The ONNX model of ``fn`` (tf2onnx; its input ``input_name`` made NCHW)."""
    import tf2onnx

    _patch_tf2onnx()
    proto, _ = tf2onnx.convert.from_function(
        fn, input_signature=fn.input_signature, opset=OPSET, inputs_as_nchw=[input_name + ":0"]
    )
    proto.ir_version = min(proto.ir_version, 10)  # what onnxruntime 1.31 reads
    return proto


def run_onnx(blob, x_nchw):
    """ONNX Runtime's output for ``x_nchw``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x_nchw})[0]


def _forward(model, shape):
    """The model's inference as a tf.function of one float32 input ``(1, *shape)``."""

    @tf.function(input_signature=[tf.TensorSpec((1,) + shape, tf.float32, name="input")])
    def fn(inp):
        return model(inp, training=False)

    return fn


def main(argv):
    """Writes the networks named in ``argv`` (default: all) and updates index.json."""
    int8_only = "--int8-only" in argv
    names = [a for a in argv if a != "--int8-only"] or list(NETWORKS)
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        sys.exit(f"unknown network(s) {unknown}; known: {', '.join(NETWORKS)}")
    os.makedirs(OUT_DIR, exist_ok=True)
    index_path = os.path.join(OUT_DIR, "index.json")
    index = json.load(open(index_path)) if os.path.exists(index_path) else {}
    for name in names:
        model = build(name)
        shape = tuple(model.inputs[0].shape[1:])
        x = np.random.default_rng(SEED + 1).uniform(-1, 1, (1,) + shape).astype(np.float32)
        expected = model(x, training=False).numpy().astype(np.float64)
        fn = _forward(model, shape)
        int8 = write_int8(name, fn, shape, x, expected)
        if int8_only:
            index[name]["int8"] = int8
            continue
        tfl = to_tflite(fn)
        got, ops = run_tflite(tfl, x)
        ok_tfl, err_tfl = close(got, expected)
        if "DEPTHWISE_CONV_2D" not in ops:
            raise RuntimeError(f"{name}: no DEPTHWISE_CONV_2D in the .tflite ({set(ops)})")
        onnx_model = to_onnx(fn, "input")
        blob = onnx_model.SerializeToString()
        got_onnx = run_onnx(blob, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        ok_onnx, err_onnx = close(got_onnx, expected)
        if not (ok_tfl and ok_onnx):
            raise RuntimeError(f"{name}: TFLite err {err_tfl:.3g}, ONNX err {err_onnx:.3g}")
        with open(os.path.join(OUT_DIR, f"{name}.tflite"), "wb") as f:
            f.write(tfl)
        with open(os.path.join(OUT_DIR, f"{name}.onnx"), "wb") as f:
            f.write(blob)
        np.savez(
            os.path.join(OUT_DIR, f"{name}.npz"),
            input_nhwc=x,
            keras_output=expected.astype(np.float32),
        )
        dw = [
            n
            for n in onnx_model.graph.node
            if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
        ]
        index[name] = {
            "description": NETWORKS[name][1],
            "input_nhwc": list((1,) + shape),
            "output": list(expected.shape),
            "params": int(model.count_params()),
            "tflite_depthwise": ops.count("DEPTHWISE_CONV_2D"),
            "onnx_grouped_conv": len(dw),
            "tflite_bytes": len(tfl),
            "onnx_bytes": len(blob),
            "tflite_vs_keras": err_tfl,
            "onnx_vs_keras": err_onnx,
            "int8": int8,
        }
        print(
            f"{name}: {model.count_params()} params, {ops.count('DEPTHWISE_CONV_2D')} depthwise "
            f"convs, tflite {len(tfl) / 1e6:.2f} MB (err {err_tfl:.2g}), onnx "
            f"{len(blob) / 1e6:.2f} MB (err {err_onnx:.2g})",
            flush=True,
        )
    with open(index_path, "w") as f:
        json.dump({k: index[k] for k in NETWORKS if k in index}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
