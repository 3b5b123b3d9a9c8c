"""Lint, as CI runs it before the tests: black on the whole tree, pylint (``.pylintrc``: TVM's
settings) on ``python/``, ``bench/``, ``tests/`` and ``docs/``.

    .venv/bin/python tests/scripts/lint.py

The files under ``python/tvm/`` are new modules of TVM's own packages, with relative imports
into them, so pylint reads them where they would live: in a copy of the installed ``tvm``
package's Python files with the patch's files laid on top. The install glue
(``python/tvm_canonicalize_depthwise``) is linted where it is.

The scripts and tests (``bench/*.py``, ``docs/*.py``, ``tests/**/*.py``: the files git tracks,
or outside a git checkout the files there; never ``bench/cache/``, which holds virtualenvs)
are linted with the same settings, as TVM lints its tests, but for one: a test function
(``test_*``) needs no docstring. Where tests and benchmark scripts differ from library code on
purpose (imports of optional packages inside functions, pytest fixtures as parameters,
imports after a ``sys.path`` change) each file says so with a ``# pylint: disable=`` line.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATCH = ROOT / "python" / "tvm"
# the scripts and tests: git pathspecs, and the globs that stand in for them outside a checkout
SCRIPTS = ("bench/*.py", "docs/*.py", "tests/*.py")
SCRIPT_GLOBS = ("bench/*.py", "docs/*.py", "tests/**/*.py")
# what tests need not document: their test functions (and, as everywhere, private names)
SCRIPT_OPTIONS = ["--no-docstring-rgx=^_|^test_"]


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


def _scripts():
    """The scripts and tests to lint, relative to the root: as git tracks them (a git pathspec's
    ``*`` spans directories), else found by glob; only those present."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", *SCRIPTS],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(ROOT)) for g in SCRIPT_GLOBS for p in ROOT.glob(g)]
    return sorted({name for name in listed if name and (ROOT / name).is_file()})


def main():
    """Runs black and pylint on the tree; prints ``lint: clean`` or ``lint: failed``."""
    pylint = [sys.executable, "-m", "pylint", f"--rcfile={ROOT / '.pylintrc'}"]
    black = [sys.executable, "-m", "black", "--check", "-q"]
    failed = _run(black + ["python", "bench", "tests", "docs", "setup.py"])
    failed |= _run(pylint + ["python/tvm_canonicalize_depthwise"])
    scripts = _scripts()
    if scripts:
        failed |= _run(pylint + SCRIPT_OPTIONS + scripts)
    else:
        print("no scripts or tests found to lint", flush=True)
        failed = 1
    with tempfile.TemporaryDirectory(prefix="patched-tvm-") as tree:
        files = _patched_tree(Path(tree))
        failed |= _run(pylint + files, cwd=tree)
    print("lint: " + ("failed" if failed else "clean"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
