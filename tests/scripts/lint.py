"""Lint, as CI runs it before the tests: black on the whole tree, pylint (``.pylintrc``: TVM's
settings) on ``python/``.

    .venv/bin/python tests/scripts/lint.py

The files under ``python/tvm/`` are new modules of TVM's own packages, with relative imports
into them, so pylint reads them where they would live: in a copy of the installed ``tvm``
package's Python files with the patch's files laid on top. The install glue
(``python/tvm_canonicalize_depthwise``) is linted where it is. Not yet linted by pylint:
``bench/`` and ``tests/``.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATCH = ROOT / "python" / "tvm"


def _run(args, cwd=ROOT):
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run(args, cwd=cwd, check=False).returncode


def _patched_tree(into):
    """The installed ``tvm`` package's Python files, the patch's on top."""
    import tvm  # pylint: disable=import-outside-toplevel

    installed = Path(tvm.__file__).parent

    def not_python(directory, names):
        return [n for n in names if not n.endswith(".py") and not Path(directory, n).is_dir()]

    shutil.copytree(installed, into / "tvm", ignore=not_python)
    files = sorted(PATCH.rglob("*.py"))
    for path in files:
        target = into / "tvm" / path.relative_to(PATCH)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return [str(Path("tvm") / path.relative_to(PATCH)) for path in files]


def main():
    pylint = [sys.executable, "-m", "pylint", f"--rcfile={ROOT / '.pylintrc'}"]
    failed = _run(
        [sys.executable, "-m", "black", "--check", "-q", "python", "bench", "tests", "setup.py"]
    )
    failed |= _run(pylint + ["python/tvm_canonicalize_depthwise"])
    with tempfile.TemporaryDirectory(prefix="patched-tvm-") as tree:
        files = _patched_tree(Path(tree))
        failed |= _run(pylint + files, cwd=tree)
    print("lint: " + ("failed" if failed else "clean"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
