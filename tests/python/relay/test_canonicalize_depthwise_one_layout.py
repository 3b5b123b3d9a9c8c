"""The ops around convolutions: PReLU imported flattened becomes per-channel, and PReLU, bias,
pad and resize follow the convolutions' layout down to packed NCHWc; builds LLVM rejected now
compile.

Numerics against NumPy; layouts are counted in what ``relay.optimize`` makes for an AVX2 target
with two cores (runs on every host of the project; nothing reads the host).
"""

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import tvm
import tvm.testing
import tvm.topi.testing
from tvm import autotvm, relay, te, tir
from tvm.contrib import graph_executor
from tvm.relay.transform import canonicalize_prelu
from tvm_canonicalize_depthwise import ENV_VAR, llvm_compat

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
from host_isa import (  # noqa: E402  pylint: disable=wrong-import-position
    PORTABLE_TARGETS,
    runs_on_host,
)
from tuning_lookups import RecordingHistory  # noqa: E402  pylint: disable=wrong-import-position

TARGET = PORTABLE_TARGETS["avx2"]
BENCH_NETWORKS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench", "networks")
# CI's share; the campaign (docs/fuzzing.md) sets it higher.
RANDOM_EXAMPLES = int(os.environ.get("PRELU_FUZZ_EXAMPLES", "24"))


def _prelu_numpy(x, alpha):
    return np.where(x > 0, x, x * alpha)


def _flattened_prelu(x, alpha, shape, onnx_style=False):
    """PReLU as the TFLite (broadcast_to, static reshape) or the ONNX frontend
    (broadcast_to_like, reshape to shape_of) imports it."""
    if onnx_style:
        flat_alpha = relay.reshape(relay.broadcast_to_like(alpha, x), [-1])
        out = relay.nn.prelu(relay.reshape(x, [-1]), flat_alpha, axis=0)
        return relay.reshape(out, relay.shape_of(x))
    flat_alpha = relay.reshape(relay.broadcast_to(alpha, shape), [-1])
    return relay.reshape(relay.nn.prelu(relay.reshape(x, [-1]), flat_alpha, axis=0), shape)


def _ops(mod, name):
    found = []

    def visit(node):
        if isinstance(node, relay.Call) and isinstance(node.op, tvm.ir.Op) and node.op.name == name:
            found.append(node)

    relay.analysis.post_order_visit(mod["main"], visit)
    return found


def _run(mod, params, inputs, target=TARGET, opt_level=3):
    with tvm.transform.PassContext(opt_level=opt_level):
        lib = relay.build(mod, target=target, params=params)
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.set_input(**inputs)
    module.run()
    return module.get_output(0).numpy()


SHAPE = (1, 6, 5, 8)  # NHWC
ALPHAS = {
    # name: (alpha's shape, made per-channel by value?, rewritten?, axis)
    "per_channel": ((1, 1, 8), False, True, 3),
    "scalar": ((1,), False, True, 3),
    "per_row": ((6, 1, 1), False, True, 1),
    "per_element": ((6, 5, 8), False, False, None),
    "per_channel_by_value": ((1, 6, 5, 8), True, True, 3),
}


@pytest.mark.parametrize("onnx_style", [False, True], ids=["tflite", "onnx"])
@pytest.mark.parametrize("kind", ALPHAS)
def test_flattened_prelu_becomes_per_channel_where_its_alpha_allows(kind, onnx_style):
    alpha_shape, by_value, rewritten, axis = ALPHAS[kind]
    rng = np.random.default_rng(1)
    alpha_np = rng.uniform(0.05, 0.5, alpha_shape).astype("float32")
    if by_value:  # a full-size constant that repeats one value per channel
        alpha_np = np.broadcast_to(rng.uniform(0.05, 0.5, SHAPE[-1]), SHAPE).astype("float32")
    x = relay.var("x", shape=SHAPE)
    out = _flattened_prelu(x, relay.const(alpha_np), SHAPE, onnx_style)
    mod = tvm.IRModule.from_expr(relay.Function([x], out))
    with tvm.transform.PassContext(opt_level=3):
        new = canonicalize_prelu.CanonicalizePReLU()(mod)
    prelus = _ops(new, "nn.prelu")
    assert len(prelus) == 1
    if rewritten:
        assert int(prelus[0].attrs.axis) == axis
        assert len(prelus[0].args[0].checked_type.shape) == 4
        assert not _ops(new, "reshape") or all(
            len(r.checked_type.shape) == 1 for r in _ops(new, "reshape")
        )
    else:
        infer = relay.transform.InferType()
        assert tvm.ir.structural_equal(infer(new), infer(mod))
        new = relay.transform.DynamicToStatic()(new)  # as the ONNX frontend's own passes do
    data = rng.uniform(-1, 1, SHAPE).astype("float32")
    expected = _prelu_numpy(data, np.broadcast_to(alpha_np, SHAPE))
    got = _run(new, {}, {"x": data})
    np.testing.assert_array_equal(got, expected)


def test_the_pass_follows_the_pass_context_and_the_switch(monkeypatch):
    x = relay.var("x", shape=SHAPE)
    out = _flattened_prelu(x, relay.const(np.full((1, 1, 8), 0.2, "float32")), SHAPE)
    mod = relay.transform.InferType()(tvm.IRModule.from_expr(relay.Function([x], out)))

    def flattened_after_build_passes(**ctx):
        with tvm.transform.PassContext(**ctx):
            opt, _ = relay.optimize(mod, target=TARGET)
        # the flattened form keeps its 1-D prelu (or its legalized arithmetic on 1-D tensors)
        calls = _ops(opt, "maximum") + _ops(opt, "nn.prelu")
        return any(len(c.checked_type.shape) == 1 for c in calls)

    assert not flattened_after_build_passes(opt_level=3)
    assert flattened_after_build_passes(opt_level=3, disabled_pass=["CanonicalizePReLU"])
    assert flattened_after_build_passes(opt_level=2)
    assert not flattened_after_build_passes(opt_level=2, required_pass=["CanonicalizePReLU"])
    monkeypatch.setenv(ENV_VAR, "0")
    assert flattened_after_build_passes(opt_level=3)


def test_tflite_import_emits_per_channel_prelu_and_the_nchw_path_has_no_inner_transforms(
    monkeypatch,
):
    """A Keras face-mesh-style network (PReLU after every conv) from bench/networks, checked
    against the output Keras gave for the saved input."""
    import tflite  # pylint: disable=import-outside-toplevel  # an optional frontend package

    path = os.path.join(BENCH_NETWORKS, "face_landmark.tflite")
    with open(path, "rb") as f:
        model = tflite.Model.GetRootAsModel(f.read(), 0)
    graph = model.Subgraphs(0)
    name = graph.Tensors(graph.Inputs(0)).Name().decode()
    shape = tuple(int(d) for d in graph.Tensors(graph.Inputs(0)).ShapeAsNumpy())

    def imported_nchw():
        mod, params = relay.frontend.from_tflite(model, {name: shape}, {name: "float32"})
        seq = tvm.transform.Sequential(
            [
                relay.transform.InferType(),
                relay.transform.ConvertLayout({"nn.conv2d": ["NCHW", "default"]}),
            ]
        )
        with tvm.transform.PassContext(opt_level=3):
            return mod, seq(mod), params

    def transforms(mod, params):
        with tvm.transform.PassContext(opt_level=3):
            opt, _ = relay.optimize(mod, target=TARGET, params=params)
        return len(_ops(opt, "layout_transform"))

    mod, nchw, params = imported_nchw()
    prelus = _ops(relay.transform.InferType()(mod), "nn.prelu")
    assert prelus and all(int(p.attrs.axis) == 3 and len(p.checked_type.shape) == 4 for p in prelus)
    project = transforms(nchw, params)
    # the input (NHWC -> NCHW -> NCHW{b}c) and the output head; nothing between the convs
    assert project <= 4, project
    saved = np.load(os.path.join(BENCH_NETWORKS, "face_landmark.npz"))
    x = saved["input_nhwc"]
    got = _run(nchw, params, {name: x})

    # stock imports the flattened PReLU (its transform count is the benchmark's, too slow here)
    monkeypatch.setenv(ENV_VAR, "0")
    stock_mod, _, _ = imported_nchw()
    assert all(
        len(p.checked_type.shape) == 1
        for p in _ops(relay.transform.InferType()(stock_mod), "nn.prelu")
    )
    expected = saved["keras_output"]
    tvm.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)


def _block(x, c_in, c_out, rng):
    """conv 1x1 (NHWC) -> bias_add -> per-channel prelu -> depthwise 3x3 -> pad channels ->
    residual add: the blocks of face and palm networks."""
    w1 = relay.const(rng.uniform(-1, 1, (1, 1, c_in, c_in)).astype("float32"))
    y = relay.nn.conv2d(
        x, w1, kernel_size=1, channels=c_in, data_layout="NHWC", kernel_layout="HWIO"
    )
    y = relay.nn.bias_add(y, relay.const(rng.uniform(-1, 1, c_in).astype("float32")), axis=3)
    y = relay.nn.prelu(y, relay.const(rng.uniform(0.05, 0.5, c_in).astype("float32")), axis=3)
    wd = relay.const(rng.uniform(-1, 1, (3, 3, c_in, 1)).astype("float32"))
    y = relay.nn.conv2d(
        y,
        wd,
        kernel_size=3,
        padding=1,
        groups=c_in,
        channels=c_in,
        data_layout="NHWC",
        kernel_layout="HWOI",
    )
    skip = relay.nn.pad(x, [[0, 0], [0, 0], [0, 0], [0, c_out - c_in]])
    w2 = relay.const(rng.uniform(-1, 1, (1, 1, c_in, c_out)).astype("float32"))
    y = relay.nn.conv2d(
        y, w2, kernel_size=1, channels=c_out, data_layout="NHWC", kernel_layout="HWIO"
    )
    return relay.add(y, skip)


def test_bias_prelu_pad_and_residual_follow_packed_convs(monkeypatch):
    rng = np.random.default_rng(2)
    x = relay.var("x", shape=(1, 12, 12, 3))
    stem = relay.const(rng.uniform(-1, 1, (3, 3, 3, 16)).astype("float32"))
    y = relay.nn.conv2d(
        x, stem, kernel_size=3, padding=1, channels=16, data_layout="NHWC", kernel_layout="HWIO"
    )
    out = _block(_block(y, 16, 32, rng), 32, 48, rng)
    mod = relay.transform.InferType()(tvm.IRModule.from_expr(relay.Function([x], out)))
    # ConvertLayout on its own (outside Sequential): bias_add stays bias_add until the build
    with tvm.transform.PassContext(opt_level=3):
        nchw = relay.transform.ConvertLayout({"nn.conv2d": ["NCHW", "default"]})(mod)

    def transforms():
        with tvm.transform.PassContext(opt_level=3):
            opt, _ = relay.optimize(nchw, target=TARGET)
        return [
            (str(t.attrs.src_layout), str(t.attrs.dst_layout))
            for t in _ops(opt, "layout_transform")
        ]

    project = transforms()
    # the graph's input to the packed layout (NHWC -> NCHW -> NCHW{b}c) and its output back
    assert len(project) <= 4, project
    data = rng.uniform(-1, 1, (1, 12, 12, 3)).astype("float32")
    got = _run(nchw, {}, {"x": data})
    reference = _run(mod, {}, {"x": data}, opt_level=0)  # every op as written, no layout pass
    tvm.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5)
    monkeypatch.setenv(ENV_VAR, "0")
    assert len(transforms()) > len(project) + 4


def _nhwc_network(rng):
    x = relay.var("x", shape=(1, 12, 12, 3))
    stem = relay.const(rng.uniform(-1, 1, (3, 3, 3, 16)).astype("float32"))
    y = relay.nn.conv2d(
        x, stem, kernel_size=3, padding=1, channels=16, data_layout="NHWC", kernel_layout="HWIO"
    )
    out = _block(_block(y, 16, 32, rng), 32, 48, rng)
    return relay.transform.InferType()(tvm.IRModule.from_expr(relay.Function([x], out)))


def test_the_nhwc_path_runs_packed_with_transforms_at_its_edges(monkeypatch):
    rng = np.random.default_rng(3)
    mod = _nhwc_network(rng)
    project = _optimized(mod)
    assert len(_ops(project, "layout_transform")) <= 2  # NHWC -> NCHW{b}c in, and back out
    assert not [c for c in _ops(project, "nn.conv2d") if c.attrs.data_layout == "NHWC"]
    assert len(_ops(project, "nn.contrib_conv2d_NCHWc")) == 5
    assert len(_ops(project, "nn.contrib_depthwise_conv2d_NCHWc")) == 2
    data = rng.uniform(-1, 1, (1, 12, 12, 3)).astype("float32")
    got = _run(mod, {}, {"x": data})
    reference = _run(mod, {}, {"x": data}, opt_level=0)
    tvm.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5)
    monkeypatch.setenv(ENV_VAR, "0")
    stock = _optimized(mod)
    assert len([c for c in _ops(stock, "nn.conv2d") if c.attrs.data_layout == "NHWC"]) == 7


def test_an_nhwc_depthwise_conv_tuned_as_written_keeps_its_record(tmp_path):
    """AutoTVM tunes an NHWC network as written (its extraction runs without AlterOpLayout;
    x86 has no AutoTVM template for an NHWC conv2d, the project's depthwise one is): a
    depthwise conv with a tuned record stays NHWC and the build uses the record; the rest
    packs."""
    rng = np.random.default_rng(4)
    mod = _nhwc_network(rng)
    tasks = autotvm.task.extract_from_program(mod["main"], {}, target=TARGET)
    assert [t.name for t in tasks] == ["depthwise_conv2d_canonical.x86"] * 2
    task = tasks[0]
    assert "NHWC" in task.args
    log = tmp_path / "tuned.log"
    config = task.config_space.get(len(task.config_space) // 2)
    record = autotvm.record.encode(
        autotvm.MeasureInput(task.target, task, config), autotvm.MeasureResult((1e-4,), 0, 0.1, 0.0)
    )
    log.write_text(record + "\n")
    with RecordingHistory(str(log)) as history:
        with tvm.transform.PassContext(opt_level=3):
            opt, _ = relay.optimize(mod, target=TARGET)
            lib = relay.build(mod, target=TARGET)
    assert (task.name, True) in history.lookups
    kept = [c for c in _ops(opt, "nn.conv2d") if c.attrs.data_layout == "NHWC"]
    assert len(kept) == 1 and int(kept[0].attrs.groups) == task.args[0][1][3]
    assert len(_ops(opt, "nn.contrib_depthwise_conv2d_NCHWc")) == 1
    data = rng.uniform(-1, 1, (1, 12, 12, 3)).astype("float32")
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.set_input(x=data)
    module.run()
    reference = _run(mod, {}, {"x": data}, opt_level=0)
    tvm.testing.assert_allclose(module.get_output(0).numpy(), reference, rtol=1e-5, atol=1e-5)


def test_prelu_as_arithmetic_gives_the_selects_values(monkeypatch):
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40, -1e-40, 3.5, -3.5], "float32")
    data = np.resize(special, (1, 3, 4, 8)).astype("float32")
    alpha = np.array([0.25, -0.5, 0.0, 1.0, 2.0, -0.0, 0.1, 7.0], "float32")
    x = relay.var("x", shape=data.shape)
    mod = tvm.IRModule.from_expr(relay.Function([x], relay.nn.prelu(x, relay.const(alpha), 3)))
    got = _run(mod, {}, {"x": data})
    monkeypatch.setenv(ENV_VAR, "0")
    stock = _run(mod, {}, {"x": data})
    # NaN stays NaN, infinities and every finite value are the select's (a zero's sign may not
    # be: maximum(0, x) + alpha * x is +0 where alpha * x is -0)
    np.testing.assert_array_equal(got, stock)


def _on_path(mod, nchw):
    """``mod`` as imported (NHWC), or taken to NCHW by ``ConvertLayout`` as tvmc does."""
    if not nchw:
        return mod
    with tvm.transform.PassContext(opt_level=3):
        return relay.transform.ConvertLayout({"nn.conv2d": ["NCHW", "default"]})(mod)


def _optimized(mod):
    """What ``relay.build`` compiles of ``mod`` for :data:`TARGET` (layouts altered, fused)."""
    with tvm.transform.PassContext(opt_level=3):
        return relay.optimize(mod, target=TARGET)[0]


def _upsampling_block(rng, method, mode):
    """A feature pyramid's merge (pose and palm networks): a stride-2 conv's output resized
    back up and added to the conv before it, then a 1x1 conv; NHWC as TFLite imports it. The
    weights, and the NumPy of the same."""
    x = relay.var("x", shape=(1, 8, 8, 16))
    w = [rng.uniform(-1, 1, (k, k, 16, 16)).astype("float32") for k in (3, 3, 1)]
    a = relay.nn.conv2d(
        x,
        relay.const(w[0]),
        kernel_size=3,
        padding=1,
        channels=16,
        data_layout="NHWC",
        kernel_layout="HWIO",
    )
    b = relay.nn.conv2d(
        a,
        relay.const(w[1]),
        kernel_size=3,
        strides=2,
        padding=1,
        channels=16,
        data_layout="NHWC",
        kernel_layout="HWIO",
    )
    up = relay.image.resize2d(
        b, (8, 8), layout="NHWC", method=method, coordinate_transformation_mode=mode
    )
    out = relay.nn.conv2d(
        relay.add(a, up),
        relay.const(w[2]),
        kernel_size=1,
        channels=16,
        data_layout="NHWC",
        kernel_layout="HWIO",
    )
    mod = relay.transform.InferType()(tvm.IRModule.from_expr(relay.Function([x], out)))

    def numpy_block(data):
        conv = tvm.topi.testing.conv2d_nhwc_python
        a_np = conv(data, w[0], 1, 1)
        b_np = conv(a_np, w[1], 2, 1)
        up_np = tvm.topi.testing.resize2d_python(b_np, (2, 2), "NHWC", method, mode)
        return conv(a_np + up_np, w[2], 1, 0)

    return mod, numpy_block


@pytest.mark.parametrize(
    "method,mode",
    [("linear", "half_pixel"), ("linear", "align_corners"), ("nearest_neighbor", "asymmetric")],
)
@pytest.mark.parametrize("nchw", [False, True], ids=["nhwc", "nchw"])
def test_a_resize_follows_packed_convs(method, mode, nchw, monkeypatch):
    rng = np.random.default_rng(5)
    mod, numpy_block = _upsampling_block(rng, method, mode)
    mod = _on_path(mod, nchw)
    project = _optimized(mod)
    resized = _ops(project, "image.resize2d")
    assert [str(r.attrs.layout) for r in resized] == ["NCHW8c"]  # AVX2's 8 lanes
    # the graph's input to NCHW8c (through NCHW on the NHWC path) and its output back
    assert len(_ops(project, "layout_transform")) <= 4
    data = rng.uniform(-1, 1, (1, 8, 8, 16)).astype("float32")
    got = _run(mod, {}, {"x": data})
    tvm.testing.assert_allclose(got, numpy_block(data), rtol=1e-4, atol=1e-4)
    monkeypatch.setenv(ENV_VAR, "0")
    stock = _optimized(mod)
    assert [str(r.attrs.layout) for r in _ops(stock, "image.resize2d")] != ["NCHW8c"]


def _widening_block(rng):
    """A stem conv, then a BlazeFace block (face and palm detection): 1x1 conv, depthwise 3x3,
    1x1 conv that widens 24 -> 28 channels, residual add of the block's input padded by 4
    channels, ReLU; then a depthwise 3x3 and a 1x1 conv to 12. NHWC as TFLite imports it; and
    its NumPy."""
    data_var = relay.var("x", shape=(1, 10, 10, 3))
    w = {
        name: rng.uniform(-1, 1, shape).astype("float32")
        for name, shape in (
            ("stem", (3, 3, 3, 24)),
            ("expand", (1, 1, 24, 24)),
            ("dw1", (3, 3, 24, 1)),
            ("widen", (1, 1, 24, 28)),
            ("dw2", (3, 3, 28, 1)),
            ("project", (1, 1, 28, 12)),
        )
    }

    def conv(y, name, channels, groups=1):
        kernel = w[name].shape[0]
        return relay.nn.conv2d(
            y,
            relay.const(w[name]),
            kernel_size=kernel,
            channels=channels,
            padding=kernel // 2,
            groups=groups,
            data_layout="NHWC",
            kernel_layout="HWOI" if groups > 1 else "HWIO",
        )

    x = conv(data_var, "stem", 24)
    y = conv(conv(conv(x, "expand", 24), "dw1", 24, 24), "widen", 28)
    y = relay.nn.relu(relay.add(relay.nn.pad(x, [[0, 0], [0, 0], [0, 0], [0, 4]]), y))
    out = conv(conv(y, "dw2", 28, 28), "project", 12)
    mod = relay.transform.InferType()(tvm.IRModule.from_expr(relay.Function([data_var], out)))

    def numpy_block(data):
        dense = tvm.topi.testing.conv2d_nhwc_python
        depthwise = tvm.topi.testing.depthwise_conv2d_python_nhwc
        x_np = dense(data, w["stem"], 1, 1)
        y_np = depthwise(dense(x_np, w["expand"], 1, 0), w["dw1"], 1, "SAME")
        y_np = dense(y_np, w["widen"], 1, 0)
        y_np = np.maximum(np.pad(x_np, [(0, 0)] * 3 + [(0, 4)]) + y_np, 0)
        return dense(depthwise(y_np, w["dw2"], 1, "SAME"), w["project"], 1, 0)

    return mod, numpy_block


@pytest.mark.parametrize("nchw", [False, True], ids=["nhwc", "nchw"])
def test_a_widening_residual_and_the_conv_after_a_depthwise_one_stay_packed(nchw, monkeypatch):
    """AVX2 packs 24 channels in blocks of 8 and 28 in blocks of 7; the channel pad (4) is not
    whole blocks, so it is computed unpacked, packed again where it is made, and the residual
    sum stays packed. Stock's untuned 1x1 conv to 12 channels would read 28 in blocks of 4."""
    rng = np.random.default_rng(6)
    mod, numpy_block = _widening_block(rng)
    mod = _on_path(mod, nchw)
    project = _optimized(mod)
    sums = _ops(project, "add")
    assert sums and all(len(s.checked_type.shape) == 5 for s in sums)  # every add packed
    assert [len(r.checked_type.shape) for r in _ops(project, "nn.relu")] == [5]
    convs = _ops(project, "nn.contrib_conv2d_NCHWc")
    assert sorted(str(c.attrs.data_layout) for c in convs)[-1] == "NCHW8c"
    assert "NCHW7c" in [str(c.attrs.data_layout) for c in convs]  # the 1x1 conv to 12
    # transforms: the graph's input and output, and the pad's unpack and pack
    project_transforms = _ops(project, "layout_transform")
    assert len(project_transforms) <= (6 if nchw else 4), project_transforms
    data = rng.uniform(-1, 1, (1, 10, 10, 3)).astype("float32")
    got = _run(mod, {}, {"x": data})
    tvm.testing.assert_allclose(got, numpy_block(data), rtol=1e-4, atol=1e-4)
    monkeypatch.setenv(ENV_VAR, "0")
    if nchw:  # stock: the sum unpacked, packed again for the depthwise conv, and more
        assert len(_ops(_optimized(mod), "layout_transform")) > len(project_transforms)


@pytest.mark.parametrize("shard", range(2))
def test_random_neighbourhoods_match_numpy_on_both_paths(shard):
    """Random PReLU alphas (per-channel, per-element, scalar) and bias axes after a conv, on
    the NHWC path as imported and after ConvertLayout to NCHW, against NumPy."""

    @seed(shard)
    @settings(
        max_examples=max(1, RANDOM_EXAMPLES // 2),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        channels=st.sampled_from([3, 8, 12, 16, 24]),
        size=st.integers(3, 9),
        alpha=st.sampled_from(["per_channel", "per_element", "scalar", "per_row"]),
        onnx_style=st.booleans(),
        bias_axis=st.sampled_from([1, 2, 3, -1]),
        nchw=st.booleans(),
        values=st.integers(0, 2**31 - 1),
    )
    def example(channels, size, alpha, onnx_style, bias_axis, nchw, values):
        rng = np.random.default_rng(values)
        shape = (1, size, size + 1, channels)
        alpha_shape = {
            "per_channel": (channels,),
            "per_element": shape[1:],
            "scalar": (1,),
            "per_row": (size, 1, 1),
        }[alpha]
        x = relay.var("x", shape=shape)
        w = rng.uniform(-1, 1, (3, 3, channels, channels)).astype("float32")
        y = relay.nn.conv2d(
            x,
            relay.const(w),
            kernel_size=3,
            padding=1,
            channels=channels,
            data_layout="NHWC",
            kernel_layout="HWIO",
        )
        bias = rng.uniform(-1, 1, shape[bias_axis]).astype("float32")
        y = relay.nn.bias_add(y, relay.const(bias), axis=bias_axis)
        alpha_np = rng.uniform(-0.5, 0.5, alpha_shape).astype("float32")
        y = _flattened_prelu(y, relay.const(alpha_np), shape, onnx_style)
        mod = relay.transform.InferType()(tvm.IRModule.from_expr(relay.Function([x], y)))
        if nchw:
            with tvm.transform.PassContext(opt_level=3):
                mod = tvm.transform.Sequential(
                    [
                        canonicalize_prelu.CanonicalizePReLU(),
                        relay.transform.ConvertLayout({"nn.conv2d": ["NCHW", "default"]}),
                    ]
                )(mod)
        if onnx_style:  # as the ONNX frontend's own passes leave it
            mod = relay.transform.DynamicToStatic()(mod)
        data = rng.uniform(-1, 1, shape).astype("float32")
        conv = tvm.topi.testing.conv2d_nhwc_python(data, w, 1, 1)
        biased = conv + np.expand_dims(bias, [a for a in range(4) if a != bias_axis % 4])
        expected = _prelu_numpy(biased, np.broadcast_to(alpha_np, shape))
        got = _run(mod, {}, {"x": data})
        tvm.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)

    example()  # pylint: disable=no-value-for-parameter  # @given supplies the arguments


def _float_let_func():
    """A PrimFunc that binds a float value to a ``let`` (as TIR's CSE does), which TVM 0.19's
    LLVM code generator gives a ``#dbg_declare`` that LLVM 21 and newer reject."""
    a = te.placeholder((16,), name="a")
    b = te.placeholder((16,), name="b")
    func = te.create_prim_func([a, b])
    a_buf, b_buf = func.params
    buffers = func.buffer_map
    a_buffer, b_buffer = buffers[a_buf], buffers[b_buf]
    i = tir.Var("i", "int32")
    v = tir.Var("v", "float32")
    body = tir.For(
        i,
        0,
        16,
        tir.ForKind.SERIAL,
        tir.LetStmt(v, a_buffer[i] * a_buffer[i], tir.BufferStore(b_buffer, v + v * 2.0, [i])),
    )
    return tir.PrimFunc([a_buf, b_buf], body, buffer_map=buffers).with_attr(
        "global_symbol", "float_let"
    )


def test_a_float_let_builds_and_computes(monkeypatch):
    func = _float_let_func()
    lib = tvm.build(func, target="llvm")
    a = np.arange(16, dtype="float32") - 4
    b = tvm.nd.empty((16,), "float32")
    lib(tvm.nd.array(a), b)
    np.testing.assert_array_equal(b.numpy(), a * a + a * a * 2)
    if llvm_compat.llvm_major() >= 21:  # what the build would be without the patch
        monkeypatch.setenv(ENV_VAR, "0")
        with pytest.raises(tvm.TVMError, match="dbg_declare"):
            tvm.build(func, target="llvm")


# A configuration AutoTVM measured as valid (the conv alone builds with it) for the 1x1 conv of
# the block below; in the network its fused NCHW8c -> NHWC epilogue gets a `<16 x i32>` CSE let.
TUNED_1X1 = {"tile_ic": [-1, 8], "tile_oc": [-1, 8], "tile_ow": [-1, 8], "tile_oh": 2}


def _nhwc_block_as_nchw(rng, monkeypatch, channels=48, size=16):
    """A TFLite-style NHWC 1x1 conv, bias, PReLU and residual add, taken to NCHW by
    ``ConvertLayout`` with the patch off (bias and PReLU stay NHWC: the conv's output goes
    through a transform that fuses into it), and the NumPy function it computes."""
    x = relay.var("x", shape=(1, size, size, channels))
    weight = rng.uniform(-1, 1, (1, 1, channels, channels)).astype("float32")
    bias = rng.uniform(-1, 1, channels).astype("float32")
    alpha = rng.uniform(0, 0.5, channels).astype("float32")
    y = relay.nn.conv2d(
        x,
        relay.const(weight),
        channels=channels,
        kernel_size=(1, 1),
        data_layout="NHWC",
        kernel_layout="HWIO",
    )
    y = relay.nn.prelu(relay.nn.bias_add(y, relay.const(bias), axis=3), relay.const(alpha), 3)
    mod = tvm.IRModule.from_expr(relay.Function([x], relay.add(y, x)))
    convert = tvm.transform.Sequential(
        [
            relay.transform.InferType(),
            relay.transform.ConvertLayout({"nn.conv2d": ["NCHW", "default"]}),
            relay.transform.FoldConstant(),
        ]
    )
    with monkeypatch.context() as patch_off:
        patch_off.setenv(ENV_VAR, "0")
        with tvm.transform.PassContext(opt_level=3):
            mod = convert(mod)

    def numpy_block(data):
        return _prelu_numpy(np.einsum("nhwc,ck->nhwk", data, weight[0, 0]) + bias, alpha) + data

    return mod, numpy_block


@pytest.mark.parametrize("vectors", ["avx512", "avx2"])
def test_a_tuned_config_that_llvm_rejected_in_the_network_builds_and_computes(
    vectors, tmp_path, monkeypatch
):
    """Issue 24: a record AutoTVM measured as valid broke the network's build at LLVM
    verification (``#dbg_declare`` on a vector CSE variable); stock built it untuned on AVX-512
    and could not build the block at all on AVX2. With the patch the record is used, the build
    succeeds and computes the block."""
    target = PORTABLE_TARGETS[vectors]
    rng = np.random.default_rng(24)
    mod, numpy_block = _nhwc_block_as_nchw(rng, monkeypatch)
    tasks = autotvm.task.extract_from_program(mod["main"], {}, target=target)
    assert [t.name for t in tasks] == ["conv2d_NCHWc.x86"]
    task = tasks[0]
    index = next(
        i
        for i in range(len(task.config_space))
        if all(_knob_value(task.config_space.get(i)[n]) == v for n, v in TUNED_1X1.items())
    )
    log = tmp_path / "tuned.log"
    log.write_text(
        autotvm.record.encode(
            autotvm.MeasureInput(task.target, task, task.config_space.get(index)),
            autotvm.MeasureResult((1e-4,), 0, 0.1, 0.0),
        )
        + "\n"
    )

    def build():
        with RecordingHistory(str(log)) as history:
            with tvm.transform.PassContext(opt_level=3):
                lib = relay.build(mod, target=target)
        assert (task.name, True) in history.lookups
        return lib

    lib = build()
    data = rng.uniform(-1, 1, (1, 16, 16, 48)).astype("float32")
    if runs_on_host(target):
        module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
        module.set_input(x=data)
        module.run()
        tvm.testing.assert_allclose(
            module.get_output(0).numpy(), numpy_block(data), rtol=1e-4, atol=1e-4
        )
    if llvm_compat.llvm_major() >= 21:  # what the build would be without the patch
        monkeypatch.setenv(ENV_VAR, "0")
        with pytest.raises(tvm.TVMError, match="dbg_declare"):
            build()
        if vectors == "avx512":  # the record is what breaks it there
            with tvm.transform.PassContext(opt_level=3):
                relay.build(mod, target=target)


def _knob_value(entity):
    return [int(n) for n in entity.size] if hasattr(entity, "size") else entity.val


if __name__ == "__main__":
    tvm.testing.main()
