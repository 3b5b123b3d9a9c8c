"""What TVM makes of a Relay module: implementations chosen, alter-layout result, compiled code.

Imports nothing of the project, so that it runs in a process where the project is absent:

    python -S tests/python/relay/stock_tvm.py SITE_PACKAGES CASES.json

``-S`` skips the ``.pth`` files, and with them the project's start-up hook (and its editable
install); the script then puts ``SITE_PACKAGES`` (where TVM is installed) on ``sys.path`` by
hand, checks that the project did not load, and prints :func:`describe` of every case as JSON.
``CASES.json`` is a list of ``{"module": <tvm.ir.save_json>, "target": str}``. The tests call
:func:`describe` in a patched process too and compare.
"""

import hashlib
import json
import logging
import re
import sys

# Object addresses that TVM prints: targets' ids in Relay text, buffers' in LLVM's TBAA names.
_ADDRESS = re.compile(r"\b(id=|0x)[0-9a-f]{6,}\b")


def _without_addresses(text):
    return _ADDRESS.sub(r"\1?", text)


def llvm_ir_digest(lib):
    """A SHA-256 of the LLVM IR of ``lib`` (a ``relay.build`` result), addresses left out."""
    return hashlib.sha256(_without_addresses(lib.get_lib().get_source("ll")).encode()).hexdigest()


class _Implementations(logging.Handler):
    """Collects TVM's "Using <implementation> for <op>" records (logger ``te_compiler``)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.chosen = []

    def emit(self, record):
        if record.getMessage().startswith("Using "):
            implementation, _, op = record.args[:3]
            self.chosen.append(f"{op}: {implementation}")


def describe(mod, target):
    """A JSON-able description of ``mod`` built for ``target`` at opt_level 3.

    Returns
    -------
    description : dict
        ``implementations``: the strategy implementation chosen for each operator, in order;
        ``optimized``: the Relay text after ``relay.optimize`` (alter-layout and fusion
        included); ``graph``: the graph executor's JSON; ``llvm_ir``: :func:`llvm_ir_digest`
        of the compiled module; ``build_error``: the last line of the build's error where it
        failed (``graph`` and ``llvm_ir`` are then None). Object addresses are left out.
    """
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relay  # pylint: disable=import-outside-toplevel

    target = tvm.target.Target(target)
    log = logging.getLogger("te_compiler")
    handler = _Implementations()
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    lib = error = None
    try:
        with tvm.transform.PassContext(opt_level=3):
            optimized, _ = relay.optimize(mod, target=target)
            try:
                lib = relay.build(mod, target=target)
            except tvm.TVMError as failure:  # stock fails some arm_cpu builds in LLVM
                error = _without_addresses(str(failure).strip().splitlines()[-1])
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return {
        "implementations": handler.chosen,
        "optimized": _without_addresses(optimized.astext(show_meta_data=False)),
        "graph": lib and lib.get_graph_json(),
        "llvm_ir": lib and llvm_ir_digest(lib),
        "build_error": error,
    }


def main(site_packages, cases_path):
    """Describe every case of ``cases_path`` in this process, which must be stock TVM."""
    sys.path.insert(0, site_packages)
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relay  # pylint: disable=import-outside-toplevel

    loaded = [name for name in sys.modules if name.startswith("tvm_canonicalize_depthwise")]
    if loaded or hasattr(relay.transform, "CanonicalizeDepthwise"):
        raise SystemExit(f"stock_tvm: the project is loaded in this process: {loaded}")
    with open(cases_path, encoding="utf-8") as cases:
        cases = json.load(cases)
    descriptions = [describe(tvm.ir.load_json(case["module"]), case["target"]) for case in cases]
    print(json.dumps({"tvm": tvm.__file__, "descriptions": descriptions}))


if __name__ == "__main__":
    main(*sys.argv[1:])
