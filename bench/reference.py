"""The ground truth every engine is checked against: the project's NumPy reference.

It is loaded from its file, ``python/tvm/topi/testing/depthwise_conv2d_canonical_python.py``
(NumPy only), so that the TensorFlow venv of ``make_tflite_models.py`` can use it without TVM
or the project.
"""

import importlib.util
from pathlib import Path

import numpy as np

RTOL = 1e-4
ATOL = 1e-4

_SOURCE = (
    Path(__file__).resolve().parents[1]
    / "python"
    / "tvm"
    / "topi"
    / "testing"
    / "depthwise_conv2d_canonical_python.py"
)
_SPEC = importlib.util.spec_from_file_location("_depthwise_reference", _SOURCE)
_REFERENCE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_REFERENCE)
depthwise_conv2d_nchw = _REFERENCE.depthwise_conv2d_nchw  # NCHW, canonical weight, int or float


def reference_output(workload):
    """The expected NCHW output of a :class:`workloads.Workload`."""
    return _REFERENCE.depthwise_conv2d_nchw(
        workload.input_nchw(), workload.weight_canonical(), (workload.stride,) * 2, workload.pads
    )


def check(got, expected):
    """``(ok, max_abs_err)`` of ``got`` against ``expected`` with RTOL/ATOL; the error is
    None if the shapes differ."""
    got = np.asarray(got)
    if got.shape != expected.shape:
        return False, None
    err = float(np.max(np.abs(got.astype(np.float64) - expected)))
    return bool(np.allclose(got, expected, rtol=RTOL, atol=ATOL)), err
