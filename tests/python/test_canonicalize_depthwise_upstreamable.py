"""The files under ``python/tvm/`` are meant to go upstream as they are: TVM's imports only."""

import ast
import sys
from pathlib import Path

import pytest

import tvm.testing

TVM_TREE = Path(__file__).resolve().parents[2] / "python" / "tvm"
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


if __name__ == "__main__":
    tvm.testing.main()
