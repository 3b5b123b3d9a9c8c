"""With ``TVM_CANONICALIZE_DEPTHWISE=0`` TVM is stock TVM: compared with a process without the
project, for the strategy chosen, the alter-layout result and the compiled module."""

# pytest fixtures are passed by name to the tests that use them
# pylint: disable=redefined-outer-name
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
import pytest

import tvm
import tvm.testing
from tvm import relay
from tvm.topi.testing import depthwise_conv2d_canonical_python as ref
from tvm_canonicalize_depthwise import ENV_VAR, building, models, planning

from stock_tvm import describe, llvm_ir_digest

TARGETS = {
    "avx2": "llvm -mcpu=znver3",
    "avx512": "llvm -mcpu=znver4",
    "aarch64": "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon",
}


def _conv(data_layout, kernel_layout, channels, multiplier, form, kernel=3, stride=1):
    shape = (
        (channels, multiplier, kernel, kernel)
        if form == "multiplier"
        else (channels * multiplier, 1, kernel, kernel)
    )
    weight = np.random.default_rng(0).uniform(-1, 1, shape).astype("float32")
    data_shape = ref.to_layout(np.zeros((1, channels, 16, 16)), "NCHW", data_layout).shape
    x = relay.var("x", shape=data_shape)
    y = relay.nn.conv2d(
        x,
        relay.const(ref.to_layout(weight, "OIHW", kernel_layout)),
        strides=(stride, stride),
        padding=(kernel // 2,) * 2,
        groups=channels,
        channels=channels * multiplier,
        kernel_size=(kernel, kernel),
        data_layout=data_layout,
        kernel_layout=kernel_layout,
    )
    return tvm.IRModule.from_expr(relay.Function([x], relay.nn.relu(y)))


# Depthwise convs that stock TVM builds, both forms, several layouts: the patch acts on each.
DEPTHWISE = {
    "nchw_oihw_m1": _conv("NCHW", "OIHW", 16, 1, "canonical"),
    "nchw_oihw_multiplier_m2": _conv("NCHW", "OIHW", 16, 2, "multiplier"),
    "nchw_oihw_canonical_m2": _conv("NCHW", "OIHW", 16, 2, "canonical", stride=2),
    "nchw_oihw_multiplier_m4_5x5": _conv("NCHW", "OIHW", 8, 4, "multiplier", kernel=5),
    "nhwc_hwoi_multiplier_m3": _conv("NHWC", "HWOI", 8, 3, "multiplier"),
    "nhwc_hwoi_m1": _conv("NHWC", "HWOI", 32, 1, "canonical"),
    "nhwc_hwio_canonical_m2": _conv("NHWC", "HWIO", 8, 2, "canonical"),
}


def _plain_conv():
    """A plain 3x3 convolution, NCHW, 8 channels to 16."""
    x = relay.var("x", shape=(1, 8, 16, 16))
    return tvm.IRModule.from_expr(
        relay.Function(
            [x],
            relay.nn.conv2d(
                x,
                relay.const(np.ones((16, 8, 3, 3), "float32")),
                padding=(1, 1),
                channels=16,
                kernel_size=(3, 3),
            ),
        )
    )


# A plain convolution: the patch must leave it as stock has it, on or off.
PLAIN = {"nchw_oihw_plain": _plain_conv()}
CASES = [(name, target) for name in {**DEPTHWISE, **PLAIN} for target in TARGETS]


def _site_packages():
    return sysconfig.get_paths()["purelib"]


def _stock_descriptions(modules):
    """:func:`describe` of each ``(module, target)`` in a process without the project."""
    cases = [{"module": tvm.ir.save_json(mod), "target": target} for mod, target in modules]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as path:
        json.dump(cases, path)
        path.flush()
        env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
        result = subprocess.run(
            [
                sys.executable,
                "-S",
                str(Path(__file__).with_name("stock_tvm.py")),
                _site_packages(),
                path.name,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=900,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # the stock process ran the installed TVM, not a copy of the project's tree
    assert report["tvm"].startswith(_site_packages()), report["tvm"]
    return report["descriptions"]


@pytest.fixture(scope="module")
def stock():
    """What stock TVM makes of every case, described once in a process without the project."""
    modules = {**DEPTHWISE, **PLAIN}
    descriptions = _stock_descriptions([(modules[name], TARGETS[t]) for name, t in CASES])
    return dict(zip(CASES, descriptions))


def _patched(name, target, switch, monkeypatch):
    monkeypatch.setenv(ENV_VAR, switch)
    return describe({**DEPTHWISE, **PLAIN}[name], TARGETS[target])


@pytest.mark.parametrize("name,target", CASES)
def test_patch_off_is_stock(stock, name, target, monkeypatch):
    assert _patched(name, target, "0", monkeypatch) == stock[(name, target)]


@pytest.mark.parametrize("name,target", [case for case in CASES if case[0] in DEPTHWISE])
def test_patch_on_acts_where_it_should(stock, name, target, monkeypatch):
    on = _patched(name, target, "1", monkeypatch)
    assert on["build_error"] is None, on["build_error"]
    assert any("depthwise_conv2d_canonical" in chosen for chosen in on["implementations"]), on
    assert not any(
        "depthwise_conv2d_canonical" in c for c in stock[(name, target)]["implementations"]
    )
    assert on["llvm_ir"] != stock[(name, target)]["llvm_ir"]


@pytest.mark.parametrize("target", TARGETS)
def test_patch_on_leaves_plain_convs_stock_but_for_their_packing(stock, target, monkeypatch):
    """A plain conv keeps stock's layouts, graph and implementations; only the layout
    transforms that pack its data get the CPU schedule of packed layouts (so its code differs,
    which ``test_topi_packed_layout_transform.py`` checks against NumPy)."""
    on = _patched("nchw_oihw_plain", target, "1", monkeypatch)
    expected = stock[("nchw_oihw_plain", target)]
    assert on["build_error"] is None and expected["build_error"] is None
    assert on["optimized"] == expected["optimized"] and on["graph"] == expected["graph"]
    generic, ours = ": layout_transform.generic", ": layout_transform.x86"
    assert any(chosen.endswith(generic) for chosen in expected["implementations"])
    assert on["implementations"] == [
        chosen.replace(generic, ours) for chosen in expected["implementations"]
    ]


def test_command_patch_off_build_is_stock(tmp_path):
    """The command's "patch off" builds of its default network, on the path as imported and
    after ConvertLayout, are exactly what TVM without the project compiles; its "patch on"
    builds are not."""
    model = models.read_model(models.DEFAULT_MODEL)
    mod = planning.import_model(model, models.resolve_shapes(model, {}))
    target = TARGETS["avx2"]
    variants = [mod, planning.to_nchw(mod)]
    expected = _stock_descriptions([(variant, target) for variant in variants])
    for variant, stock_build in zip(variants, expected):
        # the build the command runs, in its child process
        off = building.compile_in_child(variant, tvm.target.Target(target), False, str(tmp_path))
        assert off.error is None and off.in_child, off.error
        assert off.graph_json == stock_build["graph"]
        assert off.rewritten == 0
        # the same function in this process, to compare the generated code
        lib = building.build(variant, tvm.target.Target(target), False)
        assert llvm_ir_digest(lib) == stock_build["llvm_ir"]
        on = building.compile_in_child(variant, tvm.target.Target(target), True, str(tmp_path))
        assert on.error is None and on.rewritten > 0, on.error
        assert on.graph_json != stock_build["graph"]


if __name__ == "__main__":
    tvm.testing.main()
