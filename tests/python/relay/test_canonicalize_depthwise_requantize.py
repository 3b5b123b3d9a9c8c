"""A requantize fused into the depthwise conv rounds its product as Relay and stock TVM do.

TVM lowers a quantized conv's requantize to ``floor(float(sums) * scale + c)`` in float32,
fused into the conv. Relay rounds the product to float32 before the add; a fused multiply-add
rounds once, and ``floor`` then moves a boundary value by one quantum. The data here are made
so that many outputs sit on such a boundary: for each channel a scale with ``float32(v *
scale) == 5.5`` while ``v * scale < 5.5`` exactly, and ``c = -5.5``, so that two roundings give
0 and one gives -1 wherever the input is ``v``.
"""

import re

import numpy as np
import pytest

import tvm
import tvm.testing
from tvm import relay
from tvm.contrib import graph_executor
from tvm_canonicalize_depthwise import ENV_VAR

from host_isa import PORTABLE_TARGETS, runs_on_host

OFFSET = np.float32(-5.5)


def _boundary_data(channels, size, multiplier, seed):
    """Input ``[size, size, channels]`` (int8) and per-output-channel scales that put the
    inputs equal to each channel's chosen value on a rounding boundary."""
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 128, size=(size, size, channels)).astype(np.int8)
    scales = np.zeros(channels * multiplier, np.float32)
    for out_channel in range(channels * multiplier):
        values = np.unique(data[..., out_channel // multiplier])
        for value in rng.permutation(values):
            near = np.float32(5.5 / value)
            candidates = (
                near,
                np.nextafter(near, np.float32(0)),
                np.nextafter(near, np.float32(1)),
            )
            hits = [
                scale
                for scale in candidates
                if np.float32(value * np.float64(scale)) == np.float32(5.5)
                and value * np.float64(scale) < 5.5
            ]
            if hits:
                scales[out_channel] = hits[0]
                break
        assert scales[out_channel], "no boundary scale for this channel"
    return data, scales


def _model(data, scales, multiplier, layout, kernel_size=3):
    """conv (centre tap 1, so the sums are the input) -> cast -> * scale -> + c -> floor."""
    size, _, channels = data.shape
    out_channels = channels * multiplier
    k = kernel_size
    weight = np.zeros((channels, multiplier, k, k), np.int8)  # the multiplier form, OIHW
    weight[:, :, k // 2, k // 2] = 1
    if layout == "NHWC":
        shape, kernel_layout = (1, size, size, channels), "HWOI"
        kernel = weight.transpose(2, 3, 0, 1)
        scale_shape = (1, 1, 1, out_channels)
    else:
        shape, kernel_layout = (1, channels, size, size), "OIHW"
        kernel = weight
        scale_shape = (1, out_channels, 1, 1)
    x = relay.var("x", shape=shape, dtype="int8")
    conv = relay.nn.conv2d(
        x,
        relay.const(kernel),
        kernel_size=(k, k),
        padding=(k // 2, k // 2),
        groups=channels,
        channels=out_channels,
        data_layout=layout,
        kernel_layout=kernel_layout,
        out_dtype="int32",
    )
    product = relay.multiply(relay.cast(conv, "float32"), relay.const(scales.reshape(scale_shape)))
    out = relay.cast(relay.floor(relay.add(product, relay.const(OFFSET))), "int32")
    return tvm.IRModule.from_expr(relay.Function([x], out))


def _build(mod, target, enabled, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1" if enabled else "0")
    with tvm.transform.PassContext(opt_level=3):
        return relay.build(mod, target=target)


def _run(lib, data, layout):
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.set_input("x", (data if layout == "NHWC" else data.transpose(2, 0, 1))[None])
    module.run()
    out = module.get_output(0).numpy()[0]
    return out if layout == "NHWC" else out.transpose(1, 2, 0)


def _fused_multiply_adds(lib):
    return len(re.findall(r"\bvfn?m(add|sub)\w*", lib.get_lib().get_source("asm")))


# C, size, m, kernel: tasks of a few vectors (their products in a loop of their own) and of
# many (stored per task), multipliers
SHAPES = [
    (64, 14, 1, 1),
    (1152, 7, 1, 5),
    (512, 7, 1, 3),
    (32, 28, 1, 3),
    (16, 14, 4, 3),
    (8, 22, 4, 3),
]


@pytest.mark.parametrize("target", PORTABLE_TARGETS, ids=PORTABLE_TARGETS)
@pytest.mark.parametrize(
    "shape", SHAPES, ids=lambda s: "C{}_{}x{}_m{}_k{}".format(s[0], s[1], s[1], s[2], s[3])
)
def test_nhwc_requantize_rounds_the_product_like_relay_and_stock(shape, target, monkeypatch):
    channels, size, multiplier, kernel_size = shape
    data, scales = _boundary_data(channels, size, multiplier, seed=channels)
    sums = np.repeat(data, multiplier, axis=-1).astype(np.float32)
    expected = np.floor(sums * scales + OFFSET).astype(np.int32)  # NumPy: two roundings
    once = np.floor(sums.astype(np.float64) * scales + np.float64(OFFSET)).astype(np.int32)
    # the test can fail: one rounding gives other integers on many outputs
    assert (once != expected).sum() >= data.size // 200

    mod = _model(data, scales, multiplier, "NHWC", kernel_size)
    on = _build(mod, PORTABLE_TARGETS[target], True, monkeypatch)
    off = _build(mod, PORTABLE_TARGETS[target], False, monkeypatch)
    # nothing else in these functions is a float multiply-add
    assert _fused_multiply_adds(on) == 0
    assert _fused_multiply_adds(off) == 0
    if runs_on_host(PORTABLE_TARGETS[target]):
        np.testing.assert_array_equal(_run(on, data, "NHWC"), expected)
        np.testing.assert_array_equal(_run(off, data, "NHWC"), expected)


def test_nchw_requantize_computes_what_stock_computes(monkeypatch):
    """Stock's NCHW depthwise schedules inline the epilogue and contract it; so does the
    patch, and the integers are the same with it on and off."""
    data, scales = _boundary_data(32, 14, 1, seed=3)
    mod = _model(data, scales, 1, "NCHW")
    target = PORTABLE_TARGETS["avx2"]
    on = _run(_build(mod, target, True, monkeypatch), data, "NCHW")
    off = _run(_build(mod, target, False, monkeypatch), data, "NCHW")
    np.testing.assert_array_equal(on, off)
    expected = np.floor(data.astype(np.float32) * scales + OFFSET).astype(np.int32)
    assert (on != expected).sum() > 0  # stock's one rounding, kept


def test_a_requantize_read_by_two_branches_builds_and_rounds_like_stock(monkeypatch):
    """EEGNet's int8 ELU reads the requantized value twice (``r * a + max(r, 0)``): that
    product does not stand between the output and the sums, the requantize's does."""
    data, scales = _boundary_data(64, 14, 1, seed=5)
    mod = _model(data, scales, 1, "NHWC", 1)
    body = mod["main"].body
    requantized = relay.cast(body, "float32")
    out = relay.add(
        relay.multiply(requantized, relay.const(np.float32(0.75))),
        relay.maximum(requantized, relay.const(np.float32(0))),
    )
    mod = tvm.IRModule.from_expr(relay.Function(mod["main"].params, out))
    rounded = np.floor(data.astype(np.float32) * scales + OFFSET)
    expected = rounded * np.float32(0.75) + np.maximum(rounded, np.float32(0))
    assert (rounded != np.floor(data.astype(np.float64) * scales + np.float64(OFFSET))).any()
    for target in PORTABLE_TARGETS.values():
        on = _build(mod, target, True, monkeypatch)
        off = _build(mod, target, False, monkeypatch)
        if runs_on_host(target):
            np.testing.assert_array_equal(_run(on, data, "NHWC"), expected)
            np.testing.assert_array_equal(_run(off, data, "NHWC"), expected)


if __name__ == "__main__":
    tvm.testing.main()
