"""The command's builds on a device behind TVM's RPC tracker (``--rpc-tracker``/``--rpc-key``,
the names tvmc uses): each build is uploaded, run, checked and timed in a session of its own.

A board serves one session at a time, so the builds are measured one after the other (the
local command alternates them instead); every session has a time limit, after which the
device's server ends it and the build is reported as failed.
"""

# pylint: disable=import-outside-toplevel
import os
import shutil
import tempfile

import numpy as np

SESSION_TIMEOUT = 600


class RemoteError(RuntimeError):
    """A device session failed (the message says how)."""


def parse_tracker(text):
    """``HOST:PORT`` -> ``(host, port)``; raises ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--rpc-tracker {text!r} is not HOST:PORT")
    return host, int(port)


def cross_compiler_for(target, given=None):
    """The C++ compiler that links libraries for ``target`` (a ``tvm.target.Target``):
    ``given``, the host's where the target's triple is the host's, else ``<triple>-g++``
    from PATH; ValueError where there is none."""
    from tvm.target import codegen

    triple = str(target.attrs.get("mtriple", ""))
    if given:
        if not shutil.which(given):
            raise ValueError(f"--cross-compiler {given!r} is not on PATH")
        return given
    if not triple or triple == codegen.llvm_get_system_triple():
        return None
    guess = f"{triple}-g++"
    if shutil.which(guess):
        return guess
    raise ValueError(
        f"no C++ compiler links for {triple}: install {guess} or give " "--cross-compiler"
    )


def cross_export(cross_compiler, mod):
    """Export ``mod`` as a shared library linked by ``cross_compiler``; returns its path.

    MetaSchedule's ``LocalBuilder`` exports a tar that the device would have to link itself;
    ``LocalBuilder(f_export=functools.partial(cross_export, "aarch64-linux-gnu-g++"))`` links
    on the host instead, for a device without a compiler."""
    from tvm.contrib import cc

    path = os.path.join(tempfile.mkdtemp(prefix="canonicalize-depthwise-"), "mod.so")
    mod.export_library(path, fcompile=cc.cross_compiler(cross_compiler))
    return path


class Device:
    """A device reached through the tracker at ``tracker`` (host, port) under ``key``."""

    def __init__(self, tracker, key, session_timeout=SESSION_TIMEOUT):
        self.tracker, self.key, self.session_timeout = tracker, key, session_timeout

    def __str__(self):
        return f"{self.key} via the RPC tracker at {self.tracker[0]}:{self.tracker[1]}"

    def check(self):
        """Raise RemoteError unless the tracker answers and knows the key."""
        from tvm import rpc

        try:
            summary = rpc.connect_tracker(*self.tracker).summary()
        except Exception as err:  # pylint: disable=broad-except
            raise RemoteError(
                f"no RPC tracker at {self.tracker[0]}:{self.tracker[1]}: "
                f"{str(err).strip().splitlines()[-1] if str(err) else err!r}"
            )
        if self.key not in summary.get("queue_info", {}):
            known = ", ".join(sorted(summary.get("queue_info", {}))) or "none"
            raise RemoteError(
                f"the RPC tracker has no device with key {self.key!r} " f"(keys: {known})"
            )

    def measure(self, build, feeds, repeat, rounds=3):
        """Upload ``build``'s library (``build.library_path``), run it on ``feeds``, time it;
        returns ``(outputs, latencies_ms, depthwise_share)``."""
        from tvm import rpc
        from tvm.contrib import graph_executor

        try:
            session = rpc.connect_tracker(*self.tracker).request(
                self.key, priority=1, session_timeout=self.session_timeout
            )
            name = os.path.basename(build.library_path)
            session.upload(build.library_path, name)
            library = session.load_module(name)
            device = session.cpu(0)
            module = graph_executor.GraphModule(library["default"](device))
            module.set_input(**feeds)
            module.run()
            outputs = outputs_of(module)
            timer = module.module.time_evaluator("run", device, number=10, repeat=repeat)
            latencies = [float(np.median(timer().results)) * 1e3 for _ in range(rounds)]
            share = depthwise_share(
                build.graph_json,
                library,
                device,
                build.depthwise,
                {**build.params, **feeds},
                repeat,
            )
        except Exception as err:  # pylint: disable=broad-except
            text = str(err).strip().splitlines()
            raise RemoteError(f"on {self}: {text[-1] if text else repr(err)}") from None
        return outputs, latencies, share


def outputs_of(module):
    """Every output of a graph executor module that has run, as NumPy arrays."""
    return [module.get_output(i).numpy() for i in range(module.get_num_outputs())]


def depthwise_share(graph_json, library, device, depthwise, inputs, repeat):
    """Share of the per-node time (TVM's debug executor) spent in the ``depthwise`` functions;
    ``inputs``: the params and the feeds. None where the runtime has no debug executor."""
    import json

    from tvm.contrib.debugger import debug_executor

    try:
        with tempfile.TemporaryDirectory(prefix="canonicalize-depthwise-") as dump_root:
            module = debug_executor.create(graph_json, library, device, dump_root=dump_root)
            module.set_input(**inputs)
            times = module.run_individual(number=10, repeat=max(1, min(repeat, 5)))
    except Exception:  # pylint: disable=broad-except  # a runtime built without the profiler
        return None
    total = dw_time = 0.0
    for node, node_times in zip(json.loads(graph_json)["nodes"], times):
        seconds = float(np.median(node_times)) if len(node_times) else 0.0
        total += seconds
        if node.get("attrs", {}).get("func_name") in depthwise:
            dw_time += seconds
    return dw_time / total if total > 0 else 0.0
