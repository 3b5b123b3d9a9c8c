"""Running the command's builds: their outputs against the reference, their times, and the share
of depthwise functions in them.

tvmc's runner (``tvmc.runner.run_module``) runs and times one exported package per call; the
builds here are timed in alternating rounds, in memory, so that all see the same machine noise,
which takes the graph executor and its ``time_evaluator`` directly."""

# pylint: disable=import-outside-toplevel
import dataclasses
from typing import Optional, Tuple

import numpy as np

from tvm_canonicalize_depthwise import models, remote
from tvm_canonicalize_depthwise.console import progress, quiet_stderr
from tvm_canonicalize_depthwise.models import one_line

RELATIVE_TOLERANCE = 1e-3
"""Float outputs match when ``max |TVM - reference| <= 1e-3 * max(1, max |reference|)``;
integer (quantized) outputs may differ by one step of rounding."""


@dataclasses.dataclass(frozen=True)
class Run:
    """What one build gave: its outputs, and its times (ms) and depthwise share where they were
    measured on a device; ``module`` the executor where it runs here (timed by
    :func:`time_here`)."""

    outputs: list
    latencies: Tuple[float, ...] = ()
    share: Optional[float] = None
    module: object = None


def run_here(build, feeds):
    """``build`` run once on ``feeds`` on this machine (timed later, with the others)."""
    import tvm
    from tvm.contrib import graph_executor

    module = graph_executor.GraphModule(build.factory["default"](tvm.cpu(0)))
    module.set_input(**feeds)
    module.run()
    return Run(remote.outputs_of(module), module=module)


def run_on(device, build, feeds, repeat):
    """``build`` run and timed on an RPC ``device``; raises :class:`remote.RemoteError`."""
    outputs, latencies, share = device.measure(build, feeds, repeat)
    return Run(outputs, tuple(latencies), share)


def max_abs_err(got, expected):
    """The largest absolute difference over all outputs (inf where their shapes differ)."""
    if len(got) != len(expected):
        return float("inf")
    err = 0.0
    for a, b in zip(got, expected):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float("inf")
        if a.size:
            err = max(err, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
    return err


def tolerance(expected):
    """What ``max_abs_err`` may be: see :data:`RELATIVE_TOLERANCE`."""
    if all(np.asarray(e).dtype.kind in "iub" for e in expected):
        return 1.0
    scale = max([1.0] + [float(np.max(np.abs(e))) for e in expected if np.asarray(e).size])
    return RELATIVE_TOLERANCE * scale


def _time_ms(module, repeat):
    import tvm

    timer = module.module.time_evaluator("run", tvm.cpu(0), number=10, repeat=repeat)
    return float(np.median(timer().results)) * 1e3


def _depthwise_share(build, feeds, repeat):
    """Share of the per-node time (TVM's debug executor) spent in depthwise functions."""
    import tvm

    with quiet_stderr():
        return remote.depthwise_share(
            build.graph_json,
            build.library,
            tvm.cpu(0),
            build.depthwise,
            {**build.params, **feeds},
            repeat,
        )


def reference_outputs(model, feeds, fallback):
    """``(label, outputs)``: the model's own engine's outputs, else ``fallback()``'s
    ``(label, outputs)`` with the reason in its label."""
    engine, expected = models.reference_engine(model), None
    if engine is not None:
        reference, run_reference = engine
        progress(f"running the reference ({reference})...")
        try:
            with quiet_stderr():
                expected = [np.asarray(o) for o in run_reference(feeds)]
        except Exception as err:  # pylint: disable=broad-except
            why = f"{reference} failed on the model: {one_line(err)}"
    else:
        why = "no engine for the model's format is installed"
    if expected is None:
        label, expected = fallback()
        reference = f"{label} ({why})"
    return reference, expected


def time_here(runs, repeat, rounds=3):
    """The latencies (ms) of every run, timing those that run here in alternating rounds, so
    that all see the same machine noise."""
    latencies = {key: list(run.latencies) for key, run in runs.items()}
    local = {key: run for key, run in runs.items() if run.module is not None}
    if local:
        progress(f"timing {len(local)} builds ({repeat} x 10 runs each, {rounds} rounds)...")
        for _ in range(rounds):
            for key, run in local.items():
                latencies[key].append(_time_ms(run.module, repeat))
    return latencies


def depthwise_share(build, run, feeds, repeat):
    """The depthwise share of ``build``: measured on its device, or here."""
    return run.share if run.module is None else _depthwise_share(build, feeds, repeat)
