"""The canonical depthwise NumPy reference against TVM's own grouped-convolution references
(``tvm.topi.testing.conv2d_nchw_python`` and ``conv3d_ncdhw_python`` with ``groups``, kernels
dilated by ``dilate_python``), on the cases those cover (floats)."""

import itertools

import numpy as np
import pytest

import tvm.testing
import tvm.topi.testing
from tvm.topi.testing import depthwise_conv2d_canonical_python as ref

CASES_2D = [
    # channels, multiplier, (H, W), (kH, kW), strides, (top, left, bottom, right), dilation
    (3, 1, (9, 11), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (4, 2, (8, 7), (3, 5), (2, 1), (0, 2, 1, 0), (1, 1)),
    (2, 3, (10, 10), (3, 3), (1, 2), (2, 1, 0, 3), (2, 1)),
    (5, 4, (6, 13), (1, 4), (1, 3), (0, 0, 0, 0), (1, 2)),
    (1, 1, (5, 5), (5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),
]


def _dilated(weight, dilation):
    return tvm.topi.testing.dilate_python(weight, (1, 1) + tuple(dilation))


@pytest.mark.parametrize("case", CASES_2D)
def test_conv2d_matches_topi_grouped_conv(case):
    channels, multiplier, size, kernel, strides, pads, dilation = case
    rng = np.random.default_rng(sum(size) + multiplier)
    data = rng.uniform(-1, 1, (2, channels) + size).astype("float32")
    weight = rng.uniform(-1, 1, (channels * multiplier, 1) + kernel).astype("float32")
    got = ref.depthwise_conv2d_nchw(data, weight, strides, pads, dilation)
    expected = tvm.topi.testing.conv2d_nchw_python(
        data, _dilated(weight, dilation), strides, list(pads), groups=channels
    )
    tvm.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_integer_sums_are_exact():
    """int8 data and weights summed in int64: compared with the same sums in float64, which
    holds every such sum exactly."""
    rng = np.random.default_rng(7)
    data = rng.integers(-128, 128, (1, 3, 9, 9)).astype("int8")
    weight = rng.integers(-128, 128, (6, 1, 3, 3)).astype("int8")
    got = ref.depthwise_conv2d_nchw(data, weight, (1, 1), (1, 1, 1, 1), out_dtype="int32")
    expected = tvm.topi.testing.conv2d_nchw_python(
        data.astype("float64"), weight.astype("float64"), (1, 1), [1, 1, 1, 1], groups=3
    )
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected.astype(np.int32))


@pytest.mark.parametrize(
    "multiplier,strides,dilation", itertools.product((1, 2), ((1, 1, 1), (2, 1, 2)), ((1, 1, 1),))
)
def test_conv3d_matches_topi_grouped_conv(multiplier, strides, dilation):
    rng = np.random.default_rng(multiplier)
    data = rng.uniform(-1, 1, (1, 3, 5, 6, 7)).astype("float32")
    weight = rng.uniform(-1, 1, (3 * multiplier, 1, 2, 3, 3)).astype("float32")
    pads = (1, 0, 1, 0, 1, 1)
    got = ref.depthwise_conv3d_ncdhw(data, weight, strides, pads, dilation)
    expected = tvm.topi.testing.conv3d_ncdhw_python(data, weight, strides, list(pads), groups=3)
    tvm.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_multiplier_form_maps_to_canonical():
    """``[C, m, kH, kW]`` to ``[C*m, 1, kH, kW]``: TVM's multiplier-form reference
    (``depthwise_conv2d_python_nchw``, which takes that weight) gives what the canonical one
    gives on the converted weight."""
    rng = np.random.default_rng(3)
    data = rng.uniform(-1, 1, (1, 4, 8, 8)).astype("float32")
    weight = rng.uniform(-1, 1, (4, 3, 3, 3)).astype("float32")
    expected = tvm.topi.testing.depthwise_conv2d_python_nchw(data, weight, (1, 1), "SAME")
    got = ref.depthwise_conv2d_nchw(data, ref.multiplier_to_canonical(weight), (1, 1), (1, 1, 1, 1))
    tvm.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
    tvm.testing.main()
