"""Models made by the real tools, imported by TVM's frontends, built with the patch on.

The fixtures come from tests/scripts/make_frontend_models.py (Keras -> TFLite converter, float32
and full-integer int8; Keras -> tf2onnx), with the outputs their source engines computed (the
TFLite interpreter, ONNX Runtime) stored beside them, and from tests/scripts/make_keras_fixture.py
(the same network imported by TVM's Keras frontend, which reads Keras 2 models only, saved as
Relay JSON with Keras 2.15's output): CI needs no TensorFlow.
"""

import os

import numpy as np
import pytest
import tflite

import tvm
import tvm.testing
from tvm import relay
from tvm.contrib import graph_executor
from tvm.relay.transform.canonicalize_depthwise import CanonicalizeDepthwise, conv_call_form
from tvm.topi.nn.depthwise_form import CANONICAL, MULTIPLIER
from tvm_canonicalize_depthwise import ENV_VAR
from tvm_canonicalize_depthwise.onnx_compat import ensure_onnx_mapping

from host_isa import PORTABLE_TARGETS

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
OUTPUTS = np.load(os.path.join(FIXTURES, "dw_mix.npz"))
TARGET = PORTABLE_TARGETS["avx2"]  # runs on every x86 host of the project
NCHW = {"nn.conv2d": ["NCHW", "OIHW"], "qnn.conv2d": ["NCHW", "OIHW"]}


def _read(name):
    with open(os.path.join(FIXTURES, name), "rb") as file:
        return file.read()


def _tflite(name):
    model = tflite.Model.GetRootAsModel(_read(name), 0)
    given = OUTPUTS[f"{name.split('.')[0]}_input"]
    shape = {"serving_default_input:0": given.shape}
    dtype = {"serving_default_input:0": str(given.dtype)}
    mod, params = relay.frontend.from_tflite(model, shape_dict=shape, dtype_dict=dtype)
    return mod, params, given


def _onnx():
    import onnx  # pylint: disable=import-outside-toplevel

    ensure_onnx_mapping()
    model = onnx.load_from_string(_read("dw_mix.onnx"))
    given = np.ascontiguousarray(OUTPUTS["input_nhwc"].transpose(0, 3, 1, 2))
    mod, params = relay.frontend.from_onnx(model, shape={"input": given.shape}, freeze_params=True)
    return mod, params, given


def _to_nchw(mod):
    with tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(
            [relay.transform.InferType(), relay.transform.ConvertLayout(NCHW)]
        )(mod)


def _run(mod, params, given, patch_on, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1" if patch_on else "0")
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=TARGET, params=params)
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.set_input(0, given)
    module.run()
    return module.get_output(0).numpy()


def _convs(mod):
    """The typed conv calls of ``mod`` (nn and qnn), in order, with their form."""
    typed = relay.transform.InferType()(mod)
    calls = []
    relay.analysis.post_order_visit(
        typed["main"],
        lambda node: (
            calls.append(node)
            if isinstance(node, relay.Call)
            and getattr(node.op, "name", "") in ("nn.conv2d", "qnn.conv2d")
            else None
        ),
    )
    return [(call, conv_call_form(call)) for call in calls]


def _tflite_multipliers(name):
    """The depth multiplier of every DEPTHWISE_CONV_2D in the file, read with ``tflite``."""
    model = tflite.Model.GetRootAsModel(_read(name), 0)
    graph = model.Subgraphs(0)
    multipliers = []
    for index in range(graph.OperatorsLength()):
        operator = graph.Operators(index)
        code = model.OperatorCodes(operator.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == tflite.BuiltinOperator.DEPTHWISE_CONV_2D:
            options = tflite.DepthwiseConv2DOptions()
            table = operator.BuiltinOptions()
            options.Init(table.Bytes, table.Pos)
            multipliers.append(options.DepthMultiplier())
    return multipliers


@pytest.mark.parametrize("name", ["dw_mix.tflite", "dw_mix_int8.tflite"])
def test_the_pass_rewrites_every_multiplier_the_tflite_file_holds(name):
    multipliers = _tflite_multipliers(name)
    assert sorted(multipliers) == [1, 1, 2, 2, 4]  # what the generator wrote
    mod, _, _ = _tflite(name)
    before = [form for _, form in _convs(mod) if form.is_depthwise]
    after = [form for _, form in _convs(CanonicalizeDepthwise()(mod)) if form.is_depthwise]
    assert [form.kind for form in before].count(MULTIPLIER) == sum(m > 1 for m in multipliers)
    assert len(before) == len(after) == len(multipliers)
    assert all(form.kind == CANONICAL for form in after)
    assert sorted(form.multiplier for form in after) == sorted(multipliers)


@pytest.mark.parametrize("path", ["nhwc_as_imported", "nchw"])
def test_float_tflite_matches_the_tflite_interpreter(path, monkeypatch):
    mod, params, given = _tflite("dw_mix.tflite")
    mod = _to_nchw(mod) if path == "nchw" else mod
    actual = _run(mod, params, given, True, monkeypatch)
    expected = OUTPUTS["dw_mix_tflite"]
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale)


def test_int8_tflite_is_within_one_quantum_of_the_interpreter_and_equals_patch_off(monkeypatch):
    mod, params, given = _tflite("dw_mix_int8.tflite")
    assert any(
        call.op.name == "qnn.conv2d" and form.kind == MULTIPLIER for call, form in _convs(mod)
    )
    on = _run(mod, params, given, True, monkeypatch)
    off = _run(mod, params, given, False, monkeypatch)
    expected = OUTPUTS["dw_mix_int8_tflite"]
    assert on.dtype == expected.dtype == np.int8
    np.testing.assert_array_equal(on, off)
    assert int(np.abs(on.astype(np.int32) - expected.astype(np.int32)).max()) <= 1
    assert len(np.unique(on)) > 20  # the outputs vary


def test_onnx_matches_onnx_runtime(monkeypatch):
    mod, params, given = _onnx()
    # ONNX's grouped convolutions are already canonical: the pass finds nothing to do
    assert not [form for _, form in _convs(mod) if form.kind == MULTIPLIER]
    actual = _run(mod, params, given, True, monkeypatch)
    expected = OUTPUTS["dw_mix_onnx"]
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale)


def _canonical_nchw_depthwise(mod, params):
    """The depthwise convs of ``mod`` after the pass, ConvertLayout to NCHW/OIHW and constant
    folding, as (attributes, weight) pairs."""
    mod = tvm.IRModule.from_expr(relay.build_module.bind_params_by_name(mod["main"], params))
    seq = tvm.transform.Sequential(
        [
            CanonicalizeDepthwise(),
            relay.transform.ConvertLayout(NCHW),
            relay.transform.FoldConstant(),
        ]
    )
    with tvm.transform.PassContext(opt_level=3):
        mod = seq(mod)
    found = []
    for call, form in _convs(mod):
        if form.is_depthwise:
            attrs = {
                key: str(call.attrs[key])
                for key in (
                    "strides",
                    "padding",
                    "dilation",
                    "groups",
                    "channels",
                    "kernel_size",
                    "data_layout",
                    "kernel_layout",
                )
            }
            assert isinstance(call.args[1], relay.Constant), call.args[1]
            found.append((attrs, call.args[1].data.numpy()))
    return found


def test_one_relay_whatever_the_source():
    from_tflite = _canonical_nchw_depthwise(*_tflite("dw_mix.tflite")[:2])
    from_onnx = _canonical_nchw_depthwise(*_onnx()[:2])
    assert len(from_tflite) == len(from_onnx) == 5
    for (tflite_attrs, tflite_weight), (onnx_attrs, onnx_weight) in zip(from_tflite, from_onnx):
        assert tflite_attrs == onnx_attrs
        assert tflite_weight.shape == onnx_weight.shape
        np.testing.assert_array_equal(tflite_weight, onnx_weight)


def _keras(layout):
    """The module TVM's Keras frontend made (weights bound), the input in its layout, and
    Keras 2.15's output (NHWC)."""
    with open(os.path.join(FIXTURES, f"dw_mix_keras_{layout}.json"), encoding="utf-8") as file:
        mod = tvm.ir.load_json(file.read())
    stored = np.load(os.path.join(FIXTURES, "dw_mix_keras.npz"))
    given = stored["input_nhwc"]
    if layout == "nchw":
        given = np.ascontiguousarray(given.transpose(0, 3, 1, 2))
    return mod, given, stored["keras2"]


@pytest.mark.parametrize("layout,weight_layout", [("nhwc", "HWOI"), ("nchw", "OIHW")])
def test_keras_frontend_import_is_rewritten_and_matches_keras(layout, weight_layout, monkeypatch):
    mod, given, expected = _keras(layout)
    before = [(call, form) for call, form in _convs(mod) if form.is_depthwise]
    assert len(before) == 5
    assert {str(call.attrs.kernel_layout) for call, _ in before} == {weight_layout}
    # the Keras frontend writes DepthwiseConv2D(depth_multiplier=m) in the multiplier form
    assert sorted(form.multiplier for _, form in before if form.kind == MULTIPLIER) == [2, 2, 4]
    after = [form for _, form in _convs(CanonicalizeDepthwise()(mod)) if form.is_depthwise]
    assert [form.kind for form in after] == [CANONICAL] * 5
    actual = _run(mod, None, given, True, monkeypatch)
    if layout == "nchw":
        actual = actual.transpose(0, 2, 3, 1)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale)
    # the same network and weights through Keras 3 (make_frontend_models.py)
    np.testing.assert_allclose(actual, OUTPUTS["keras"], rtol=0, atol=1e-4 * scale)


def test_one_relay_from_keras_tflite_and_onnx():
    """After the pass and ConvertLayout, the Keras frontend's depthwise convs are the TFLite
    and ONNX imports' ones: same attributes, same weights."""
    from_tflite = _canonical_nchw_depthwise(*_tflite("dw_mix.tflite")[:2])
    for layout in ("nhwc", "nchw"):
        from_keras = _canonical_nchw_depthwise(_keras(layout)[0], {})
        assert len(from_keras) == len(from_tflite) == 5
        for (keras_attrs, keras_weight), (tflite_attrs, tflite_weight) in zip(
            from_keras, from_tflite
        ):
            assert keras_attrs == tflite_attrs
            np.testing.assert_allclose(keras_weight, tflite_weight, rtol=0, atol=1e-6)


if __name__ == "__main__":
    tvm.testing.main()
