"""The upstream change as a patch series against apache/tvm v0.19.0: made, checked, tested.

    python tests/scripts/upstream_patch.py                       # make and check the series
    python tests/scripts/upstream_patch.py --tvm-source ~/tvm    # against a v0.19.0 checkout
    python tests/scripts/upstream_patch.py --test -- -k prelu    # and run tests on the result

The series (``--out``, default ``build/upstream/``) holds the project's files under
``python/tvm/`` as new files, then the edits to TVM's own Python files that take the place of
the install glue's registrations (``python/tvm_canonicalize_depthwise/activate.py``): the
strategy dispatch, the x86 alter-layout rule, the legalize and layout functions, the CPU
strategy of ``layout_transform``, the TFLite PReLU, and the pass at the build entry points.
Each edit is anchored on TVM's text and fails loudly where the anchor is not found exactly
once.

The baseline is ``--tvm-source`` (a checkout of the tag: its ``python/tvm``), else the
installed ``tvm`` package, whose Python files the xtc wheel ships as v0.19.0 has them (checked
against the tag for every file edited here). The series is made as commits on a copy of the
baseline, written out with ``git format-patch``, and checked with ``git apply --check`` on a
second, untouched copy.

``--test`` lays the series onto a copy of the installed ``tvm`` package (its compiled library
included), and runs pytest on the project's tests with that copy first on ``sys.path`` and the
install glue off (``TVM_CANONICALIZE_DEPTHWISE_OVERLAY=0``): TVM as patched upstream would be.
Arguments after ``--`` go to pytest (default: the tests that do not switch the patch off,
which upstream has no switch for: ``-m "not switch"``).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVERLAY = os.path.join(ROOT, "python", "tvm")
AUTHOR = ["-c", "user.name=canonicalize-depthwise", "-c", "user.email=patch@localhost"]

_DISPATCH = """\
    if is_depthwise_call(attrs, inputs):
        return depthwise_conv2d_canonical_strategy(attrs, inputs, out_type, target)
"""
_DISPATCH_IMPORT = (
    "from .depthwise_canonical import depthwise_conv2d_canonical_strategy, is_depthwise_call\n"
)


def _after(anchor, text):
    return (anchor, anchor + text)


def _before(anchor, text):
    return (anchor, text + anchor)


# (title, {file under python/tvm: [(anchor, replacement), ...]})
EDITS = [
    (
        "[Relay][Strategy] One strategy for every canonical depthwise conv2d",
        {
            "relay/op/strategy/x86.py": [
                _after("from .generic import *\n", _DISPATCH_IMPORT),
                _after(
                    'def conv2d_strategy_cpu(attrs, inputs, out_type, target):\n    """conv2d x86 '
                    'strategy"""\n',
                    _DISPATCH,
                ),
                _after(
                    "def depthwise_conv2d_NCHWc_strategy_cpu(attrs, inputs, out_type, target):\n"
                    '    """depthwise_conv2d x86 strategy"""\n',
                    _DISPATCH,
                ),
            ],
            "relay/op/strategy/arm_cpu.py": [
                _after("from .generic import *\n", _DISPATCH_IMPORT),
                _after(
                    "def conv2d_strategy_arm_cpu(attrs, inputs, out_type, target):\n"
                    '    """conv2d arm cpu strategy"""\n',
                    _DISPATCH,
                ),
            ],
            "relay/op/strategy/generic.py": [
                _after(
                    'def conv2d_strategy(attrs, inputs, out_type, target):\n    """conv2d generic '
                    'strategy"""\n',
                    "    # pylint: disable=import-outside-toplevel\n"
                    "    from .depthwise_canonical import (\n"
                    "        depthwise_conv2d_canonical_strategy,\n"
                    "        is_depthwise_call,\n"
                    "    )\n\n" + _DISPATCH,
                ),
            ],
            "topi/x86/conv2d_alter_op.py": [
                (
                    '@conv2d_alter_layout.register("cpu")\ndef _alter_conv2d_layout(',
                    "def " "_alter_conv2d_layout(",
                ),
            ],
            "topi/x86/__init__.py": [
                _after(
                    "from .conv2d_alter_op import *\n",
                    "from .depthwise_conv2d_canonical_alter_op import "
                    "alter_conv2d_layout as _alter\n"
                    "from ..nn import conv2d_alter_layout as _conv2d_alter_layout\n\n"
                    '_conv2d_alter_layout.register("cpu", _alter)\n',
                ),
            ],
        },
    ),
    (
        "[Relay] CanonicalizeDepthwise: the pass, in Legalize and at the build entry points",
        {
            "relay/transform/__init__.py": [
                _after(
                    "from .flexible_shape import FlexibleShapeDispatch\n",
                    "from .canonicalize_depthwise import CanonicalizeDepthwise\n"
                    "from .canonicalize_prelu import CanonicalizePReLU\n",
                ),
            ],
            "relay/op/nn/_nn.py": [
                ("from tvm import relay, topi\n", "import tvm\nfrom tvm import relay, topi\n"),
                (
                    "        The legalized expr\n"
                    '    """\n'
                    "    return topi.nn.conv2d_legalize(attrs, inputs, types)\n",
                    "        The legalized expr\n"
                    '    """\n'
                    '    canonical = _canonical("nn.conv2d", attrs, inputs, types)\n'
                    "    if canonical is not None:\n"
                    "        call, types = canonical\n"
                    "        legal = topi.nn.conv2d_legalize(call.attrs, call.args, types)\n"
                    "        return call if legal is None else legal\n"
                    "    return topi.nn.conv2d_legalize(attrs, inputs, types)\n\n\n"
                    "def _canonical(op_name, attrs, inputs, types):\n"
                    '    """The canonical form of a multiplier-form depthwise call, where the\n'
                    "    PassContext runs CanonicalizeDepthwise "
                    '(every pipeline runs Legalize)."""\n'
                    "    # pylint: disable=import-outside-toplevel\n"
                    "    from tvm.relay.transform import canonicalize_depthwise\n\n"
                    "    if not canonicalize_depthwise.pass_enabled():\n"
                    "        return None\n"
                    "    return canonicalize_depthwise.legalize_multiplier_form(\n"
                    "        tvm.ir.Op.get(op_name), attrs, inputs, types\n"
                    "    )\n\n\n"
                    '@reg.register_legalize("nn.conv3d")\n'
                    "def legalize_conv3d(attrs, inputs, types):\n"
                    '    """A depthwise conv3d in the canonical form, as a grouped conv3d."""\n'
                    "    # pylint: disable=import-outside-toplevel\n"
                    "    from tvm.topi.nn.depthwise_conv3d_legalize import "
                    "legalize_depthwise_conv3d\n\n"
                    "    return legalize_depthwise_conv3d(attrs, inputs, types)\n\n\n"
                    '@reg.register_legalize("nn.prelu")\n'
                    "def legalize_prelu(attrs, inputs, types):\n"
                    '    """PReLU as broadcast arithmetic, which packed layouts pass through."""\n'
                    "    # pylint: disable=import-outside-toplevel\n"
                    "    from tvm.relay.transform import canonicalize_prelu\n"
                    "    from .follow_layout import legalize_prelu as _legalize_prelu\n\n"
                    "    if not canonicalize_prelu.pass_enabled():\n"
                    "        return None\n"
                    "    return _legalize_prelu(attrs, inputs, types)\n",
                ),
            ],
            "relay/qnn/op/legalizations.py": [
                (
                    "def legalize_qnn_conv2d(attrs, inputs, types):\n"
                    "    return qnn_conv2d_legalize(attrs, inputs, types)\n",
                    "def legalize_qnn_conv2d(attrs, inputs, types):\n"
                    "    # pylint: disable=import-outside-toplevel\n"
                    "    from tvm.relay.transform import canonicalize_depthwise\n\n"
                    "    if canonicalize_depthwise.pass_enabled():\n"
                    "        canonical = canonicalize_depthwise.legalize_multiplier_form(\n"
                    '            tvm.ir.Op.get("qnn.conv2d"), attrs, inputs, types\n'
                    "        )\n"
                    "        if canonical is not None:\n"
                    "            call, types = canonical\n"
                    "            legal = qnn_conv2d_legalize(call.attrs, call.args, types)\n"
                    "            return call if legal is None else legal\n"
                    "    return qnn_conv2d_legalize(attrs, inputs, types)\n",
                ),
            ],
            "relay/build_module.py": [
                (
                    "        # pylint: enable=import-outside-toplevel\n"
                    "        # Setup the params.\n",
                    "        # pylint: enable=import-outside-toplevel\n"
                    "        mod = canonicalize_for_build(mod)\n"
                    "        # Setup the params.\n",
                ),
                (
                    "        mod = self._optimize(mod, raw_targets)\n",
                    "        mod = self._optimize(canonicalize_for_build(mod), raw_targets)\n",
                ),
                _after(
                    "from .transform import InferType\n",
                    "from .transform.canonicalize_prelu import canonicalize_for_build\n",
                ),
            ],
            "relay/backend/vm.py": [
                (
                    "            self._lower(mod, raw_targets)\n",
                    "            self._lower(canonicalize_for_build(mod), raw_targets)\n",
                ),
                (
                    "        return self._optimize(mod, raw_targets), self.get_params()\n",
                    "        return self._optimize(canonicalize_for_build(mod), raw_targets), "
                    "self.get_params()\n",
                ),
                _after(
                    "from tvm.target import Target\n",
                    "from tvm.relay.transform.canonicalize_prelu import canonicalize_for_build\n",
                ),
            ],
            "relay/backend/interpreter.py": [
                (
                    "    def __init__(self, mod, device, target):\n        self.mod = mod\n",
                    "    def __init__(self, mod, device, target):\n"
                    "        # pylint: disable=import-outside-toplevel\n"
                    "        from ..transform.canonicalize_prelu import canonicalize_for_build\n\n"
                    "        self.mod = canonicalize_for_build(mod)\n",
                ),
            ],
        },
    ),
    (
        "[Relay] Layout functions: per-channel and packed ops follow the convolution's layout",
        {
            "relay/op/nn/_nn.py": [
                _after(
                    'reg.register_broadcast_schedule("nn.prelu")\n',
                    "\n\n"
                    "def _register_layout_following():\n"
                    '    """The layout functions of ``follow_layout.FOLLOWERS``, '
                    "over the C++ ones\n"
                    '    (upstream these rules belong in their ops\' C++ FInferCorrectLayout)."""\n'
                    "    # pylint: disable=import-outside-toplevel\n"
                    "    from .follow_layout import FOLLOWERS, layout_function\n\n"
                    "    for name, follow in FOLLOWERS.items():\n"
                    '        stock = tvm.ir.Op.get(name).get_attr("FInferCorrectLayout")\n'
                    "        infer = layout_function(stock, follow)\n"
                    "        tvm.ir.register_op_attr("
                    'name, "FInferCorrectLayout", infer, level=11)\n'
                    "\n\n"
                    "_register_layout_following()\n",
                ),
            ],
        },
    ),
    (
        "[TOPI][x86] layout_transform into packed layouts: the block unrolled, not vectorized",
        {
            "relay/op/strategy/x86.py": [
                _after(
                    "from .generic import *\n",
                    "from .layout_transform_cpu import layout_transform_strategy_cpu\n\n"
                    'layout_transform_strategy.register("cpu", layout_transform_strategy_cpu)\n',
                ),
            ],
        },
    ),
    (
        "[Frontend][TFLite] PReLU per channel where its alpha allows",
        {
            "relay/frontend/tflite.py": [
                (
                    "        out = _op.nn.prelu(_op.reshape(in_expr, [-1]), alpha_expr, axis=0)\n"
                    "        out = _op.reshape(out, data_shape)\n"
                    "        return out\n",
                    "        out = _op.nn.prelu(_op.reshape(in_expr, [-1]), alpha_expr, axis=0)\n"
                    "        out = _op.reshape(out, data_shape)\n"
                    "        # pylint: disable=import-outside-toplevel\n"
                    "        from tvm.relay.transform import canonicalize_prelu\n\n"
                    "        ctx = tvm.transform.PassContext.current()\n"
                    "        if canonicalize_prelu.PASS_NAME in ctx.disabled_pass:\n"
                    "            return out\n"
                    "        new = canonicalize_prelu.per_channel_prelu(\n"
                    "            _infer_type(out), channel_axis=-1, source=out\n"
                    "        )\n"
                    "        return out if new is None else new\n",
                ),
            ],
        },
    ),
]


def _git(cwd, *args, check=True):
    return subprocess.run(
        ["git", *AUTHOR, *args], cwd=cwd, check=check, capture_output=True, text=True
    )


def installed_tvm():
    """The directory of the installed ``tvm`` package (without importing it)."""
    found = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('tvm').origin)"],
        env=dict(os.environ, TVM_CANONICALIZE_DEPTHWISE_OVERLAY="0"),
        check=True,
        capture_output=True,
        text=True,
    )
    return os.path.dirname(found.stdout.strip())


def edited_files():
    """The TVM files the series edits, relative to python/tvm."""
    return sorted({path for _, files in EDITS for path in files})


def new_files():
    """The project's files under python/tvm, relative to it."""
    found = []
    for dirpath, _, filenames in os.walk(OVERLAY):
        found += [
            os.path.relpath(os.path.join(dirpath, f), OVERLAY)
            for f in filenames
            if f.endswith(".py")
        ]
    return sorted(found)


def baseline(source, into):
    """A git repository at ``into`` holding ``python/tvm/<file>`` of every edited file of
    ``source`` (a directory holding TVM's ``tvm`` package), committed."""
    for rel in edited_files():
        dst = os.path.join(into, "python", "tvm", rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(source, rel), dst)
    _git(into, "init", "-q")
    _git(into, "add", "-A")
    _git(into, "commit", "-q", "-m", "apache/tvm v0.19.0 (the files the series edits)")


def apply_edit(text, anchor, replacement, where):
    """``text`` with its one ``anchor`` replaced; exits naming ``where`` otherwise."""
    count = text.count(anchor)
    if count != 1:
        raise SystemExit(f"{where}: anchor found {count} times, not once:\n{anchor}")
    return text.replace(anchor, replacement)


def make_series(source, out):
    """Commit the new files, then each group of edits; ``git format-patch`` them into ``out``."""
    work = tempfile.mkdtemp(prefix="upstream-")
    baseline(source, work)
    for rel in new_files():
        dst = os.path.join(work, "python", "tvm", rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(OVERLAY, rel), dst)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "[Relay][TOPI] Canonical depthwise convolution: new files")
    for title, files in EDITS:
        for rel, edits in files.items():
            path = os.path.join(work, "python", "tvm", rel)
            with open(path) as f:
                text = f.read()
            for anchor, replacement in edits:
                text = apply_edit(text, anchor, replacement, rel)
            with open(path, "w") as f:
                f.write(text)
        _git(work, "commit", "-q", "-am", title)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    _git(work, "format-patch", "-q", "-o", os.path.abspath(out), "HEAD~" + str(len(EDITS) + 1))
    shutil.rmtree(work)
    return sorted(os.path.join(out, p) for p in os.listdir(out) if p.endswith(".patch"))


def check_applies(source, patches):
    """``git apply --check`` of the whole series, in order, on an untouched baseline."""
    work = tempfile.mkdtemp(prefix="upstream-check-")
    baseline(source, work)
    for patch in patches:
        done = _git(work, "apply", "--check", patch, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{os.path.basename(patch)} does not apply:\n{done.stderr}")
        _git(work, "apply", patch)
    shutil.rmtree(work)


def patched_copy(patches, root=None):
    """A copy of the installed ``tvm`` package with the series applied: its ``sys.path``
    entry."""
    root = root or tempfile.mkdtemp(prefix="tvm-patched-")
    installed = installed_tvm()
    shutil.copytree(installed, os.path.join(root, "tvm"), symlinks=True)
    # libtvm.so finds LLVM at $ORIGIN/../llvm/lib (the xtc wheels' layout)
    llvm = os.path.join(os.path.dirname(installed), "llvm")
    if os.path.isdir(llvm):
        os.symlink(llvm, os.path.join(root, "llvm"))
    for patch in patches:
        # the series' paths are python/tvm/...; here the package is tvm/ at the root
        subprocess.run(["git", "apply", "-p2", "--unsafe-paths", patch], cwd=root, check=True)
    return root


def main(argv):
    """Makes and checks the series; with ``--test``, runs pytest on it. Returns the status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tvm-source", help="a v0.19.0 checkout (default: the installed package)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "upstream"))
    ap.add_argument("--test", action="store_true", help="run the tests on the patched tree")
    args, pytest_args = ap.parse_known_args(argv)
    pytest_args = [a for a in pytest_args if a != "--"]
    source = (
        os.path.join(os.path.abspath(args.tvm_source), "python", "tvm")
        if args.tvm_source
        else installed_tvm()
    )
    if not os.path.isdir(source):
        raise SystemExit(f"no TVM Python tree at {source}")
    patches = make_series(source, args.out)
    check_applies(source, patches)
    for patch in patches:
        print(os.path.relpath(patch, ROOT))
    print(f"{len(patches)} patches apply to {source}")
    if not args.test:
        return 0
    root = patched_copy(patches)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        TVM_CANONICALIZE_DEPTHWISE_OVERLAY="0",
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += pytest_args or ["-m", "not switch", os.path.join(ROOT, "tests")]
    try:
        return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
