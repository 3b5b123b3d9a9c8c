"""Full-integer int8 depthwise workloads: quantization parameters, quantized input and an exact
integer reference. NumPy only (plus a TFLite interpreter object passed in), so both the
TensorFlow venv of ``make_tflite_models.py`` and the benchmark venv can use it.

A workload's int8 model, ``bench/models/<name>_int8.tflite``, is one DEPTHWISE_CONV_2D with
int8 input and output (per-tensor scale and zero point), an int8 weight ``[1, kh, kw, C*m]``
with one scale per output channel (zero point 0) and, if the converter wrote one, an int32
bias with scale ``x_scale * w_scale[o]``. Output channel ``o = c*m + q`` reads input channel c,
as in the canonical form, so the canonical OIHW weight is ``weight.transpose(3, 0, 1, 2)``.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from reference import depthwise_conv2d_nchw


@dataclass
class QParams:
    """The quantization of one int8 depthwise conv (TFLite's view)."""

    x_scale: float
    x_zero: int
    w_scale: np.ndarray  # float32 [C*m]
    weight: np.ndarray  # int8 canonical OIHW [C*m, 1, kh, kw]
    bias: Optional[np.ndarray]  # int32 [C*m] or None
    y_scale: float
    y_zero: int

    def to_json(self):
        """The parameters as the report records them (scalars and counts)."""
        return {
            "x_scale": self.x_scale,
            "x_zero": self.x_zero,
            "y_scale": self.y_scale,
            "y_zero": self.y_zero,
            "per_channel_w_scales": int(self.w_scale.size),
            "bias": self.bias is not None,
        }


def read_qparams(interp):
    """:class:`QParams` of the one DEPTHWISE_CONV_2D in an allocated TFLite interpreter
    (tf.lite's or ai_edge_litert's; one without a delegate, so the weight is readable)."""
    ops = [
        op
        for op in interp._get_ops_details()  # no public API for this
        if op["op_name"] == "DEPTHWISE_CONV_2D"
    ]
    if len(ops) != 1:
        raise ValueError(f"expected one DEPTHWISE_CONV_2D, got {len(ops)}")
    inputs = list(ops[0]["inputs"])
    data_i, weight_i = inputs[:2]
    bias_i = inputs[2] if len(inputs) > 2 else -1
    out_i = ops[0]["outputs"][0]
    details = {d["index"]: d for d in interp.get_tensor_details()}

    def qp(index):
        p = details[index]["quantization_parameters"]
        return np.asarray(p["scales"], np.float32), np.asarray(p["zero_points"], np.int64)

    xs, xz = qp(data_i)
    ws, wz = qp(weight_i)
    ys, yz = qp(out_i)
    if xs.size != 1 or ys.size != 1:
        raise ValueError("expected per-tensor input and output quantization")
    if np.any(wz != 0):
        raise ValueError("expected weight zero points 0")
    weight = interp.get_tensor(weight_i)  # [1, kh, kw, C*m]
    if weight.dtype != np.int8:
        raise ValueError(f"expected an int8 weight, got {weight.dtype}")
    canonical = np.ascontiguousarray(weight.transpose(3, 0, 1, 2))
    ws = np.broadcast_to(ws, (canonical.shape[0],)).astype(np.float32)
    bias = interp.get_tensor(bias_i).astype(np.int32) if bias_i >= 0 else None
    return QParams(float(xs[0]), int(xz[0]), ws, canonical, bias, float(ys[0]), int(yz[0]))


def quantize(x, scale, zero):
    """float -> int8 with TFLite's rounding (half away from zero) and saturation."""
    q = np.sign(x) * np.floor(np.abs(x) / scale + 0.5) + zero
    return np.clip(q, -128, 127).astype(np.int8)


def int8_input_nhwc(wl, qp):
    """The workload's float input, quantized with the model's input parameters, NHWC int8."""
    return quantize(wl.input_nhwc(), qp.x_scale, qp.x_zero)


def int8_reference(wl, qp, x_nhwc):
    """The exact integer conv of ``x_nhwc`` (int8) plus bias, requantized in float64 (TFLite's
    fixed-point requantization may differ by one), NCHW int8."""
    x = x_nhwc.transpose(0, 3, 1, 2).astype(np.int64) - qp.x_zero
    acc = depthwise_conv2d_nchw(x, qp.weight.astype(np.int64), (wl.stride,) * 2, wl.pads)
    if qp.bias is not None:
        acc = acc + qp.bias.astype(np.int64)[None, :, None, None]
    scale = (np.float64(qp.x_scale) * qp.w_scale.astype(np.float64)) / np.float64(qp.y_scale)
    y = np.round(acc * scale[None, :, None, None]) + qp.y_zero
    return np.clip(y, -128, 127).astype(np.int8)


def quanta(got, expected):
    """Largest difference in quanta (int), or None if the shapes differ."""
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return None
    return int(np.max(np.abs(got.astype(np.int32) - expected.astype(np.int32))))
