"""Exports one torchvision network with seeded random weights to ONNX, as PyTorch users arrive.

    python bench/export_torchvision.py NAME OUT_DIR      # in the torch venv of bench/sources.py

Writes ``OUT_DIR/NAME.onnx`` (``torch.onnx.export``, TorchScript exporter, opset 13, batch 1,
224x224) and ``OUT_DIR/NAME.npz``: ``input_nhwc`` (seeded, uniform in [-1, 1], NHWC as the
other benchmark networks store it) and ``keras_output`` (the name the benchmarks read: here
PyTorch's own output, the engine the model came from). Runs in its own venv: torch and TVM
are never imported into one process.

Untrained batch norms (mean 0, variance 1) let the activations of a deep network fade to
nothing (an output of 1e-14 for EfficientNet-B0), against which any answer looks right; so the
batch norms' statistics are first estimated from seeded random batches, as training would,
and the activations keep their scale. Prints ``{"weights_sha256": ...}``: the digest of the
seeded initial weights (parameters and buffers in order, before the statistics), which the
caller checks against the one it pinned: the same architecture and initialisation on any
machine (the statistics then depend on the host's float arithmetic in the last bits).
"""

import hashlib
import json
import os
import sys

import numpy as np
import torch
import torchvision

SIZE = 224
CALIBRATION = (4, 8)  # batches x images for the batch norms' statistics
OPSET = 13  # TVM 0.19's ONNX frontend and every peer read it


def calibrate(model, rng):
    """Batch-norm statistics from seeded random batches (a cumulative average)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(CALIBRATION[0]):
            model(
                torch.from_numpy(
                    rng.uniform(-1, 1, (CALIBRATION[1], 3, SIZE, SIZE)).astype("float32")
                )
            )


def main(argv):
    """Exports network ``NAME`` to ``OUT_DIR`` (``argv``); prints the weights' digest."""
    name, out = argv
    torch.manual_seed(0)  # the weights: torchvision's own initialisation, seeded
    torch.set_num_threads(2)
    model = getattr(torchvision.models, name)(weights=None)
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    rng = np.random.default_rng(0)
    calibrate(model, rng)
    model.eval()
    x = rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype("float32")
    nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        y = model(nchw).numpy()
    torch.onnx.export(
        model,
        (nchw,),
        os.path.join(out, f"{name}.onnx"),
        opset_version=OPSET,
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
    )
    np.savez(os.path.join(out, f"{name}.npz"), input_nhwc=x, keras_output=y)
    print(json.dumps({"weights_sha256": digest.hexdigest()}))


if __name__ == "__main__":
    main(sys.argv[1:])
