# Licensed to the Apache Software Foundation (ASF) under one
# or more contributor license agreements.  See the NOTICE file
# distributed with this work for additional information
# regarding copyright ownership.  The ASF licenses this file
# to you under the Apache License, Version 2.0 (the
# "License"); you may not use this file except in compliance
# with the License.  You may obtain a copy of the License at
#
#   http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing,
# software distributed under the License is distributed on an
# "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
# KIND, either express or implied.  See the License for the
# specific language governing permissions and limitations
# under the License.
"""Depthwise convolution in NumPy, canonical weight ``[C*m, 1, kH, kW]``: the reference of the
canonical depthwise tests (NumPy only: benchmarks load it without TVM)."""

import numpy as np


def to_layout(array, src, dst):
    """Transpose ``array`` from layout ``src`` to ``dst`` (same letters, e.g. OIHW -> HWOI)."""
    return np.ascontiguousarray(array.transpose([src.index(axis) for axis in dst]))


def depthwise_conv2d_nchw(
    data, weight, strides=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), out_dtype=None
):
    """Depthwise convolution, NCHW data and a canonical OIHW weight ``[C*m, 1, kH, kW]``.

    ``padding`` is (top, left, bottom, right). Products and sums are formed in ``out_dtype``
    (default: float64 for floats, int64 for integers), then cast to ``out_dtype`` or the
    data's dtype.
    """
    batch, channels, height, width = data.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    multiplier = out_channels // channels
    acc_dtype = np.float64 if np.issubdtype(data.dtype, np.floating) else np.int64
    top, left, bottom, right = padding
    padded = np.pad(data.astype(acc_dtype), ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_h = (height + top + bottom - (kernel_h - 1) * dilation[0] - 1) // strides[0] + 1
    out_w = (width + left + right - (kernel_w - 1) * dilation[1] - 1) // strides[1] + 1
    # Output channel o reads input channel o // m.
    source = np.repeat(padded, multiplier, axis=1)
    out = np.zeros((batch, out_channels, out_h, out_w), acc_dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            y0, x0 = i * dilation[0], j * dilation[1]
            window = source[
                :,
                :,
                y0 : y0 + strides[0] * (out_h - 1) + 1 : strides[0],
                x0 : x0 + strides[1] * (out_w - 1) + 1 : strides[1],
            ]
            out += window * weight[:, 0, i, j].astype(acc_dtype)[None, :, None, None]
    return out.astype(out_dtype or data.dtype)


def depthwise_conv3d_ncdhw(
    data, weight, strides=(1, 1, 1), padding=(0,) * 6, dilation=(1, 1, 1), out_dtype=None
):
    """Depthwise 3-D convolution, NCDHW data and a canonical OIDHW weight ``[C*m, 1, kD, kH, kW]``.

    ``padding`` is (front, top, left, back, bottom, right), as TVM orders it. Accumulation and
    the result's dtype as in :func:`depthwise_conv2d_nchw`.
    """
    batch, channels = data.shape[:2]
    out_channels, _, *kernel = weight.shape
    multiplier = out_channels // channels
    acc_dtype = np.float64 if np.issubdtype(data.dtype, np.floating) else np.int64
    before, after = padding[:3], padding[3:]
    padded = np.pad(data.astype(acc_dtype), [(0, 0), (0, 0)] + list(zip(before, after)))
    out_size = [
        (size + lo + hi - (k - 1) * dil - 1) // stride + 1
        for size, lo, hi, k, dil, stride in zip(
            data.shape[2:], before, after, kernel, dilation, strides
        )
    ]
    # Output channel o reads input channel o // m.
    source = np.repeat(padded, multiplier, axis=1)
    out = np.zeros((batch, out_channels, *out_size), acc_dtype)
    for tap in np.ndindex(*kernel):
        window = tuple(
            slice(t * dil, t * dil + stride * (size - 1) + 1, stride)
            for t, dil, stride, size in zip(tap, dilation, strides, out_size)
        )
        taps = weight[(slice(None), 0) + tap].astype(acc_dtype)
        out += source[(slice(None), slice(None)) + window] * taps[None, :, None, None, None]
    return out.astype(out_dtype or data.dtype)


def multiplier_to_canonical(weight):
    """OIHW ``[C, m, kH, kW]`` to ``[C*m, 1, kH, kW]``: canonical ``[c*m + q]`` is ``[c, q]``.

    Any number of kernel axes after O and I (OIDHW ``[C, m, kD, kH, kW]`` too).
    """
    channels, multiplier, *kernel = weight.shape
    canonical = np.empty((channels * multiplier, 1, *kernel), weight.dtype)
    for c in range(channels):
        for q in range(multiplier):
            canonical[c * multiplier + q, 0] = weight[c, q]
    return canonical
