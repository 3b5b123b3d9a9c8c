"""The CPU schedule of fused functions that end in a ``layout_transform`` into a packed layout:
values against NumPy for random layouts, blocks and channel pads; where it applies; the strategy
that serves ``layout_transform`` on CPU targets with the patch on and off."""

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tvm
import tvm.testing
from tvm import relay, te, tir, topi
from tvm.contrib import graph_executor
from tvm.relay.backend import te_compiler
from tvm.topi.x86 import packed_layout_transform
from tvm_canonicalize_depthwise import ENV_VAR

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
from host_isa import PORTABLE_TARGETS  # noqa: E402  pylint: disable=wrong-import-position

TARGET = tvm.target.Target(PORTABLE_TARGETS["avx2"])
ARM_TARGET = "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon"


def _numpy_layout(x, src, dst):
    """``x`` from layout ``src`` to ``dst`` (``NCHW``, ``NHWC`` or ``NCHW{b}c``) by reshapes
    and transposes, independent of TVM's layout machinery."""
    if src == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    elif src != "NCHW":  # NCHW{b}c
        n, outer, h, w, block = x.shape
        x = x.transpose(0, 1, 4, 2, 3).reshape(n, outer * block, h, w)
    if dst == "NHWC":
        return x.transpose(0, 2, 3, 1)
    if dst == "NCHW":
        return x
    block = int(dst[4:-1])
    n, c, h, w = x.shape
    return x.reshape(n, c // block, block, h, w).transpose(0, 1, 3, 4, 2)


def _shape(layout, channels, height, width):
    if layout == "NHWC":
        return (1, height, width, channels)
    if layout == "NCHW":
        return (1, channels, height, width)
    block = int(layout[4:-1])
    return (1, channels // block, height, width, block)


def _layouts(channels, packed_only=False):
    blocks = [b for b in range(1, 17) if channels % b == 0]
    packed = st.sampled_from(blocks).map(lambda b: f"NCHW{b}c")
    return packed if packed_only else st.one_of(st.sampled_from(["NCHW", "NHWC"]), packed)


@st.composite
def _chains(draw):
    """A source layout, an optional channel pad, a packed destination: what AlterOpLayout
    leaves around convolutions (repacks, re-blockings, a padded residual's unpack-pad-pack)."""
    channels = draw(st.integers(1, 40))
    padded = channels + draw(st.sampled_from([0, 0, 1, 4, 6, 8]))
    return {
        "channels": channels,
        "padded": padded,
        "src": draw(_layouts(channels)),
        "dst": draw(_layouts(padded, packed_only=True)),
        "height": draw(st.integers(1, 9)),
        "width": draw(st.integers(1, 11)),
    }


def _chain(x, case):
    if case["padded"] == case["channels"]:
        return topi.layout_transform(x, case["src"], case["dst"])
    unpacked = topi.layout_transform(x, case["src"], "NCHW")
    pad = topi.nn.pad(unpacked, [0, 0, 0, 0], [0, case["padded"] - case["channels"], 0, 0])
    return topi.layout_transform(pad, "NCHW", case["dst"])


@tvm.testing.requires_llvm
@settings(
    max_examples=int(os.environ.get("LAYOUT_TRANSFORM_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=_chains())
def test_packed_layout_transforms_match_numpy(case):
    assume(case["src"] != case["dst"] or case["padded"] != case["channels"])  # else no op
    x = te.placeholder(_shape(case["src"], case["channels"], case["height"], case["width"]))
    out = _chain(x, case)
    block = int(case["dst"][4:-1])
    source_block = int(case["src"][4:-1]) if case["src"].endswith("c") else 0
    sliced = source_block and source_block % block == 0 and case["padded"] == case["channels"]
    assert packed_layout_transform.packed_block(out) == (None if sliced else block)
    with TARGET:
        sch = packed_layout_transform.schedule_layout_transform([out])
    func = tvm.build(sch, [x, out], TARGET)
    data = np.random.default_rng(0).uniform(-1, 1, [int(d) for d in x.shape]).astype("float32")
    got = tvm.nd.empty([int(d) for d in out.shape], device=tvm.cpu())
    func(tvm.nd.array(data), got)
    expected = _numpy_layout(data, case["src"], "NCHW")
    pad = case["padded"] - case["channels"]
    expected = np.pad(expected, ((0, 0), (0, pad), (0, 0), (0, 0)))
    np.testing.assert_array_equal(got.numpy(), _numpy_layout(expected, "NCHW", case["dst"]))


def _loops(sch, args):
    kinds = []

    def visit(node):
        if isinstance(node, tir.For):
            kinds.append((str(node.loop_var.name), node.kind))

    # before lowering, which expands unrolled loops
    module = tvm.driver.build_module.schedule_to_module(sch, args)
    tvm.tir.stmt_functor.post_order_visit(module["main"].body, visit)
    return kinds


def test_packed_blocks_are_unrolled_and_other_outputs_keep_topis_schedule():
    """A re-blocking into NCHW14c: the rows in parallel, the block unrolled, nothing vectorized
    (a vector would divide per lane); an unpack to NCHW keeps TOPI's vectorized width."""
    x = te.placeholder((1, 2, 8, 8, 12))
    packed = topi.layout_transform(x, "NCHW12c", "NCHW14c")
    with TARGET:
        kinds = [
            k
            for _, k in _loops(
                packed_layout_transform.schedule_layout_transform(packed), [x, packed]
            )
        ]
    assert tir.ForKind.PARALLEL in kinds and tir.ForKind.VECTORIZED not in kinds
    assert kinds.count(tir.ForKind.UNROLLED) == 2  # the columns' step and the block
    unpacked = topi.layout_transform(x, "NCHW12c", "NCHW")
    assert packed_layout_transform.packed_block(unpacked) is None
    with TARGET:
        kinds = [
            k
            for _, k in _loops(
                packed_layout_transform.schedule_layout_transform(unpacked), [x, unpacked]
            )
        ]
    assert tir.ForKind.VECTORIZED in kinds
    # a block that is a slice of the source's: TOPI's vector reads contiguous lanes
    sliced = topi.layout_transform(te.placeholder((1, 2, 4, 4, 16)), "NCHW16c", "NCHW8c")
    assert packed_layout_transform.packed_block(sliced) is None
    wide = topi.layout_transform(te.placeholder((1, 64, 4, 4)), "NCHW", "NCHW64c")
    assert packed_layout_transform.packed_block(wide) is None  # wider blocks vectorize
    assert packed_layout_transform.packed_block(topi.nn.relu(packed)) is None


@pytest.mark.parametrize("target", [str(TARGET), ARM_TARGET], ids=["x86", "arm"])
def test_cpu_targets_get_the_packed_schedule_with_the_patch_on_and_tvms_with_it_off(
    target, monkeypatch
):
    x = relay.var("x", shape=(1, 24, 8, 8))
    call = relay.layout_transform(x, "NCHW", "NCHW8c")
    call = relay.transform.InferType()(tvm.IRModule.from_expr(call))["main"].body
    inputs = [te.placeholder((1, 24, 8, 8))]

    def chosen():
        impl, _ = te_compiler.select_implementation(
            call.op, call.attrs, inputs, call.checked_type, tvm.target.Target(target)
        )
        return impl.name

    assert chosen() == "layout_transform.x86"
    monkeypatch.setenv(ENV_VAR, "0")
    assert chosen() == "layout_transform.generic"


def test_a_padded_residual_in_a_network_computes_as_numpy():
    """The BlazeFace block: 24 channels padded to 28 and added to a 1x1 conv's output, NCHW,
    built at opt_level 3 (packed by AlterOpLayout, the pad's chain fused and scheduled here)."""
    rng = np.random.default_rng(3)
    data = rng.uniform(-1, 1, (1, 24, 16, 16)).astype("float32")
    weight = rng.uniform(-1, 1, (28, 24, 1, 1)).astype("float32")
    x = relay.var("x", shape=data.shape)
    conv = relay.nn.conv2d(x, relay.const(weight), channels=28, kernel_size=(1, 1))
    residual = relay.nn.pad(x, [(0, 0), (0, 4), (0, 0), (0, 0)])
    mod = tvm.IRModule.from_expr(relay.nn.relu(conv + residual))
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=TARGET)
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.run(x=data)
    expected = np.einsum("oi,nihw->nohw", weight[:, :, 0, 0], data)
    expected += np.pad(data, ((0, 0), (0, 4), (0, 0), (0, 0)))
    tvm.testing.assert_allclose(
        module.get_output(0).numpy(), np.maximum(expected, 0), rtol=1e-5, atol=1e-5
    )


if __name__ == "__main__":
    tvm.testing.main()
