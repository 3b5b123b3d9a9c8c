"""Tests for the CanonicalizeDepthwise pass: structure, numerics and pass properties."""

import logging
import os

import numpy as np
import pytest

import tvm
import tvm.testing
from tvm import relax, relay
from tvm.contrib import graph_executor
from tvm.relax.testing import relay_translator
from tvm.relay.transform import CanonicalizeDepthwise
from tvm.relay.transform.canonicalize_depthwise import Rewrite, recording_rewrites
from tvm.topi.nn.depthwise_form import CANONICAL, MULTIPLIER, OTHER, conv2d_form, conv_form
from tvm.topi.testing import depthwise_conv2d_canonical_python as ref
from tvm_canonicalize_depthwise import ENV_VAR, enabled, switched

TARGET = tvm.target.Target(f"llvm -mcpu={tvm.target.codegen.llvm_get_system_cpu()}")
LAYOUTS = [
    ("NCHW", "OIHW"),
    ("NCHW", "OHWI"),
    ("NCHW", "HWIO"),
    ("NHWC", "HWOI"),
    ("NHWC", "HWIO"),
    ("NHWC", "OHWI"),
    ("NHWC", "OIHW"),
]
# nn.conv3d: the same cases, with D in front of H and W
LAYOUTS_3D = [
    ("NCDHW", "OIDHW"),
    ("NCDHW", "ODHWI"),
    ("NCDHW", "DHWIO"),
    ("NDHWC", "DHWOI"),
    ("NDHWC", "DHWIO"),
    ("NDHWC", "ODHWI"),
    ("NDHWC", "OIDHW"),
    ("NDHWC", "IODHW"),
]


def _is_3d(layout):
    return len(layout) == 5


def oi_layout(kernel_layout):
    """OIHW or OIDHW: the layout the tests state weights in."""
    return "OIDHW" if _is_3d(kernel_layout) else "OIHW"


def oi_shape(kernel_layout, out_channels, in_channels, size=3):
    """The shape of an OIHW (OIDHW) weight of ``size`` taps a side."""
    return (out_channels, in_channels) + (size,) * (3 if _is_3d(kernel_layout) else 2)


def data_shape(data_layout, channels, height=9, width=10, depth=5):
    """The shape of a batch-1 input in ``data_layout``."""
    if _is_3d(data_layout):
        return ref.to_layout(
            np.empty((1, channels, depth, height, width)), "NCDHW", data_layout
        ).shape
    return ref.to_layout(np.empty((1, channels, height, width)), "NCHW", data_layout).shape


def conv(data, weight, channels, mult, data_layout, kernel_layout, size=3, **kwargs):
    """The depthwise nn.conv2d, or nn.conv3d for 3-D layouts, of ``channels * mult`` outputs."""
    op, dims = (relay.nn.conv3d, 3) if _is_3d(data_layout) else (relay.nn.conv2d, 2)
    return op(
        data,
        weight,
        channels=channels * mult,
        groups=channels,
        kernel_size=(size,) * dims,
        data_layout=data_layout,
        kernel_layout=kernel_layout,
        **kwargs,
    )


def run_pass(mod):
    """``mod`` after CanonicalizeDepthwise."""
    return CanonicalizeDepthwise()(mod)


def infer(expr):
    """A module of ``expr``, types inferred."""
    return relay.transform.InferType()(tvm.IRModule.from_expr(expr))


@pytest.mark.parametrize("data_layout,kernel_layout", LAYOUTS + LAYOUTS_3D)
def test_constant_weight_becomes_canonical_constant(data_layout, kernel_layout):
    channels, mult = 4, 3
    shape = oi_shape(kernel_layout, channels, mult)
    oihw = np.arange(np.prod(shape), dtype="float32").reshape(shape)
    oi = oi_layout(kernel_layout)

    def before():
        x = relay.var("x", shape=data_shape(data_layout, channels))
        w = relay.const(ref.to_layout(oihw, oi, kernel_layout))
        return relay.Function([x], conv(x, w, channels, mult, data_layout, kernel_layout))

    def expected():
        x = relay.var("x", shape=data_shape(data_layout, channels))
        canonical = ref.to_layout(ref.multiplier_to_canonical(oihw), oi, kernel_layout)
        w = relay.const(canonical)
        return relay.Function([x], conv(x, w, channels, mult, data_layout, kernel_layout))

    tvm.ir.assert_structural_equal(run_pass(infer(before())), infer(expected()))


@pytest.mark.parametrize("kernel_layout", ["OIHW", "HWOI", "OIDHW", "DHWOI"])
def test_parameter_weight_adjacent_o_i_is_reshaped(kernel_layout):
    channels, mult = 4, 2
    oi = oi_layout(kernel_layout)
    shape = ref.to_layout(np.empty(oi_shape(oi, channels, mult)), oi, kernel_layout).shape
    canonical_shape = ref.to_layout(np.empty(oi_shape(oi, channels * mult, 1)), oi, kernel_layout)
    data_layout = {"OIHW": "NCHW", "HWOI": "NHWC", "OIDHW": "NCDHW", "DHWOI": "NDHWC"}[
        kernel_layout
    ]

    def before():
        x = relay.var("x", shape=data_shape(data_layout, channels))
        w = relay.var("w", shape=shape)
        return relay.Function([x, w], conv(x, w, channels, mult, data_layout, kernel_layout))

    def expected():
        x = relay.var("x", shape=data_shape(data_layout, channels))
        w = relay.var("w", shape=shape)
        new_w = relay.reshape(w, canonical_shape.shape)
        return relay.Function([x, w], conv(x, new_w, channels, mult, data_layout, kernel_layout))

    tvm.ir.assert_structural_equal(run_pass(infer(before())), infer(expected()))


@pytest.mark.parametrize("kernel_layout", ["HWIO", "OHWI", "IOHW", "DHWIO", "ODHWI", "IODHW"])
def test_parameter_weight_goes_through_oihw_or_oidhw(kernel_layout):
    channels, mult = 4, 2
    oi = oi_layout(kernel_layout)
    shape = ref.to_layout(np.empty(oi_shape(oi, channels, mult)), oi, kernel_layout).shape
    data_layout = "NDHWC" if _is_3d(kernel_layout) else "NHWC"

    def before():
        x = relay.var("x", shape=data_shape(data_layout, channels))
        w = relay.var("w", shape=shape)
        return relay.Function([x, w], conv(x, w, channels, mult, data_layout, kernel_layout))

    def expected():
        x = relay.var("x", shape=data_shape(data_layout, channels))
        w = relay.var("w", shape=shape)
        new_w = relay.layout_transform(w, kernel_layout, oi)
        new_w = relay.reshape(new_w, oi_shape(oi, channels * mult, 1))
        new_w = relay.layout_transform(new_w, oi, kernel_layout)
        return relay.Function([x, w], conv(x, new_w, channels, mult, data_layout, kernel_layout))

    tvm.ir.assert_structural_equal(run_pass(infer(before())), infer(expected()))


def _build_and_run(mod, inputs, params=None, disabled_pass=()):
    with tvm.transform.PassContext(opt_level=3, disabled_pass=list(disabled_pass)):
        lib = relay.build(mod, target=TARGET, params=params)
    module = graph_executor.GraphModule(lib["default"](tvm.cpu(0)))
    module.set_input(**inputs)
    module.run()
    return module.get_output(0).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("padding", [(1, 1, 1, 1), (0, 1, 2, 1)], ids=["pad1", "pad0121"])
@pytest.mark.parametrize("dilation", [(1, 1), (2, 1)], ids=["dil11", "dil21"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2)], ids=["s11", "s22"])
@pytest.mark.parametrize("mult", [2, 3, 16])
@pytest.mark.parametrize("data_layout,kernel_layout", LAYOUTS)
def test_numerics_against_numpy(
    data_layout, kernel_layout, mult, strides, dilation, padding, dtype
):
    channels, size = 3, 3
    rng = np.random.default_rng(mult)
    data = rng.uniform(-1, 1, (1, channels, 9, 10)).astype(dtype)
    oihw = rng.uniform(-1, 1, (channels, mult, size, size)).astype(dtype)
    x = relay.var("x", shape=ref.to_layout(data, "NCHW", data_layout).shape, dtype=dtype)
    w = relay.var("w", shape=ref.to_layout(oihw, "OIHW", kernel_layout).shape, dtype=dtype)
    y = conv(
        x,
        w,
        channels,
        mult,
        data_layout,
        kernel_layout,
        size,
        strides=strides,
        dilation=dilation,
        padding=padding,
    )
    mod = tvm.IRModule.from_expr(relay.Function([x, w], y))
    expected = ref.depthwise_conv2d_nchw(
        data, ref.multiplier_to_canonical(oihw), strides, padding, dilation
    ).astype("float64")
    inputs = {"x": ref.to_layout(data, "NCHW", data_layout)}
    weight = {"w": ref.to_layout(oihw, "OIHW", kernel_layout)}
    # Bound weights fold into canonical constants; unbound ones are reshaped at run time.
    if strides == (1, 1):
        out = _build_and_run(mod, inputs, params=weight)
    else:
        out = _build_and_run(mod, {**inputs, **weight})
    actual = ref.to_layout(out, data_layout, "NCHW").astype("float64")
    tol = 1e-4 if dtype == "float32" else 2e-2
    tvm.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("data_layout,kernel_layout", [("NCHW", "OIHW"), ("NHWC", "HWOI")])
def test_same_numbers_with_pass_disabled(data_layout, kernel_layout):
    channels, mult = 6, 4
    rng = np.random.default_rng(1)
    data = rng.uniform(-1, 1, (1, channels, 10, 10)).astype("float32")
    oihw = rng.uniform(-1, 1, (channels, mult, 3, 3)).astype("float32")
    x = relay.var("x", shape=ref.to_layout(data, "NCHW", data_layout).shape)
    w = relay.const(ref.to_layout(oihw, "OIHW", kernel_layout))
    mod = tvm.IRModule.from_expr(
        relay.Function([x], conv(x, w, channels, mult, data_layout, kernel_layout, padding=(1, 1)))
    )
    inputs = {"x": ref.to_layout(data, "NCHW", data_layout)}
    expected = ref.depthwise_conv2d_nchw(data, ref.multiplier_to_canonical(oihw), padding=(1,) * 4)
    on = _build_and_run(mod, inputs)
    off = _build_and_run(mod, inputs, disabled_pass=["CanonicalizeDepthwise"])
    for out in (on, off):
        tvm.testing.assert_allclose(
            ref.to_layout(out, data_layout, "NCHW"), expected, rtol=1e-4, atol=1e-4
        )


def _multiplier_module():
    x = relay.var("x", shape=(1, 4, 8, 8))
    w = relay.const(np.ones((4, 2, 3, 3), "float32"))
    return infer(relay.Function([x], conv(x, w, 4, 2, "NCHW", "OIHW")))


def test_idempotent():
    once = run_pass(_multiplier_module())
    twice = run_pass(once)
    tvm.ir.assert_structural_equal(once, twice)
    assert not tvm.ir.structural_equal(once, _multiplier_module())


@pytest.mark.parametrize("weight_kind", ["constant", "parameter"])
@pytest.mark.parametrize("data_layout,kernel_layout", [("NCDHW", "OIDHW"), ("NDHWC", "DHWIO")])
def test_conv3d_idempotent(data_layout, kernel_layout, weight_kind):
    channels, mult = 4, 2
    weight = ref.to_layout(
        np.ones(oi_shape("OIDHW", channels, mult), "float32"), "OIDHW", kernel_layout
    )
    canonical = ref.to_layout(
        np.empty(oi_shape("OIDHW", channels * mult, 1)), "OIDHW", kernel_layout
    )
    x = relay.var("x", shape=data_shape(data_layout, channels))
    if weight_kind == "constant":
        params, w = [x], relay.const(weight)
    else:
        w = relay.var("w", shape=weight.shape)
        params = [x, w]
    mod = infer(relay.Function(params, conv(x, w, channels, mult, data_layout, kernel_layout)))
    once = run_pass(mod)
    tvm.ir.assert_structural_equal(run_pass(once), once)
    assert not tvm.ir.structural_equal(once, mod)
    new_weight_type = once["main"].body.args[1].checked_type
    assert tuple(int(e) for e in new_weight_type.shape) == canonical.shape


def test_conv2d_and_conv3d_in_one_function():
    x2, x3 = relay.var("x2", shape=(1, 4, 8, 8)), relay.var("x3", shape=(1, 4, 5, 8, 8))
    w2 = relay.const(np.ones((4, 2, 3, 3), "float32"))
    w3 = relay.const(np.ones((4, 2, 3, 3, 3), "float32"))
    y = relay.Tuple([conv(x2, w2, 4, 2, "NCHW", "OIHW"), conv(x3, w3, 4, 2, "NCDHW", "OIDHW")])
    out = run_pass(infer(relay.Function([x2, x3], y)))
    shapes = [
        tuple(int(e) for e in field.args[1].checked_type.shape) for field in out["main"].body.fields
    ]
    assert shapes == [(8, 1, 3, 3), (8, 1, 3, 3, 3)]


def test_env_var_zero_leaves_an_explicit_pass_on(monkeypatch):
    # The switch belongs to the install glue (the automatic run, dispatch, alter-layout); the
    # pass itself, called by name, is an IR rewrite like any other.
    monkeypatch.setenv("TVM_CANONICALIZE_DEPTHWISE", "0")
    mod = _multiplier_module()
    monkeypatch.delenv("TVM_CANONICALIZE_DEPTHWISE")
    expected = run_pass(mod)
    monkeypatch.setenv("TVM_CANONICALIZE_DEPTHWISE", "0")
    tvm.ir.assert_structural_equal(run_pass(mod), expected)
    assert not tvm.ir.structural_equal(expected, mod)


def test_input_module_not_mutated():
    mod = _multiplier_module()
    copy = _multiplier_module()
    run_pass(mod)
    tvm.ir.assert_structural_equal(mod, copy)


def _untouched_cases():
    x4 = relay.var("x", shape=(1, 4, 8, 8))
    ones = lambda *shape: relay.const(np.ones(shape, "float32"))  # noqa: E731
    yield "m == 1", conv(x4, ones(4, 1, 3, 3), 4, 1, "NCHW", "OIHW")
    yield "canonical m > 1", conv(x4, ones(8, 1, 3, 3), 4, 2, "NCHW", "OIHW")
    yield "ordinary conv", relay.nn.conv2d(x4, ones(6, 4, 3, 3), channels=6, kernel_size=(3, 3))
    yield "grouped conv", relay.nn.conv2d(
        x4, ones(6, 2, 3, 3), channels=6, groups=2, kernel_size=(3, 3)
    )
    xs = relay.var("xs", shape=(1, relay.Any(), 8, 8))
    yield "dynamic channels", relay.nn.conv2d(
        xs, relay.var("ws", shape=(8, 1, 3, 3)), channels=8, groups=4, kernel_size=(3, 3)
    )
    x3 = relay.var("x3", shape=(1, 4, 5, 8, 8))
    yield "3d m == 1", conv(x3, ones(4, 1, 3, 3, 3), 4, 1, "NCDHW", "OIDHW")
    yield "3d canonical m > 1", conv(x3, ones(8, 1, 3, 3, 3), 4, 2, "NCDHW", "OIDHW")
    yield "3d canonical NDHWC", conv(
        relay.var("x3l", shape=(1, 5, 8, 8, 4)), ones(3, 3, 3, 1, 12), 4, 3, "NDHWC", "DHWIO"
    )
    yield "3d ordinary conv", relay.nn.conv3d(
        x3, ones(6, 4, 3, 3, 3), channels=6, kernel_size=(3, 3, 3)
    )
    yield "3d grouped conv", relay.nn.conv3d(
        x3, ones(6, 2, 3, 3, 3), channels=6, groups=2, kernel_size=(3, 3, 3)
    )


@pytest.mark.parametrize("name,expr", list(_untouched_cases()), ids=lambda v: str(v)[:20])
def test_untouched(name, expr):
    del name
    mod = infer(relay.Function(relay.analysis.free_vars(expr), expr))
    tvm.ir.assert_structural_equal(run_pass(mod), mod)


def test_every_function_not_only_main():
    mod = _multiplier_module()
    helper = relay.GlobalVar("helper")
    mod[helper] = mod["main"]
    x = relay.var("x", shape=(1, 4, 8, 8))
    mod["main"] = relay.Function([x], relay.Call(helper, [x]))
    mod = relay.transform.InferType()(mod)
    out = run_pass(mod)
    weight_shapes = []
    relay.analysis.post_order_visit(
        out["helper"],
        lambda n: weight_shapes.append(tuple(n.data.shape)) if isinstance(n, relay.Constant) else 0,
    )
    assert weight_shapes == [(8, 1, 3, 3)]


def test_external_codegen_functions_left_alone(caplog):
    caplog.set_level(logging.DEBUG, logger="tvm.relay.transform.canonicalize_depthwise")
    inner = _multiplier_module()["main"].with_attr("Compiler", "ccompiler")
    inner = inner.with_attr("global_symbol", "ext")
    mod = tvm.IRModule()
    ext = relay.GlobalVar("ext")
    mod[ext] = inner
    x = relay.var("x", shape=(1, 4, 8, 8))
    nested = _multiplier_module()["main"].with_attr("Compiler", "ccompiler")
    mod["main"] = relay.Function([x], relay.add(relay.Call(ext, [x]), relay.Call(nested, [x])))
    mod = relay.transform.InferType()(mod)
    tvm.ir.assert_structural_equal(run_pass(mod), mod)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "function ext skipped: marked Compiler" in messages
    assert "inside a function for an external codegen" in messages


def test_shared_weight_rewritten_once():
    x = relay.var("x", shape=(1, 4, 8, 8))
    w = relay.const(np.ones((4, 2, 3, 3), "float32"))
    y = relay.add(conv(x, w, 4, 2, "NCHW", "OIHW"), conv(relay.nn.relu(x), w, 4, 2, "NCHW", "OIHW"))
    out = run_pass(infer(relay.Function([x], y)))
    constants = set()
    relay.analysis.post_order_visit(
        out["main"], lambda n: constants.add(n) if isinstance(n, relay.Constant) else None
    )
    assert len(constants) == 1


def test_thousands_of_convs_in_a_chain():
    channels, depth = 4, 1000
    x = relay.var("x", shape=(1, channels, 6, 6))
    w_dw = relay.const(np.full((channels, 2, 3, 3), 0.1, "float32"))
    w_pw = relay.const(np.full((channels, channels * 2, 1, 1), 0.1, "float32"))
    y = x
    for _ in range(depth):
        y = conv(y, w_dw, channels, 2, "NCHW", "OIHW", padding=(1, 1))
        y = relay.nn.conv2d(y, w_pw, channels=channels, kernel_size=(1, 1))
    out = run_pass(infer(relay.Function([x], y)))
    kinds = []

    def visit(node):
        if isinstance(node, relay.Call) and node.attrs.groups == channels:
            kinds.append(tuple(node.args[1].checked_type.shape))

    relay.analysis.post_order_visit(out["main"], visit)
    assert len(kinds) == depth
    assert set(kinds) == {(channels * 2, 1, 3, 3)}


def test_rewrites_and_skips_logged_at_debug(caplog):
    caplog.set_level(logging.DEBUG, logger="tvm.relay.transform.canonicalize_depthwise")
    run_pass(_multiplier_module())
    x = relay.var("x", shape=(1, 4, 5, 8, 8))
    run_pass(
        infer(
            relay.Function(
                [x],
                conv(x, relay.const(np.ones((4, 2, 3, 3, 3), "float32")), 4, 2, "NCDHW", "OIDHW"),
            )
        )
    )
    messages = [
        r.getMessage()
        for r in caplog.records
        if r.name == "tvm.relay.transform.canonicalize_depthwise"
    ]
    assert any("[4, 2, 3, 3] -> [8, 1, 3, 3]" in m for m in messages), messages
    assert any(
        m.startswith("nn.conv3d NCDHW/OIDHW: C=4 m=2: weight [4, 2, 3, 3, 3] -> " "[8, 1, 3, 3, 3]")
        for m in messages
    ), messages


def test_rewrites_are_recorded_as_the_pass_makes_them(monkeypatch):
    """The pass's rewrites as records, from a direct call and from inside a build; none where
    the pass does not run."""
    x = relay.var("x", shape=(1, 4, 8, 8))
    y = conv(x, relay.const(np.ones((4, 2, 3, 3), "float32")), 4, 2, "NCHW", "OIHW")
    z = conv(
        relay.var("x3", shape=(1, 5, 6, 7, 4)),
        relay.var("w", shape=(3, 3, 3, 4, 3)),
        4,
        3,
        "NDHWC",
        "DHWOI",
    )
    canonical = conv(x, relay.const(np.ones((8, 1, 3, 3), "float32")), 4, 2, "NCHW", "OIHW")
    mod = infer(
        relay.Function(
            relay.analysis.free_vars(relay.Tuple([y, z, canonical])), relay.Tuple([y, z, canonical])
        )
    )
    with recording_rewrites() as records:
        run_pass(mod)
    assert sorted(records, key=lambda r: r.op) == [
        Rewrite("nn.conv2d", "NCHW", "OIHW", 4, 2, (4, 2, 3, 3), (8, 1, 3, 3), True),
        Rewrite("nn.conv3d", "NDHWC", "DHWOI", 4, 3, (3, 3, 3, 4, 3), (3, 3, 3, 12, 1), False),
    ]
    built = _multiplier_module()
    with recording_rewrites() as records, tvm.transform.PassContext(opt_level=3):
        relay.build(built, target="llvm")
    assert [(r.in_channels, r.multiplier) for r in records] == [(4, 2)]
    monkeypatch.setenv(ENV_VAR, "0")
    with recording_rewrites() as records, tvm.transform.PassContext(opt_level=3):
        relay.build(built, target="llvm")
    assert records == []


def test_switched_decides_over_the_environment_and_leaves_it(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "0")
    with switched(True):
        assert enabled()
        with switched(False):
            assert not enabled()
            with recording_rewrites() as records, tvm.transform.PassContext(opt_level=3):
                relay.build(_multiplier_module(), target="llvm")
            assert records == []
        assert enabled() and os.environ[ENV_VAR] == "0"
        with recording_rewrites() as records, tvm.transform.PassContext(opt_level=3):
            relay.build(_multiplier_module(), target="llvm")
        assert len(records) == 1
    assert not enabled()


@pytest.mark.parametrize(
    "data_shape_,data_layout,kernel_shape,kernel_layout,groups,kind,mult",
    [
        ((1, 4, 5, 6, 7), "NCDHW", (4, 2, 3, 3, 3), "OIDHW", 4, MULTIPLIER, 2),
        ((1, 5, 6, 7, 4), "NDHWC", (3, 3, 3, 4, 3), "DHWOI", 4, MULTIPLIER, 3),
        ((1, 5, 6, 7, 4), "NDHWC", (3, 3, 3, 1, 8), "DHWIO", 4, CANONICAL, 2),
        ((1, 4, 5, 6, 7), "NCDHW", (4, 1, 3, 3, 3), "OIDHW", 4, CANONICAL, 1),
        ((1, 1, 5, 6, 7, 8), "NCDHW8c", (1, 1, 3, 3, 3, 1, 8), "OIDHW1i8o", 8, CANONICAL, 1),
        ((1, 4, 5, 6, 7), "NCDHW", (6, 2, 3, 3, 3), "OIDHW", 2, OTHER, None),
        ((1, 4, 5, 6, 7), "NCDHW", (4, 2, 3, 3), "OIHW", 4, OTHER, None),
        ((1, 4, 5, 6), "NCHW", (4, 2, 3, 3), "OIHW", 4, MULTIPLIER, 2),
    ],
)
def test_conv_form_answers_2d_and_3d(
    data_shape_, data_layout, kernel_shape, kernel_layout, groups, kind, mult
):
    form = conv_form(data_shape_, data_layout, kernel_shape, kernel_layout, groups)
    assert (form.kind, form.multiplier) == (kind, mult), form
    # conv2d_form, which the 2-D dispatch asks, answers for 2-D convolutions only
    form_2d = conv2d_form(data_shape_, data_layout, kernel_shape, kernel_layout, groups)
    if "D" in data_layout:
        assert form_2d.kind == OTHER, form_2d
    else:
        assert form_2d == form


def test_relay_to_relax_translation_still_works():
    rng = np.random.default_rng(3)
    data = rng.uniform(-1, 1, (1, 4, 8, 8)).astype("float32")
    oihw = rng.uniform(-1, 1, (4, 2, 3, 3)).astype("float32")
    x = relay.var("x", shape=data.shape)
    mod = infer(relay.Function([x], conv(x, relay.const(oihw), 4, 2, "NCHW", "OIHW")))
    expected = ref.depthwise_conv2d_nchw(data, ref.multiplier_to_canonical(oihw))
    for candidate in (mod, run_pass(mod)):
        relax_mod = relay_translator.from_relay(candidate["main"], "llvm")
        machine = relax.VirtualMachine(relax.build(relax_mod, "llvm"), tvm.cpu())
        out = machine["main"](tvm.nd.array(data)).numpy()
        tvm.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_pass_info():
    info = CanonicalizeDepthwise().info
    assert (info.name, info.opt_level) == ("CanonicalizeDepthwise", 3)


def test_usable_in_sequential_and_respects_opt_level():
    seq = tvm.transform.Sequential([relay.transform.InferType(), CanonicalizeDepthwise()])
    mod = _multiplier_module()
    with tvm.transform.PassContext(opt_level=2):
        tvm.ir.assert_structural_equal(seq(mod), mod)
    with tvm.transform.PassContext(opt_level=2, required_pass=["CanonicalizeDepthwise"]):
        assert not tvm.ir.structural_equal(seq(mod), mod)
    with tvm.transform.PassContext(opt_level=3):
        assert not tvm.ir.structural_equal(seq(mod), mod)
    with tvm.transform.PassContext(opt_level=3, disabled_pass=["CanonicalizeDepthwise"]):
        tvm.ir.assert_structural_equal(seq(mod), mod)


if __name__ == "__main__":
    tvm.testing.main()
