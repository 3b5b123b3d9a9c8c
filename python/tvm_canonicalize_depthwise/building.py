"""Compiling the command's builds: ``relay.build`` with the patch on or off, each in a child
process of its own, so that a crash in TVM or LLVM costs that build only."""

# pylint: disable=import-outside-toplevel
import dataclasses
import json
import os
import sys
import tempfile
from typing import FrozenSet, Optional

from tvm_canonicalize_depthwise import switched
from tvm_canonicalize_depthwise.models import one_line


@dataclasses.dataclass(frozen=True)
class Build:
    """One compiled variant: the library loaded back and what the compile reported, or its
    error."""

    error: Optional[str] = None
    factory: object = None  # factory["default"](device) makes the executor
    library: object = None  # the compiled functions
    graph_json: Optional[str] = None
    params: Optional[dict] = None
    depthwise: FrozenSet[str] = frozenset()  # the compiled functions that hold a depthwise conv
    rewritten: int = 0  # convolutions the pass rewrote in this build
    library_path: Optional[str] = None  # the exported library (what a device is sent)
    in_child: bool = True  # compiled in a child process (False: here, as a fallback)


def build(mod, target, patch_on):
    """``relay.build`` at opt_level 3 with the patch on or off."""
    import tvm
    from tvm import relay

    with switched(patch_on), tvm.transform.PassContext(opt_level=3):
        return relay.build(mod, target=target)


def depthwise_functions(lib):
    """Names of the compiled functions that compute a depthwise convolution.

    Each compiled (fused) function keeps, in ``lib.function_metadata``, the Relay primitive
    function it was lowered from, after layout alteration. A function counts as depthwise when
    it holds a convolution (``nn.conv2d``, ``qnn.conv2d``, ``nn.contrib_*conv2d_NCHWc`` ...)
    whose shapes and ``groups`` make it depthwise by ``conv_form``, the same test the patch's
    dispatch uses, whatever its layout, or an op named depthwise.
    """
    import tvm
    from tvm import relay
    from tvm.relay.transform.canonicalize_depthwise import conv_call_form

    names = set()
    for name, info in lib.function_metadata.items():
        if name == "__tvm_main__":
            continue
        hits = []

        def visit(node, hits=hits):  # pylint: disable=dangerous-default-value
            if not (isinstance(node, relay.Call) and isinstance(node.op, tvm.ir.Op)):
                return
            if "depthwise" in node.op.name:
                hits.append(node)
            elif "conv2d" in node.op.name and hasattr(node.attrs, "groups"):
                try:
                    if conv_call_form(node).is_depthwise:
                        hits.append(node)
                except Exception:  # pylint: disable=broad-except
                    pass  # an attribute set conv_form cannot read: not counted

        for func in info.relay_primfuncs.values():
            relay.analysis.post_order_visit(func, visit)
        if hits:
            names.add(str(name))
    return frozenset(names)


def compile_request(directory):
    """Carry out the compile described in ``directory/request.json`` (see
    :func:`compile_in_child`).

    Writes ``lib.so``, ``params.bin`` and ``result.json`` (the graph, the depthwise functions,
    the pass's rewrite count) there, or ``result.json`` with the error and the stage it
    happened in. Runs in a process of its own (``python -m
    tvm_canonicalize_depthwise._compile_worker DIR``).
    """
    import tvm
    from tvm.relay.transform.canonicalize_depthwise import recording_rewrites

    with open(os.path.join(directory, "request.json"), encoding="utf-8") as stream:
        request = json.load(stream)
    stage = "compiling"
    try:
        with open(os.path.join(directory, "module.json"), encoding="utf-8") as stream:
            mod = tvm.ir.load_json(stream.read())
        with recording_rewrites() as rewrites:
            lib = build(mod, tvm.target.Target(request["target"]), request["patch_on"])
        result = {
            "graph_json": lib.get_graph_json(),
            "depthwise": sorted(depthwise_functions(lib)),
            "rewritten": len(rewrites),
        }
        stage = "exporting the library"
        fcompile = None
        if request.get("cross_compiler"):
            from tvm.contrib import cc

            fcompile = cc.cross_compiler(request["cross_compiler"])
        lib.export_library(os.path.join(directory, "lib.so"), fcompile=fcompile)
        with open(os.path.join(directory, "params.bin"), "wb") as stream:
            stream.write(bytes(tvm.runtime.save_param_dict(lib.get_params())))
    except Exception as err:  # pylint: disable=broad-except
        result = {"error": one_line(err), "stage": stage}
    with open(os.path.join(directory, "result.json"), "w", encoding="utf-8") as stream:
        json.dump(result, stream)


def compile_in_child(mod, target, patch_on, workdir, cross_compiler=None, local=True):
    """Compile ``mod`` in a child process, so that a crash inside TVM or LLVM (an assertion, a
    signal) costs this build only; the library comes back as a shared object (linked by
    ``cross_compiler`` where given), loaded here where ``local``. Returns a :class:`Build`.

    The child is a fresh interpreter, not a fork: this process may already have run compiled
    code (the ONNX frontend evaluates shapes with it), and TVM's thread pool does not survive
    a fork. It inherits this process's environment; the patch's switch is in its request. Where
    the child cannot export the library (no C compiler to link it with), the compile is done
    again here, unprotected.
    """
    import signal
    import subprocess

    import tvm
    from tvm.relay.transform.canonicalize_depthwise import recording_rewrites

    directory = tempfile.mkdtemp(prefix="build", dir=workdir)
    with open(os.path.join(directory, "module.json"), "w", encoding="utf-8") as stream:
        stream.write(tvm.ir.save_json(mod))
    with open(os.path.join(directory, "request.json"), "w", encoding="utf-8") as stream:
        json.dump(
            {"target": str(target), "patch_on": patch_on, "cross_compiler": cross_compiler}, stream
        )
    with open(os.path.join(directory, "stderr.log"), "w+", encoding="utf-8") as log:
        child = subprocess.run(
            [sys.executable, "-m", "tvm_canonicalize_depthwise._compile_worker", directory],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            check=False,
        )
        log.seek(0)
        lines = [line.strip() for line in log if line.strip()]
    result_path = os.path.join(directory, "result.json")
    if not os.path.exists(result_path):
        code = child.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        detail = f": {lines[-1][:300]}" if lines else ""
        return Build(error=f"the compiler crashed ({how}){detail}")
    with open(result_path, encoding="utf-8") as stream:
        result = json.load(stream)
    if "error" in result:
        if result["stage"] == "compiling" or not local:
            return Build(error=result["error"])
        with recording_rewrites() as rewrites:
            lib = build(mod, target, patch_on)
        return Build(
            factory=lib,
            library=lib.get_lib(),
            graph_json=lib.get_graph_json(),
            params=lib.get_params(),
            depthwise=depthwise_functions(lib),
            rewritten=len(rewrites),
            in_child=False,
        )
    library_path = os.path.join(directory, "lib.so")
    library = tvm.runtime.load_module(library_path) if local else None
    with open(os.path.join(directory, "params.bin"), "rb") as stream:
        params = tvm.runtime.load_param_dict(stream.read())
    return Build(
        factory=library,
        library=library,
        graph_json=result["graph_json"],
        params=params,
        depthwise=frozenset(result["depthwise"]),
        rewritten=result["rewritten"],
        library_path=library_path,
    )
