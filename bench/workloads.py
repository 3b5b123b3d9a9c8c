"""The depthwise convolutions the benchmark measures, and their deterministic data.

Every workload is one depthwise convolution, float32, batch 1, dilation 1, with channel
multiplier ``m`` over ``C`` input channels (``C*m`` output channels). Padding is explicit
(top, left, bottom, right) and computed the way TensorFlow computes ``'SAME'`` (the extra
row/column goes at the bottom/right), or is zero for ``'VALID'``.

Weights are generated in TFLite's HWCM layout ``[kh, kw, C, m]`` and converted to:

* the multiplier form, OIHW ``[C, m, kh, kw]`` (TFLite/Keras frontends), and
* the canonical grouped form, OIHW ``[C*m, 1, kh, kw]`` (ONNX/PyTorch frontends),

which hold the same numbers in the same order: ``canonical[c*m + q] == multiplier[c, q]``.

This module needs NumPy only, so the TensorFlow venv that writes the .tflite files can use it.
"""

from dataclasses import dataclass

import numpy as np

SEED = 20240519


@dataclass(frozen=True)
class Workload:
    """One depthwise convolution. ``padding`` is ``'SAME'`` or ``'VALID'`` (TensorFlow's)."""

    name: str
    C: int  # pylint: disable=invalid-name  # channels: the math symbol
    H: int  # pylint: disable=invalid-name  # input height
    W: int  # pylint: disable=invalid-name  # input width
    kh: int
    kw: int
    stride: int = 1
    m: int = 1
    padding: str = "SAME"
    dilation: int = 1

    # -- shapes ---------------------------------------------------------------------------
    @property
    def pads(self):
        """Explicit padding ``(top, left, bottom, right)``, TensorFlow's rule for 'SAME'."""
        if self.padding == "VALID":
            return (0, 0, 0, 0)
        top, bottom = _same_pad(self.H, self.kh, self.stride)
        left, right = _same_pad(self.W, self.kw, self.stride)
        return (top, left, bottom, right)

    @property
    def out_hw(self):
        """Output height and width."""
        t, l, b, r = self.pads
        return (
            (self.H + t + b - self.kh) // self.stride + 1,
            (self.W + l + r - self.kw) // self.stride + 1,
        )

    @property
    def nbytes(self):
        """Bytes of input + weight + output (float32): what the copy floor moves."""
        oh, ow = self.out_hw
        elems = (
            self.C * self.H * self.W
            + self.C * self.m * self.kh * self.kw
            + self.C * self.m * oh * ow
        )
        return 4 * elems

    def describe(self):
        """A short human label, e.g. ``C=32 112x112 k3x3 s1 m1``."""
        return f"C={self.C} {self.H}x{self.W} k{self.kh}x{self.kw} s{self.stride} m{self.m}" + (
            " VALID" if self.padding == "VALID" else ""
        )

    # -- data -----------------------------------------------------------------------------
    def _rng(self, salt):
        return np.random.default_rng([SEED, salt, *map(ord, self.name)])

    def input_nchw(self):
        """Input ``[1, C, H, W]`` float32, uniform in [-1, 1)."""
        x = self._rng(0).uniform(-1.0, 1.0, size=(1, self.C, self.H, self.W))
        return x.astype(np.float32)

    def input_nhwc(self):
        """The same input as ``[1, H, W, C]``."""
        return np.ascontiguousarray(self.input_nchw().transpose(0, 2, 3, 1))

    def weight_hwcm(self):
        """Weight in TFLite/TensorFlow layout ``[kh, kw, C, m]`` float32."""
        scale = 1.0 / np.sqrt(self.kh * self.kw)
        w = self._rng(1).normal(0.0, scale, size=(self.kh, self.kw, self.C, self.m))
        return w.astype(np.float32)

    def weight_multiplier(self):
        """Multiplier form, OIHW ``[C, m, kh, kw]``."""
        return hwcm_to_multiplier(self.weight_hwcm())

    def weight_canonical(self):
        """Canonical grouped form, OIHW ``[C*m, 1, kh, kw]``."""
        return multiplier_to_canonical(self.weight_multiplier())


def _same_pad(size, k, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def hwcm_to_multiplier(w_hwcm):
    """``[kh, kw, C, m]`` -> ``[C, m, kh, kw]``."""
    return np.ascontiguousarray(w_hwcm.transpose(2, 3, 0, 1))


def multiplier_to_canonical(w_mult):
    """``[C, m, kh, kw]`` -> ``[C*m, 1, kh, kw]`` (a reshape: same element order)."""
    c, m, kh, kw = w_mult.shape
    return np.ascontiguousarray(w_mult.reshape(c * m, 1, kh, kw))


def _w(name, C, H, k, stride=1, m=1, W=None, kw=None, padding="SAME"):
    """A Workload of a k x k kernel (or k x kw) on a square input (or H x W)."""
    # pylint: disable=invalid-name  # C, H, W: the fields' math symbols
    return Workload(
        name, C, H, H if W is None else W, k, k if kw is None else kw, stride, m, padding
    )


WORKLOADS = [
    # MobileNetV1: 3x3, m = 1
    _w("mnv1_32x112", 32, 112, 3),
    _w("mnv1_64x112_s2", 64, 112, 3, 2),
    _w("mnv1_128x56", 128, 56, 3),
    _w("mnv1_128x56_s2", 128, 56, 3, 2),
    _w("mnv1_256x28", 256, 28, 3),
    _w("mnv1_256x28_s2", 256, 28, 3, 2),
    _w("mnv1_512x14", 512, 14, 3),
    _w("mnv1_512x14_s2", 512, 14, 3, 2),
    _w("mnv1_1024x7", 1024, 7, 3),
    # MobileNetV2: 3x3, m = 1
    _w("mnv2_96x112_s2", 96, 112, 3, 2),
    _w("mnv2_144x56", 144, 56, 3),
    _w("mnv2_192x28", 192, 28, 3),
    _w("mnv2_384x14", 384, 14, 3),
    _w("mnv2_576x14_s2", 576, 14, 3, 2),
    _w("mnv2_960x7", 960, 7, 3),
    # EfficientNet-B0: 5x5, m = 1
    _w("effb0_144x56_k5_s2", 144, 56, 5, 2),
    _w("effb0_240x28_k5", 240, 28, 5),
    _w("effb0_672x14_k5", 672, 14, 5),
    _w("effb0_672x14_k5_s2", 672, 14, 5, 2),
    _w("effb0_1152x7_k5", 1152, 7, 5),
    # channel multiplier > 1
    _w("m2_32x56", 32, 56, 3, m=2),
    _w("m4_16x56", 16, 56, 3, m=4),
    _w("m16_8x32", 8, 32, 3, m=16),
    _w("m2_64x112", 64, 112, 3, m=2),
    _w("m8_16x112", 16, 112, 3, m=8),
    _w("m4_32x56_s2", 32, 56, 3, 2, m=4),
    _w("m2_96x28_k5", 96, 28, 5, m=2),
    _w("m8_64x14", 64, 14, 3, m=8),
    _w("m16_32x28", 32, 28, 3, m=16),
    # tall kernel spanning all 22 rows (as in keyword-spotting models): VALID, one output row
    _w("m4_8x22x32_k22x1", 8, 22, 22, m=4, W=32, kw=1, padding="VALID"),
]

BY_NAME = {w.name: w for w in WORKLOADS}

# A small subset for a smoke run: m = 1 with 3x3 and 5x5, m = 4 and 16, and the tall kernel.
QUICK = ["mnv1_32x112", "effb0_240x28_k5", "m4_16x56", "m16_8x32", "m4_8x22x32_k22x1"]

# The six workloads DESIGN.md reports peer numbers for.
DESIGN = ["mnv1_32x112", "mnv2_144x56", "mnv1_512x14", "m2_32x56", "m4_16x56", "m16_8x32"]


def select(names):
    """Workloads by name, in the given order; a clear error for an unknown name."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(
            f"unknown workload(s): {', '.join(unknown)}; " f"known: {', '.join(BY_NAME)}"
        )
    return [BY_NAME[n] for n in names]
