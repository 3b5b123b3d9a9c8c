"""CanonicalizeDepthwise runs inside relay.build and friends at opt_level 3, and dispatch
follows."""

import json

import numpy as np
import pytest

import tvm
import tvm.testing
from tvm import relay
from tvm.contrib import graph_executor
from tvm.driver import tvmc
from tvm.relay.backend import te_compiler, vm
from tvm.topi.testing import depthwise_conv2d_canonical_python as ref
from tvm_canonicalize_depthwise import ENV_VAR

TARGET = tvm.target.Target(f"llvm -mcpu={tvm.target.codegen.llvm_get_system_cpu()}")
ARM_TARGET = "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon"
CHANNELS, MULT = 4, 3


@tvm.instrument.pass_instrument
class PassNames:
    """Records the name of every pass that runs."""

    def __init__(self):
        self.names = []

    def run_before_pass(self, mod, info):  # pylint: disable=unused-argument  # TVM's hook
        """Records ``info``'s pass name."""
        self.names.append(info.name)


def _data():
    return np.random.default_rng(0).uniform(-1, 1, (1, CHANNELS, 8, 8)).astype("float32")


def _weight():
    return np.random.default_rng(1).uniform(-1, 1, (CHANNELS, MULT, 3, 3)).astype("float32")


def _expected():
    conv = ref.depthwise_conv2d_nchw(
        _data(), ref.multiplier_to_canonical(_weight()), padding=(1,) * 4
    )
    return np.maximum(conv, 0)


def _module(weight_as_param=False):
    x = relay.var("x", shape=(1, CHANNELS, 8, 8))
    w = relay.var("w", shape=(CHANNELS, MULT, 3, 3)) if weight_as_param else relay.const(_weight())
    y = relay.nn.conv2d(
        x, w, channels=CHANNELS * MULT, groups=CHANNELS, kernel_size=(3, 3), padding=(1, 1)
    )
    params = [x, w] if weight_as_param else [x]
    return tvm.IRModule.from_expr(relay.Function(params, relay.nn.relu(y)))


def _ran(build, **ctx):
    names = PassNames()
    with tvm.transform.PassContext(instruments=[names], **ctx):
        result = build()
    return "CanonicalizeDepthwise" in names.names, result


@pytest.mark.parametrize(
    "ctx,expected",
    [
        ({"opt_level": 3}, True),
        ({"opt_level": 2}, False),
        ({"opt_level": 2, "required_pass": ["CanonicalizeDepthwise"]}, True),
        ({"opt_level": 3, "disabled_pass": ["CanonicalizeDepthwise"]}, False),
    ],
)
def test_relay_build_runs_pass_per_pass_context(ctx, expected):
    ran, lib = _ran(lambda: relay.build(_module(), target=TARGET), **ctx)
    assert ran == expected
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.run(x=_data())
    tvm.testing.assert_allclose(module.get_output(0).numpy(), _expected(), rtol=1e-4, atol=1e-4)


def test_env_var_turns_the_patch_off(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "0")
    ran, _ = _ran(lambda: relay.build(_module(), target=TARGET), opt_level=3)
    assert not ran


def test_params_become_canonical_constants_without_runtime_reshape():
    params = {"w": tvm.nd.array(_weight())}
    before = params["w"].numpy().copy()
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(_module(weight_as_param=True), target=TARGET, params=params)
    ops = [
        node["attrs"]["func_name"]
        for node in json.loads(lib.get_graph_json())["nodes"]
        if node["op"] == "tvm_op"
    ]
    assert len(ops) == 1 and "reshape" not in ops[0] and "layout_transform" not in ops[0], ops
    assert list(params) == ["w"]
    np.testing.assert_array_equal(params["w"].numpy(), before)
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.run(x=_data())
    tvm.testing.assert_allclose(module.get_output(0).numpy(), _expected(), rtol=1e-4, atol=1e-4)


def test_relay_optimize_runs_pass():
    ran, (mod, _) = _ran(lambda: relay.optimize(_module(), target=TARGET), opt_level=3)
    assert ran
    shapes = []
    relay.analysis.post_order_visit(
        mod["main"],
        lambda n: shapes.append(tuple(n.data.shape)) if isinstance(n, relay.Constant) else None,
    )
    assert (CHANNELS * MULT, 1, 3, 3) in shapes or any(
        len(s) == 6 and s[1] == 1 for s in shapes
    ), shapes


def test_vm_compile_runs_pass():
    ran, exe = _ran(lambda: vm.compile(_module(), target=TARGET), opt_level=3)
    assert ran
    out = tvm.runtime.vm.VirtualMachine(exe, tvm.cpu()).invoke("main", _data())
    tvm.testing.assert_allclose(out.numpy(), _expected(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["graph", "vm", "aot", "debug"])
def test_create_executor_runs_pass(kind):
    def evaluate():
        executor = relay.create_executor(kind, mod=_module(), device=tvm.cpu(), target=TARGET)
        return executor.evaluate()(_data())

    ran, out = _ran(evaluate, opt_level=3)
    assert ran
    tvm.testing.assert_allclose(out.numpy(), _expected(), rtol=1e-4, atol=1e-4)


def test_tvmc_compile_default_opt_level_runs_pass(tmp_path):
    path = tmp_path / "model.relay"
    path.write_text(_module().astext(show_meta_data=True))
    model = tvmc.load(str(path), shape_dict={"x": [1, CHANNELS, 8, 8]})
    names = PassNames()
    package = tvmc.compile(
        model, target=str(TARGET), package_path=str(tmp_path / "m.tar"), instruments=[names]
    )
    assert "CanonicalizeDepthwise" in names.names
    module = graph_executor.create(
        package.graph, tvm.runtime.load_module(package.lib_path), tvm.cpu()
    )
    module.load_params(package.params)
    module.run(x=_data())
    tvm.testing.assert_allclose(module.get_output(0).numpy(), _expected(), rtol=1e-4, atol=1e-4)


def _implementation_name(mod, target):
    """The conv2d implementation the strategy picks for the (only) conv in ``mod``."""
    with tvm.transform.PassContext(opt_level=3):
        mod = relay.transform.InferType()(relay.transform.CanonicalizeDepthwise()(mod))
    call = mod["main"].body
    inputs = [tvm.te.placeholder([int(e) for e in arg.checked_type.shape]) for arg in call.args]
    impl, _ = te_compiler.select_implementation(
        call.op, call.attrs, inputs, call.checked_type, tvm.target.Target(target)
    )
    return impl.name


def _conv_module(weight, data_layout="NCHW", kernel_layout="OIHW"):
    x = relay.var("x", shape=ref.to_layout(_data(), "NCHW", data_layout).shape)
    y = relay.nn.conv2d(
        x,
        relay.const(ref.to_layout(weight, "OIHW", kernel_layout)),
        channels=CHANNELS * MULT,
        groups=CHANNELS,
        kernel_size=(3, 3),
        padding=(1, 1),
        data_layout=data_layout,
        kernel_layout=kernel_layout,
    )
    return tvm.IRModule.from_expr(relay.Function([x], y))


@pytest.mark.parametrize(
    "data_layout,kernel_layout", [("NCHW", "OIHW"), ("NHWC", "HWOI"), ("NCHW", "OHWI")]
)
def test_arm_cpu_compiles(data_layout, kernel_layout):
    mod = _conv_module(_weight(), data_layout, kernel_layout)
    assert _implementation_name(mod, ARM_TARGET) == "depthwise_conv2d_canonical.arm_cpu"
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=ARM_TARGET)
    assert "aarch64" in lib.get_lib().get_source("ll")


def test_generic_fallback_for_other_targets():
    target = "llvm -keys=generic"
    mod = _conv_module(_weight(), "NHWC", "HWOI")
    assert _implementation_name(mod, target) == "depthwise_conv2d_canonical.generic"
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=target)
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.run(x=ref.to_layout(_data(), "NCHW", "NHWC"))
    out = ref.to_layout(module.get_output(0).numpy(), "NHWC", "NCHW")
    expected = ref.depthwise_conv2d_nchw(
        _data(), ref.multiplier_to_canonical(_weight()), padding=(1,) * 4
    )
    tvm.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("data_layout,kernel_layout", [("NCHW", "OIHW"), ("NHWC", "HWOI")])
def test_dispatch_is_one_implementation_for_both_forms(data_layout, kernel_layout):
    names = {
        _implementation_name(_conv_module(weight, data_layout, kernel_layout), TARGET)
        for weight in (_weight(), ref.multiplier_to_canonical(_weight()))
    }
    assert names == {"depthwise_conv2d_canonical.x86"}


# nn.conv3d: the pass canonicalizes the multiplier form, and the conv3d legalization
# (topi/nn/depthwise_conv3d_legalize.py) gets TVM's CPU conv3d computes to serve the canonical
# form in any layout. Built for AVX2 (8 lanes), which also runs on AVX-512 hosts.
CONV3D_TARGET = tvm.target.Target("llvm -mcpu=haswell")  # runs on every AVX2 host
CONV3D_LAYOUTS = [
    ("NCDHW", "OIDHW"),
    ("NCDHW", "DHWIO"),
    ("NCDHW", "ODHWI"),
    ("NDHWC", "DHWIO"),
    ("NDHWC", "DHWOI"),
    ("NDHWC", "OIDHW"),
]
# (strides, padding as (front, top, left, back, bottom, right), dilation), per multiplier
CONV3D_GEOMETRY = {
    1: ((1, 1, 1), (1, 1, 1, 1, 1, 1), (1, 1, 1)),
    2: ((2, 1, 2), (0, 1, 2, 1, 0, 1), (1, 2, 1)),
    3: ((1, 2, 1), (2, 0, 1, 0, 1, 1), (2, 1, 1)),
}


def _conv3d_case(
    channels,
    mult,
    data_layout,
    kernel_layout,
    form="multiplier",
    weight_param=False,
    strides=(1, 1, 1),
    padding=(1,) * 6,
    dilation=(1, 1, 1),
):
    """A depthwise conv3d module, its NCDHW input and its NumPy result (NCDHW)."""
    rng = np.random.default_rng(channels * 10 + mult)
    data = rng.uniform(-1, 1, (1, channels, 4, 5, 6)).astype("float32")
    oidhw = rng.uniform(-1, 1, (channels, mult, 3, 3, 3)).astype("float32")
    canonical = ref.multiplier_to_canonical(oidhw)
    weight = ref.to_layout(oidhw if form == "multiplier" else canonical, "OIDHW", kernel_layout)
    x = relay.var("x", shape=ref.to_layout(data, "NCDHW", data_layout).shape)
    w = relay.var("w", shape=weight.shape) if weight_param else relay.const(weight)
    y = relay.nn.conv3d(
        x,
        w,
        channels=channels * mult,
        groups=channels,
        kernel_size=(3, 3, 3),
        strides=strides,
        padding=padding,
        dilation=dilation,
        data_layout=data_layout,
        kernel_layout=kernel_layout,
    )
    mod = tvm.IRModule.from_expr(relay.Function([x, w] if weight_param else [x], y))
    expected = ref.depthwise_conv3d_ncdhw(data, canonical, strides, padding, dilation)
    return mod, data, weight, expected


def _build_conv3d(mod, params=None, **ctx):
    with tvm.transform.PassContext(opt_level=3, **ctx):
        lib = relay.build(mod, target=CONV3D_TARGET, params=params)
    return graph_executor.GraphModule(lib["default"](tvm.cpu()))


def _run_conv3d(module, data, data_layout, **inputs):
    module.run(x=ref.to_layout(data, "NCDHW", data_layout), **inputs)
    return ref.to_layout(module.get_output(0).numpy(), data_layout, "NCDHW")


@pytest.mark.parametrize("mult", [1, 2, 3])
@pytest.mark.parametrize("data_layout,kernel_layout", CONV3D_LAYOUTS)
def test_conv3d_builds_and_matches_numpy(data_layout, kernel_layout, mult):
    strides, padding, dilation = CONV3D_GEOMETRY[mult]
    # a weight bound through params folds into a constant; with m = 2 it is an input instead,
    # reshaped (and transposed) at run time
    weight_input = mult == 2
    mod, data, weight, expected = _conv3d_case(
        4,
        mult,
        data_layout,
        kernel_layout,
        weight_param=True,
        strides=strides,
        padding=padding,
        dilation=dilation,
    )
    if weight_input:
        out = _run_conv3d(_build_conv3d(mod), data, data_layout, w=weight)
    else:
        out = _run_conv3d(_build_conv3d(mod, params={"w": weight}), data, data_layout)
    tvm.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("data_layout,kernel_layout", [("NCDHW", "OIDHW"), ("NDHWC", "DHWIO")])
def test_conv3d_multiplier_form_wrong_in_stock_tvm_right_with_patch(
    monkeypatch, data_layout, kernel_layout
):
    channels, mult = 4, 2
    mod, data, _, expected = _conv3d_case(channels, mult, data_layout, kernel_layout)
    c_axis = data_layout.index("C")
    monkeypatch.setenv(ENV_VAR, "0")
    # Stock TVM 0.19: Conv3DRel's depthwise special case types the call with C*m = 8 output
    # channels, and it builds; the compute it lowers to reads the weight's O extent (C) as the
    # number of filters and produces C = 4 channels, which the graph only finds out at run time.
    module = _build_conv3d(mod)
    with pytest.raises(
        tvm.TVMError,
        match=rf"output_unpack\.shape\[{c_axis}\] has an unsatisfied constraint: {channels} ==",
    ):
        _run_conv3d(module, data, data_layout)
    call = relay.transform.InferType()(mod)["main"].body
    assert int(call.checked_type.shape[c_axis]) == channels * mult
    inputs = [tvm.te.placeholder([int(e) for e in arg.checked_type.shape]) for arg in call.args]
    with CONV3D_TARGET:
        _, outputs = te_compiler.select_implementation(
            call.op, call.attrs, inputs, call.checked_type, CONV3D_TARGET
        )
    assert int(outputs[0].shape[c_axis]) == channels
    # With the patch: the canonical weight, C*m channels, the right numbers.
    monkeypatch.delenv(ENV_VAR)
    out = _run_conv3d(_build_conv3d(mod), data, data_layout)
    tvm.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def _raised_in(excinfo, function, statement):
    last = excinfo.traceback[-1]
    return last.name == function and statement in str(last.statement)


@pytest.mark.parametrize(
    "channels,mult,data_layout,kernel_layout,failure",
    [
        # the strategy never reads kernel_layout: NCDHW data means an OIDHW weight
        (4, 1, "NCDHW", "DHWIO", "Divide by zero"),
        (4, 1, "NDHWC", "OIDHW", "number of filters must be a multiple of group size"),
        # conv3d_ndhwc.x86 asserts oc_bn <= groups; untuned, oc_bn = 8 (AVX2) > C = 4
        (4, 2, "NDHWC", "DHWIO", "oc_bn <= groups"),
        # a vector `let` of input-channel indices, declared to LLVM with #dbg_declare
        (4, 2, "NCDHW", "OIDHW", "location of #dbg_declare must be a pointer or int"),
    ],
    ids=["kernel-layout-ncdhw", "kernel-layout-ndhwc", "ndhwc-oc_bn", "ncdhw-dbg_declare"],
)
def test_conv3d_canonical_form_fails_in_stock_tvm_and_builds_legalized(
    monkeypatch, channels, mult, data_layout, kernel_layout, failure
):
    mod, data, _, expected = _conv3d_case(
        channels, mult, data_layout, kernel_layout, form="canonical"
    )
    monkeypatch.setenv(ENV_VAR, "0")
    with pytest.raises((AssertionError, tvm.TVMError)) as excinfo:
        _build_conv3d(mod)
    assert failure in str(excinfo.value) or _raised_in(excinfo, "_conv3d_ndhwc", failure)
    monkeypatch.delenv(ENV_VAR)
    out = _run_conv3d(_build_conv3d(mod), data, data_layout)
    tvm.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_conv3d_dbg_declare_failure_is_tir_cse(monkeypatch):
    # The stock compute is right for m > 1 in NCDHW: only TIR's CSE, binding the vector of
    # input-channel indices to a `let`, trips LLVM 22's verifier.
    monkeypatch.setenv(ENV_VAR, "0")
    mod, data, _, expected = _conv3d_case(4, 2, "NCDHW", "OIDHW", form="canonical")
    module = _build_conv3d(mod, config={"tir.disable_cse_tir": True})
    tvm.testing.assert_allclose(_run_conv3d(module, data, "NCDHW"), expected, rtol=1e-4, atol=1e-4)


def _legalized(mod, target=CONV3D_TARGET):
    with target:
        return relay.transform.Legalize()(relay.transform.InferType()(mod))


def test_conv3d_legalize_repeats_channels_and_reads_the_native_kernel_layout():
    channels, mult = 4, 2

    def before():
        x = relay.var("x", shape=(1, 5, 6, 7, channels))
        w = relay.var("w", shape=(3, 3, 3, channels * mult, 1))
        y = relay.nn.conv3d(
            x,
            w,
            channels=channels * mult,
            groups=channels,
            kernel_size=(3, 3, 3),
            data_layout="NDHWC",
            kernel_layout="DHWOI",
        )
        return tvm.IRModule.from_expr(relay.Function([x, w], y))

    def expected():
        x = relay.var("x", shape=(1, 5, 6, 7, channels))
        w = relay.var("w", shape=(3, 3, 3, channels * mult, 1))
        y = relay.nn.conv3d(
            relay.repeat(x, mult, axis=4),
            relay.layout_transform(w, "DHWOI", "DHWIO"),
            channels=channels * mult,
            groups=channels * mult,
            kernel_size=(3, 3, 3),
            data_layout="NDHWC",
            kernel_layout="DHWIO",
        )
        return relay.transform.InferType()(tvm.IRModule.from_expr(relay.Function([x, w], y)))

    tvm.ir.assert_structural_equal(_legalized(before()), expected())


@pytest.mark.parametrize(
    "case", ["native layout, m = 1", "grouped, not depthwise", "not a cpu target", "patch off"]
)
def test_conv3d_legalize_leaves_alone(monkeypatch, case):
    target = CONV3D_TARGET
    if case == "native layout, m = 1":
        mod, _, _, _ = _conv3d_case(4, 1, "NCDHW", "OIDHW", form="canonical")
    elif case == "grouped, not depthwise":
        x = relay.var("x", shape=(1, 4, 4, 5, 6))
        w = relay.const(np.ones((6, 2, 3, 3, 3), "float32"))
        mod = tvm.IRModule.from_expr(
            relay.Function([x], relay.nn.conv3d(x, w, channels=6, groups=2, kernel_size=(3, 3, 3)))
        )
    else:
        mod, _, _, _ = _conv3d_case(4, 2, "NCDHW", "DHWIO", form="canonical")
        if case == "not a cpu target":
            target = tvm.target.Target("cuda")
        else:
            monkeypatch.setenv(ENV_VAR, "0")
    mod = relay.transform.InferType()(mod)
    tvm.ir.assert_structural_equal(_legalized(mod, target), mod)


@pytest.mark.parametrize(
    "ctx",
    [{"opt_level": 2}, {"disabled_pass": ["CanonicalizeDepthwise"]}],
    ids=["opt_level-2", "pass-disabled"],
)
def test_conv3d_multiplier_form_right_without_the_pass(ctx):
    # Where the pass does not run, the legalization canonicalizes the weight itself: with the
    # patch on, correctness does not depend on the pass.
    mod, data, _, expected = _conv3d_case(4, 2, "NDHWC", "ODHWI")
    ran, lib = _ran(lambda: relay.build(mod, target=CONV3D_TARGET), **{"opt_level": 3, **ctx})
    assert not ran
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    tvm.testing.assert_allclose(_run_conv3d(module, data, "NDHWC"), expected, rtol=1e-4, atol=1e-4)


def test_conv3d_params_fold_into_a_native_canonical_constant():
    mod, data, weight, expected = _conv3d_case(4, 2, "NCDHW", "ODHWI", weight_param=True)
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=CONV3D_TARGET, params={"w": weight})
    ops = [
        node["attrs"]["func_name"]
        for node in json.loads(lib.get_graph_json())["nodes"]
        if node["op"] == "tvm_op"
    ]
    assert not any("layout_transform" in op or "reshape" in op for op in ops), ops
    (constant,) = lib.get_params().values()
    assert constant.shape == (8, 1, 3, 3, 3)  # OIDHW, the layout conv3d_ncdhw.x86 reads
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    tvm.testing.assert_allclose(_run_conv3d(module, data, "NCDHW"), expected, rtol=1e-4, atol=1e-4)


if __name__ == "__main__":
    tvm.testing.main()
