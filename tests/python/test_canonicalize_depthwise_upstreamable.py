"""The files under ``python/tvm/`` are meant to go upstream as they are: TVM's imports only."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tvm.testing

ROOT = Path(__file__).resolve().parents[2]
TVM_TREE = ROOT / "python" / "tvm"
sys.path.insert(0, str(ROOT / "tests" / "scripts"))
import upstream_patch  # noqa: E402  pylint: disable=wrong-import-position

# what a module inside TVM may import besides itself: the standard library, NumPy, TVM
ALLOWED = set(sys.stdlib_module_names) | {"numpy", "tvm"}


def _imported_roots(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


FILES = sorted(TVM_TREE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(TVM_TREE)) for p in FILES])
def test_imports_only_tvm_numpy_and_stdlib(path):
    foreign = sorted(set(_imported_roots(path)) - ALLOWED)
    assert not foreign, f"{path.relative_to(TVM_TREE)} imports {foreign}"


# A multiplier-form depthwise conv (TFLite's HWOI, m = 2) built by the patched TVM alone, and
# checked against NumPy: the pass, the dispatch and the legalize come from the series.
_UPSTREAM_BUILD = """
import numpy as np, tvm, sys
from tvm import relay
from tvm.contrib import graph_executor
assert tvm.__file__.startswith(sys.argv[1]), tvm.__file__  # the patched copy's tvm
assert not any(type(f).__name__ == "OverlayFinder" for f in sys.meta_path), "the glue is on"
rng = np.random.default_rng(0)
x, w = rng.uniform(-1, 1, (1, 9, 9, 4)).astype("float32"), rng.uniform(-1, 1, (3, 3, 4, 2))
w = w.astype("float32")
data = relay.var("x", shape=x.shape)
y = relay.nn.conv2d(data, relay.const(w), groups=4, channels=8, kernel_size=(3, 3),
                    data_layout="NHWC", kernel_layout="HWOI")
mod = tvm.IRModule.from_expr(relay.Function([data], y))
assert relay.transform.CanonicalizeDepthwise()(relay.transform.InferType()(mod)) is not None
with tvm.transform.PassContext(opt_level=3):
    lib = relay.build(mod, target="llvm -mcpu=haswell")
m = graph_executor.GraphModule(lib["default"](tvm.cpu()))
m.set_input("x", x)
m.run()
got = m.get_output(0).numpy()
want = np.zeros((1, 7, 7, 8), "float32")
for c in range(4):
    for j in range(2):
        for i in range(7):
            for k in range(7):
                want[0, i, k, c * 2 + j] = np.sum(x[0, i:i + 3, k:k + 3, c] * w[:, :, c, j])
np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
print("ok")
"""


def test_the_upstream_series_applies_and_its_tvm_builds_alone(tmp_path):
    source = upstream_patch.installed_tvm()
    patches = upstream_patch.make_series(source, str(tmp_path / "series"))
    assert len(patches) == len(upstream_patch.EDITS) + 1
    upstream_patch.check_applies(source, patches)  # exits with the patch that does not apply
    root = upstream_patch.patched_copy(patches, str(tmp_path / "patched"))
    env = dict(os.environ, PYTHONPATH=root, TVM_CANONICALIZE_DEPTHWISE_OVERLAY="0")
    done = subprocess.run(
        [sys.executable, "-c", _UPSTREAM_BUILD, root],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


if __name__ == "__main__":
    tvm.testing.main()
