"""Test-wide environment: no TopHub download (no network here), two threads like the benchmarks."""

import inspect
import os

import pytest

os.environ["TOPHUB_LOCATION"] = "NONE"
# set, not defaulted: the host-target fallbacks the tests check read it, and must see two
os.environ["TVM_NUM_THREADS"] = "2"
os.environ.pop("TVM_CANONICALIZE_DEPTHWISE", None)


def pytest_sessionstart(session):  # pylint: disable=unused-argument
    """On a TVM that carries the patch itself (the glue off: upstream_patch.py --test), lay on
    the glue's code generator fixes, which upstream are C++ edits (docs/upstream.md, "Edits
    that need C++": LLVM 21+ debug info, the cast of a broadcast) and not in the series."""
    if os.environ.get("TVM_CANONICALIZE_DEPTHWISE_OVERLAY") == "0":
        # only this run needs it (it imports TVM)
        from tvm_canonicalize_depthwise import (  # pylint: disable=import-outside-toplevel
            llvm_compat,
        )

        llvm_compat.register_llvm_build(gate=lambda: True)


_SWITCH_WORDS = ("ENV_VAR", "switched(", "TVM_CANONICALIZE_DEPTHWISE", "stock")


def pytest_configure(config):
    """Declares the ``switch`` marker."""
    config.addinivalue_line(
        "markers",
        "switch: turns the patch off or compares with stock TVM; upstream (a TVM that carries "
        "the patch itself: tests/scripts/upstream_patch.py --test) has no switch",
    )


def pytest_collection_modifyitems(items):
    """Mark ``switch`` every test whose code or fixtures name the switch or stock TVM."""
    for item in items:
        function = getattr(item, "function", None)
        source = inspect.getsource(function) if function is not None else ""
        names = " ".join(getattr(item, "fixturenames", ())) + " " + item.name
        if any(word in source or word in names for word in _SWITCH_WORDS):
            item.add_marker(pytest.mark.switch)
