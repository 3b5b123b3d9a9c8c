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
"""Depthwise 2-D convolution on canonical grouped weights, in any data and kernel layout."""

from tvm import te, tir

from ..utils import get_const_tuple
from .pad import pad
from .utils import get_pad_tuple


def depthwise_conv2d_canonical(
    data,
    kernel,
    strides,
    padding,
    dilation,
    data_layout,
    kernel_layout,
    out_dtype=None,
    attrs=None,
):
    """Depthwise convolution reading the canonical weight ``[C*m, 1, kH, kW]`` directly.

    Output channel ``o`` reads input channel ``o // m``, so every channel multiplier ``m >= 1``
    is the same computation, and the weight is indexed in place in whatever layout it has: no
    copy of the weight is made.

    Parameters
    ----------
    data : te.Tensor
        Input in ``data_layout``: any order of N, C, H, W (NCHW, NHWC), or packed (NCHW16c).
    kernel : te.Tensor
        Weight in ``kernel_layout`` (OIHW, HWOI, HWIO, OHWI, ..., or packed OIHW1i16o), with
        ``I == 1`` and ``O == C*m`` in OIHW terms.
    strides, dilation : int or (int, int)
    padding : int, str, or tuple of 2 or 4 ints
        As for ``topi.nn.conv2d``: (top, left, bottom, right) when four.
    data_layout, kernel_layout : str
    out_dtype : str, optional
        Accumulation and output type; defaults to the input's. Products are formed in it, so
        int8 inputs with ``out_dtype="int32"`` accumulate in int32.
    attrs : dict, optional
        More attributes of the convolution's compute (a schedule's plan, say).

    Returns
    -------
    output : te.Tensor
        Output in ``data_layout`` with ``C*m`` channels.
    """
    stride_h, stride_w = (strides, strides) if isinstance(strides, int) else strides
    dilation_h, dilation_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    data_to_nchw = tir.bijective_layout(data_layout, "NCHW")
    in_shape = get_const_tuple(data_to_nchw.forward_shape(data.shape))
    _, _, kernel_h, kernel_w = get_const_tuple(
        tir.bijective_layout(kernel_layout, "OIHW").forward_shape(kernel.shape)
    )
    pads = get_pad_tuple(
        padding, ((kernel_h - 1) * dilation_h + 1, (kernel_w - 1) * dilation_w + 1)
    )
    if any(pads):
        layout = tir.layout(data_layout)
        before, after = [0] * len(layout), [0] * len(layout)
        before[layout.index_of("H")], before[layout.index_of("W")] = pads[0], pads[1]
        after[layout.index_of("H")], after[layout.index_of("W")] = pads[2], pads[3]
        data = pad(data, before, after, name="data_pad")

    def _read(n, channel, y, ry, x, rx):
        row = y * stride_h + ry * dilation_h
        column = x * stride_w + rx * dilation_w
        return data[tuple(data_to_nchw.backward_index([n, channel, row, column]))]

    return depthwise_conv2d_canonical_reading(
        _read,
        in_shape,
        pads,
        data.dtype,
        kernel,
        strides,
        dilation,
        data_layout,
        kernel_layout,
        out_dtype,
        attrs,
    )


def depthwise_conv2d_canonical_reading(
    read,
    in_shape,
    pads,
    in_dtype,
    kernel,
    strides,
    dilation,
    data_layout,
    kernel_layout,
    out_dtype=None,
    attrs=None,
):
    """:func:`depthwise_conv2d_canonical` on an input given by a function.

    Schedules that stage the (padded) input in their own arrangement, such as columns split
    by phase for strided convolutions, pass a ``read`` that finds a pixel in it; the
    arithmetic of the convolution stays here.

    Parameters
    ----------
    read : callable
        ``read(n, channel, y, ry, x, rx)``: the input pixel that output position ``(y, x)``
        meets at kernel tap ``(ry, rx)`` in input channel ``channel``, that is the padded
        input at row ``y * stride_h + ry * dilation_h`` and the column likewise.
    in_shape : tuple of int
        ``(N, C, H, W)`` of the unpadded input.
    pads : tuple of 4 int
        (top, left, bottom, right) padding the reader provides.
    in_dtype : str
    kernel, strides, dilation, data_layout, kernel_layout, out_dtype, attrs
        As for :func:`depthwise_conv2d_canonical`.
    """
    out_dtype = out_dtype or in_dtype
    stride_h, stride_w = (strides, strides) if isinstance(strides, int) else strides
    dilation_h, dilation_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    # Every index goes through NCHW / OIHW, so packed layouts (NCHW16c, OIHW1i16o) work too.
    data_to_nchw = tir.bijective_layout(data_layout, "NCHW")
    kernel_to_oihw = tir.bijective_layout(kernel_layout, "OIHW")
    batch, in_channels, height, width = in_shape
    out_channels, kernel_i, kernel_h, kernel_w = get_const_tuple(
        kernel_to_oihw.forward_shape(kernel.shape)
    )
    if kernel_i != 1 or out_channels % in_channels:
        raise ValueError(
            f"depthwise_conv2d_canonical needs a [C*m, 1, kH, kW] weight for C={in_channels}, "
            f"got {get_const_tuple(kernel.shape)} in {kernel_layout}"
        )
    multiplier = out_channels // in_channels
    pad_top, pad_left, pad_bottom, pad_right = pads
    out_h = (height + pad_top + pad_bottom - (kernel_h - 1) * dilation_h - 1) // stride_h + 1
    out_w = (width + pad_left + pad_right - (kernel_w - 1) * dilation_w - 1) // stride_w + 1

    out_shape = data_to_nchw.backward_shape([batch, out_channels, out_h, out_w])
    ry = te.reduce_axis((0, kernel_h), name="ry")
    rx = te.reduce_axis((0, kernel_w), name="rx")

    def _compute(*index):
        n, channel, y, x = data_to_nchw.forward_index(index)
        pixel = read(n, channel // multiplier, y, ry, x, rx)
        weight = kernel[tuple(kernel_to_oihw.backward_index([channel, 0, ry, rx]))]
        return te.sum(pixel.astype(out_dtype) * weight.astype(out_dtype), axis=[ry, rx])

    return te.compute(
        out_shape,
        _compute,
        name="depthwise_conv2d_canonical",
        tag="depthwise_conv2d_canonical",
        attrs={
            "data_layout": data_layout,
            "kernel_layout": kernel_layout,
            "strides": [stride_h, stride_w],
            "dilation": [dilation_h, dilation_w],
            **(attrs or {}),
        },
    )
