"""Why EEGNet's depthwise time misses 0.6x stock on the NCHW path: its fused epilogue.

EEGNet's m = 2 depthwise conv (8 channels of 22x256, a 22x1 kernel) is fused with batch-norm
and ELU. ELU's ``exp`` becomes a call of the C library's scalar ``expf`` per element unless
Relay's ``FastMath`` pass (opt_level 4, or ``required_pass``) replaces it with TVM's vectorized
``fast_exp``. This times the layer alone, stock (``TVM_CANONICALIZE_DEPTHWISE=0``) against the
project (``=1``), each in a process of its own, in both weight forms: the conv alone, the conv
with the ELU epilogue, and the same with ``FastMath``.

    python bench/epilogue.py            # 2 threads, host target
"""

# TVM is imported in the worker processes only, each run with its own switch
# pylint: disable=import-outside-toplevel
import os
import subprocess
import sys

CASES = [("conv", False, False), ("conv + ELU", True, False), ("conv + ELU, FastMath", True, True)]


def layer(epilogue, form):
    """EEGNet's depthwise layer in ``form``, with the ELU epilogue if ``epilogue``."""
    import numpy as np
    import tvm
    from tvm import relay

    rng = np.random.default_rng(0)
    x = relay.var("x", shape=(1, 8, 22, 256))
    shape = (8, 2, 22, 1) if form == "multiplier" else (16, 1, 22, 1)
    y = relay.nn.conv2d(
        x,
        relay.const(rng.uniform(-1, 1, shape).astype("float32")),
        groups=8,
        channels=16,
        kernel_size=(22, 1),
    )
    y = relay.add(y, relay.const(rng.uniform(-1, 1, (16, 1, 1)).astype("float32")))
    if epilogue:  # ELU as the TFLite and ONNX frontends write it
        y = relay.add(
            relay.nn.relu(y),
            relay.multiply(
                relay.const(-1.0), relay.nn.relu(relay.subtract(relay.const(1.0), relay.exp(y)))
            ),
        )
    return tvm.IRModule.from_expr(relay.Function([x], y))


def worker():
    """Times each case in both forms in this process; prints ``label|form|µs|target`` lines."""
    import numpy as np
    import tvm
    from tvm import relay
    from tvm.contrib import graph_executor

    target = f"llvm -mcpu={tvm.target.codegen.llvm_get_system_cpu()}"
    for label, epilogue, fast in CASES:
        for form in ("multiplier", "canonical"):
            with tvm.transform.PassContext(opt_level=3, required_pass=["FastMath"] if fast else []):
                lib = relay.build(layer(epilogue, form), target=target)
            module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
            module.set_input(
                "x", np.random.default_rng(1).uniform(-1, 1, (1, 8, 22, 256)).astype("float32")
            )
            timer = module.module.time_evaluator("run", tvm.cpu(), number=2000, repeat=7)
            print(f"{label}|{form}|{min(timer().results) * 1e6:.2f}|{target}", flush=True)


def main():
    """Runs a worker stock and one with the patch; prints the table."""
    results = {}
    for mode, switch in (("stock", "0"), ("project", "1")):
        env = {
            **os.environ,
            "TVM_CANONICALIZE_DEPTHWISE": switch,
            "TVM_NUM_THREADS": "2",
            "TOPHUB_LOCATION": "NONE",
        }
        out = subprocess.run(
            [sys.executable, __file__, "--worker"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for line in out.splitlines():
            label, form, us, target = line.split("|")
            results[(mode, label, form)] = float(us)
    print(f"EEGNet's m = 2 22x1 depthwise layer, {target}, 2 threads, best of 7 x 2000 runs (µs)")
    print("| layer | form | stock µs | project µs | project ÷ stock |")
    print("| --- | --- | ---: | ---: | ---: |")
    for label, _, _ in CASES:
        for form in ("multiplier", "canonical"):
            stock, project = results[("stock", label, form)], results[("project", label, form)]
            print(f"| {label} | {form} | {stock:.2f} | {project:.2f} | {project / stock:.2f} |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        main()
