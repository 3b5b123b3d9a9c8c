"""Quantized depthwise convolutions (qnn.conv2d): the pass canonicalizes them, scales aligned."""

import logging

import numpy as np
import pytest

import tvm
import tvm.testing
from tvm import relay
from tvm.contrib import graph_executor
from tvm.relay.transform.canonicalize_depthwise import CanonicalizeDepthwise
from tvm_canonicalize_depthwise import ENV_VAR
from tvm_canonicalize_depthwise.llvm_compat import VNNI_OFF, llvm_major, without_broken_vnni

from host_isa import PORTABLE_TARGETS
from stock_tvm import _Implementations

# runs on every x86 host of the project (see host_isa)
TARGET = PORTABLE_TARGETS["avx2"]
SIZE, KERNEL = 7, 3

# TFLite full-integer: int8, per-channel weight scales, weight zero point 0; older
# quantization-aware models: uint8, one scale and a nonzero zero point for the weight
SCHEMES = {
    "int8_per_channel": dict(dtype="int8", input_zp=-3, kernel_zp=0, per_channel=True),
    "uint8_per_tensor": dict(dtype="uint8", input_zp=128, kernel_zp=121, per_channel=False),
}
LAYOUTS = {"tflite": ("NHWC", "HWOI"), "nchw": ("NCHW", "OIHW")}


def _weights(rng, scheme, channels, multiplier):
    """The weight in the multiplier form, OIHW ``[C, m, kH, kW]``, and the kernel scales."""
    low, high = (-127, 128) if scheme["dtype"] == "int8" else (0, 256)
    weight = rng.integers(low, high, (channels, multiplier, KERNEL, KERNEL))
    count = channels * multiplier if scheme["per_channel"] else 1
    scales = rng.uniform(0.002, 0.02, count).astype("float32")
    return weight.astype(scheme["dtype"]), scales


def _to_layout(oihw, layout):
    return oihw.transpose(["OIHW".index(axis) for axis in layout])


def _model(scheme, layouts, channels, multiplier, form, requantize=False, seed=0):
    """A qnn.conv2d (and, with ``requantize``, its requantize to the input's dtype)."""
    rng = np.random.default_rng(seed)
    data_layout, kernel_layout = layouts
    weight, scales = _weights(rng, scheme, channels, multiplier)
    if form == "canonical":
        weight = weight.reshape(channels * multiplier, 1, KERNEL, KERNEL)
    shape = {"NHWC": (1, SIZE, SIZE, channels), "NCHW": (1, channels, SIZE, SIZE)}[data_layout]
    data = relay.var("data", shape=shape, dtype=scheme["dtype"])
    kernel_scale = relay.const(scales if scheme["per_channel"] else scales[0])
    conv = relay.qnn.op.conv2d(
        data,
        relay.const(_to_layout(weight, kernel_layout)),
        relay.const(scheme["input_zp"], "int32"),
        relay.const(scheme["kernel_zp"], "int32"),
        relay.const(0.05, "float32"),
        kernel_scale,
        kernel_size=(KERNEL, KERNEL),
        channels=channels * multiplier,
        groups=channels,
        padding=(1, 1),
        data_layout=data_layout,
        kernel_layout=kernel_layout,
        out_dtype="int32",
    )
    out = conv
    if requantize:
        out = relay.qnn.op.requantize(
            conv,
            relay.const(0.05 * (scales if scheme["per_channel"] else scales[0])),
            relay.const(0, "int32"),
            relay.const(0.1, "float32"),
            relay.const(scheme["input_zp"], "int32"),
            axis=data_layout.index("C"),
            out_dtype=scheme["dtype"],
        )
    mod = tvm.IRModule.from_expr(relay.Function([data], out))
    low, high = (-128, 128) if scheme["dtype"] == "int8" else (0, 256)
    inputs = rng.integers(low, high, shape).astype(scheme["dtype"])
    return mod, inputs, weight, scales


def _reference(scheme, layouts, inputs, weight, channels, multiplier):
    """int32 sums of (x - x_zp) * (w - w_zp), in NumPy (``weight`` in either form, OIHW)."""
    data = inputs if layouts[0] == "NCHW" else inputs.transpose(0, 3, 1, 2)
    data = np.pad(data.astype(np.int64) - scheme["input_zp"], ((0, 0), (0, 0), (1, 1), (1, 1)))
    canonical = weight.reshape(channels * multiplier, KERNEL, KERNEL).astype(np.int64)
    canonical -= scheme["kernel_zp"]
    out = np.zeros((1, channels * multiplier, SIZE, SIZE), np.int64)
    for o in range(channels * multiplier):
        for ky in range(KERNEL):
            for kx in range(KERNEL):
                out[0, o] += (
                    data[0, o // multiplier, ky : ky + SIZE, kx : kx + SIZE] * canonical[o, ky, kx]
                )
    return out if layouts[0] == "NCHW" else out.transpose(0, 2, 3, 1)


def _build_and_run(mod, inputs):
    log = logging.getLogger("te_compiler")
    chosen = _Implementations()
    level = log.level
    log.addHandler(chosen)
    log.setLevel(logging.INFO)
    try:
        with tvm.transform.PassContext(opt_level=3):
            lib = relay.build(mod, target=TARGET)
    finally:
        log.removeHandler(chosen)
        log.setLevel(level)
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.set_input("data", inputs)
    module.run()
    return module.get_output(0).numpy(), chosen.chosen


def _qnn_convs(mod):
    convs = []
    relay.analysis.post_order_visit(
        mod["main"],
        lambda node: (
            convs.append(node)
            if isinstance(node, relay.Call) and getattr(node.op, "name", "") == "qnn.conv2d"
            else None
        ),
    )
    return convs


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEMES)
@pytest.mark.parametrize("layouts", LAYOUTS.values(), ids=LAYOUTS)
def test_the_pass_rewrites_the_weight_and_keeps_zero_points_and_scales(scheme, layouts):
    mod, _, weight, scales = _model(SCHEMES[scheme], layouts, 3, 4, "multiplier")
    (before,) = _qnn_convs(relay.transform.InferType()(mod))
    (after,) = _qnn_convs(CanonicalizeDepthwise()(mod))
    kernel_layout = layouts[1]
    canonical = _to_layout(weight.reshape(12, 1, KERNEL, KERNEL), kernel_layout)
    np.testing.assert_array_equal(after.args[1].data.numpy(), canonical)
    assert after.args[1].data.numpy().shape[kernel_layout.index("O")] == 12
    for old, new in zip(before.args[2:], after.args[2:]):
        assert tvm.ir.structural_equal(old, new)
    np.testing.assert_array_equal(
        after.args[5].data.numpy(), np.asarray(scales).reshape(after.args[5].data.numpy().shape)
    )
    # the caller's module is left as it was
    (still,) = _qnn_convs(relay.transform.InferType()(mod))
    assert still.args[1].data.numpy().shape == before.args[1].data.numpy().shape


def test_a_canonical_or_one_channel_multiplier_qnn_conv_is_left_alone():
    scheme = SCHEMES["int8_per_channel"]
    for multiplier, form in ((4, "canonical"), (1, "multiplier")):
        mod, *_ = _model(scheme, LAYOUTS["tflite"], 3, multiplier, form)
        typed = relay.transform.InferType()(mod)
        assert tvm.ir.structural_equal(
            relay.transform.InferType()(CanonicalizeDepthwise()(mod)), typed
        )


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEMES)
@pytest.mark.parametrize("layouts", LAYOUTS.values(), ids=LAYOUTS)
@pytest.mark.parametrize("multiplier", [1, 2, 4])
def test_quantized_depthwise_is_exact_and_reaches_the_unified_strategy(
    scheme, layouts, multiplier, monkeypatch
):
    channels = 5
    mod, inputs, weight, _ = _model(SCHEMES[scheme], layouts, channels, multiplier, "multiplier")
    expected = _reference(SCHEMES[scheme], layouts, inputs, weight, channels, multiplier)
    monkeypatch.setenv(ENV_VAR, "1")
    actual, chosen = _build_and_run(mod, inputs)
    np.testing.assert_array_equal(actual, expected)
    assert any("depthwise_conv2d_canonical" in entry for entry in chosen), chosen


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEMES)
@pytest.mark.parametrize("multiplier", [2, 4])
def test_requantized_outputs_are_bit_identical_to_the_patch_off(scheme, multiplier, monkeypatch):
    mod, inputs, _, _ = _model(
        SCHEMES[scheme],
        LAYOUTS["tflite"],
        6,
        multiplier,
        "multiplier",
        requantize=True,
        seed=multiplier,
    )
    monkeypatch.setenv(ENV_VAR, "1")
    on, _ = _build_and_run(mod, inputs)
    monkeypatch.setenv(ENV_VAR, "0")
    off, chosen_off = _build_and_run(mod, inputs)
    assert not any("depthwise_conv2d_canonical" in entry for entry in chosen_off), chosen_off
    assert on.dtype == np.dtype(SCHEMES[scheme]["dtype"])
    np.testing.assert_array_equal(on, off)
    # and not trivially: the outputs vary
    assert len(np.unique(on)) > 10


def test_quantized_networks_build_for_vnni_targets_without_vnni():
    """``without_broken_vnni``: for a VNNI target, TVM 0.19's int8 conv2d code does not compile
    with this LLVM; with VNNI off the same quantized conv compiles, using ``vpmaddubsw``."""
    assert llvm_major() >= 21  # the LLVM pinned with TVM here
    for cpu in ("cascadelake", "icelake-server", "znver4"):
        assert without_broken_vnni(f"llvm -mcpu={cpu}") == f"llvm -mcpu={cpu} {VNNI_OFF}"
    for target in (
        "llvm -mcpu=haswell",
        "llvm -mcpu=skylake-avx512",
        "c",
        "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon",
    ):
        assert without_broken_vnni(target) == target

    rng = np.random.default_rng(0)
    data = relay.var("data", shape=(1, 16, 8, 8), dtype="int8")
    conv = relay.qnn.op.conv2d(
        data,
        relay.const(rng.integers(-127, 128, (32, 16, 3, 3)).astype("int8")),
        relay.const(0, "int32"),
        relay.const(0, "int32"),
        relay.const(0.05, "float32"),
        relay.const(0.01, "float32"),
        kernel_size=(3, 3),
        channels=32,
        padding=(1, 1),
        out_dtype="int32",
    )
    mod = tvm.IRModule.from_expr(relay.Function([data], conv))
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=without_broken_vnni("llvm -mcpu=cascadelake"))
    ir = lib.get_lib().get_source("ll")
    assert "vpdpbusd" not in ir and "pmaddubs" in ir


@pytest.mark.parametrize("layouts", LAYOUTS)
def test_qnn_legalize_canonicalizes_where_the_pass_did_not_run(layouts):
    # qnn.transform.Legalize, which every pipeline runs before QNN is lowered (MetaSchedule's
    # C++ task extraction too), rewrites the multiplier form as the pass does
    scheme = SCHEMES["int8_per_channel"]
    multiplier_form = relay.transform.InferType()(
        _model(scheme, LAYOUTS[layouts], 4, 2, "multiplier")[0]
    )
    canonical = relay.transform.InferType()(_model(scheme, LAYOUTS[layouts], 4, 2, "canonical")[0])
    with tvm.transform.PassContext(opt_level=3):
        legal = relay.transform.InferType()(relay.qnn.transform.Legalize()(multiplier_form))
    tvm.ir.assert_structural_equal(legal, canonical)
    with tvm.transform.PassContext(opt_level=3, disabled_pass=["CanonicalizeDepthwise"]):
        left = relay.transform.InferType()(relay.qnn.transform.Legalize()(multiplier_form))
    tvm.ir.assert_structural_equal(left, multiplier_form)


if __name__ == "__main__":
    tvm.testing.main()
