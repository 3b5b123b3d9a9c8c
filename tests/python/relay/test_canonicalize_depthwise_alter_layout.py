"""x86 alter-layout: depthwise convs take their network's packed layout, never adding transforms.

Decisions are checked for an AVX2 and an AVX-512 target by name; what runs is built for AVX2,
which every x86 host of this project runs.
"""

import json

import numpy as np
import pytest

import tvm
import tvm.testing
from tvm import relay
from tvm.contrib import graph_executor
from tvm.topi.x86.depthwise_conv2d_canonical_common import channel_block
from tvm.topi.testing import depthwise_conv2d_canonical_python as ref
from tvm_canonicalize_depthwise import ENV_VAR

TARGETS = {"avx2": ("llvm -mcpu=znver3", 8), "avx512": ("llvm -mcpu=znver4", 16)}
RUN_TARGET = "llvm -mcpu=haswell"  # runs on every AVX2 host (see host_isa)


def _altered_convs(mod, target):
    """(op name, data layout, kernel layout) of every conv after ``relay.optimize``."""
    with tvm.transform.PassContext(opt_level=3):
        optimized, _ = relay.optimize(mod, target=target)
    convs = []

    def visit(node):
        if isinstance(node, relay.Call) and "conv2d" in getattr(node.op, "name", ""):
            convs.append((node.op.name, node.attrs.data_layout, node.attrs.kernel_layout))

    relay.analysis.post_order_visit(optimized["main"], visit)
    return convs


def _depthwise(channels, multiplier, size=14, kernel=3, stride=1, form="canonical"):
    rng = np.random.default_rng(channels * 31 + multiplier)
    canonical = rng.uniform(-1, 1, (channels * multiplier, 1, kernel, kernel)).astype("float32")
    weight = (
        canonical.reshape(channels, multiplier, kernel, kernel)
        if form == "multiplier"
        else canonical
    )
    x = relay.var("x", shape=(1, channels, size, size))
    y = relay.nn.conv2d(
        x,
        relay.const(weight),
        channels=channels * multiplier,
        groups=channels,
        kernel_size=(kernel, kernel),
        padding=(kernel // 2,) * 2,
        strides=(stride, stride),
    )
    return tvm.IRModule.from_expr(relay.Function([x], relay.nn.relu(y)))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("channels", [16, 24, 32, 12, 7])
@pytest.mark.parametrize("form", ["canonical", "multiplier"])
def test_m1_packs_with_the_block_stock_uses(monkeypatch, target, channels, form):
    target, lanes = TARGETS[target]
    mod = _depthwise(channels, 1, form=form)
    monkeypatch.setenv(ENV_VAR, "0")
    stock = _altered_convs(mod, target)
    monkeypatch.setenv(ENV_VAR, "1")
    block = channel_block(channels, lanes)
    assert block <= lanes and channels % block == 0
    expected = [("nn.contrib_depthwise_conv2d_NCHWc", f"NCHW{block}c", f"OIHW1i{block}o")]
    assert _altered_convs(mod, target) == expected
    assert stock == expected  # the very layout stock TVM packs it into


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("multiplier", [2, 4])
def test_multiplier_above_one_stays_nchw_as_in_stock(monkeypatch, target, multiplier):
    target, _ = TARGETS[target]
    mod = _depthwise(16, multiplier)
    monkeypatch.setenv(ENV_VAR, "0")
    stock_layouts = {layouts[1:] for layouts in _altered_convs(mod, target)}
    monkeypatch.setenv(ENV_VAR, "1")
    assert [c[1:] for c in _altered_convs(mod, target)] == [("NCHW", "OIHW")]
    assert stock_layouts == {("NCHW", "OIHW")}


def test_the_block_divides_and_fills_the_vector():
    for lanes in (4, 8, 16):
        for channels in range(1, 200):
            block = channel_block(channels, lanes)
            assert channels % block == 0 and block <= lanes
            assert not any(channels % b == 0 for b in range(block + 1, lanes + 1))


def _network(multipliers, channels=16, size=14, seed=0):
    """conv -> (depthwise -> conv)* in NCHW, as a frontend hands a MobileNet-like chain."""
    rng = np.random.default_rng(seed)
    x = relay.var("x", shape=(1, 3, size, size))
    y = relay.nn.relu(
        relay.nn.conv2d(
            x,
            relay.const(rng.uniform(-1, 1, (channels, 3, 3, 3)).astype("float32")),
            channels=channels,
            kernel_size=(3, 3),
            padding=(1, 1),
        )
    )
    for i, multiplier in enumerate(multipliers):
        weight = rng.uniform(-1, 1, (channels, multiplier, 3, 3)).astype("float32")
        y = relay.nn.relu(
            relay.nn.conv2d(
                y,
                relay.const(weight),
                channels=channels * multiplier,
                groups=channels,
                kernel_size=(3, 3),
                padding=(1, 1),
                strides=(1 + i % 2, 1 + i % 2),
            )
        )
        y = relay.nn.relu(
            relay.nn.conv2d(
                y,
                relay.const(
                    rng.uniform(-1, 1, (channels, channels * multiplier, 1, 1)).astype("float32")
                ),
                channels=channels,
                kernel_size=(1, 1),
            )
        )
    return tvm.IRModule.from_expr(relay.Function([x], y))


def _layout_transforms(lib):
    nodes = json.loads(lib.get_graph_json())["nodes"]
    return sum(
        "layout_transform" in node["attrs"]["func_name"] for node in nodes if node["op"] == "tvm_op"
    )


def _build(mod, target, switch, monkeypatch):
    monkeypatch.setenv(ENV_VAR, switch)
    with tvm.transform.PassContext(opt_level=3):
        return relay.build(mod, target=target)


NETWORKS = {
    "m1_chain": ([1, 1, 1], 16),
    "m1_chain_24_channels": ([1, 1], 24),
    "mixed_multipliers": ([1, 2, 1, 4], 16),
    "multipliers_only": ([2, 3], 8),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("network", NETWORKS)
def test_packed_networks_have_no_layout_transform_stock_does_not(monkeypatch, target, network):
    multipliers, channels = NETWORKS[network]
    mod = _network(multipliers, channels)
    target, _ = TARGETS[target]
    on = _layout_transforms(_build(mod, target, "1", monkeypatch))
    off = _layout_transforms(_build(mod, target, "0", monkeypatch))
    assert on <= off, (on, off)


@pytest.mark.parametrize("network", ["m1_chain", "mixed_multipliers"])
def test_packed_network_matches_numpy(monkeypatch, network):
    multipliers, channels = NETWORKS[network]
    mod = _network(multipliers, channels)
    data = np.random.default_rng(1).uniform(-1, 1, (1, 3, 14, 14)).astype("float32")
    module = graph_executor.GraphModule(
        _build(mod, RUN_TARGET, "1", monkeypatch)["default"](tvm.cpu())
    )
    module.run(x=data)
    # NumPy: walk the Relay function's convs in order
    expected = data
    convs = []
    relay.analysis.post_order_visit(
        mod["main"],
        lambda n: (
            convs.append(n) if isinstance(n, relay.Call) and n.op.name == "nn.conv2d" else None
        ),
    )
    for conv in convs:
        weight = conv.args[1].data.numpy()
        groups = int(conv.attrs.groups)
        strides = tuple(int(s) for s in conv.attrs.strides)
        padding = tuple(int(p) for p in conv.attrs.padding)
        if groups > 1:
            canonical = ref.multiplier_to_canonical(weight)
            expected = ref.depthwise_conv2d_nchw(expected, canonical, strides, padding)
        else:
            expected = _dense_conv(expected, weight, padding)
        expected = np.maximum(expected, 0)
    tvm.testing.assert_allclose(module.get_output(0).numpy(), expected, rtol=1e-4, atol=1e-4)


def _dense_conv(data, weight, padding):
    top, left, bottom, right = padding
    padded = np.pad(data.astype("float64"), ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_c, _, kh, kw = weight.shape
    out_h, out_w = padded.shape[2] - kh + 1, padded.shape[3] - kw + 1
    out = np.zeros((data.shape[0], out_c, out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum(
                "nchw,oc->nohw", padded[:, :, i : i + out_h, j : j + out_w], weight[:, :, i, j]
            )
    return out


if __name__ == "__main__":
    tvm.testing.main()
