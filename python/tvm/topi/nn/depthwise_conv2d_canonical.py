"""Depthwise 2-D convolution on canonical grouped weights, in any data and kernel layout."""
from tvm import te, tir

from ..utils import get_const_tuple
from .pad import pad
from .utils import get_pad_tuple


def _axis_positions(layout, axes):
    layout = tir.layout(layout)
    return [layout.index_of(axis) for axis in axes]


def depthwise_conv2d_canonical(
    data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype=None
):
    """Depthwise convolution reading the canonical weight ``[C*m, 1, kH, kW]`` directly.

    Output channel ``o`` reads input channel ``o // m``, so every channel multiplier ``m >= 1``
    is the same computation, and the weight is indexed in place in whatever layout it has: no
    copy of the weight is made.

    Parameters
    ----------
    data : te.Tensor
        4-D input in ``data_layout`` (any order of N, C, H, W, such as NCHW or NHWC).
    kernel : te.Tensor
        4-D weight in ``kernel_layout`` (any order of O, I, H, W) with ``I == 1``, ``O == C*m``.
    strides, dilation : int or (int, int)
    padding : int, str, or tuple of 2 or 4 ints
        As for ``topi.nn.conv2d``: (top, left, bottom, right) when four.
    data_layout, kernel_layout : str
    out_dtype : str, optional
        Accumulation and output type; defaults to the input's. Products are formed in it, so
        int8 inputs with ``out_dtype="int32"`` accumulate in int32.

    Returns
    -------
    output : te.Tensor
        4-D output in ``data_layout`` with ``C*m`` channels.
    """
    out_dtype = out_dtype or data.dtype
    stride_h, stride_w = (strides, strides) if isinstance(strides, int) else strides
    dilation_h, dilation_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    n_pos, c_pos, h_pos, w_pos = _axis_positions(data_layout, "NCHW")
    o_pos, i_pos, kh_pos, kw_pos = _axis_positions(kernel_layout, "OIHW")
    data_shape = get_const_tuple(data.shape)
    kernel_shape = get_const_tuple(kernel.shape)
    in_channels, height, width = data_shape[c_pos], data_shape[h_pos], data_shape[w_pos]
    out_channels, kernel_h, kernel_w = (kernel_shape[p] for p in (o_pos, kh_pos, kw_pos))
    if kernel_shape[i_pos] != 1 or out_channels % in_channels:
        raise ValueError(
            f"depthwise_conv2d_canonical needs a [C*m, 1, kH, kW] weight for C={in_channels}, "
            f"got {kernel_shape} in {kernel_layout}"
        )
    multiplier = out_channels // in_channels

    pad_top, pad_left, pad_bottom, pad_right = get_pad_tuple(
        padding, ((kernel_h - 1) * dilation_h + 1, (kernel_w - 1) * dilation_w + 1)
    )
    out_h = (height + pad_top + pad_bottom - (kernel_h - 1) * dilation_h - 1) // stride_h + 1
    out_w = (width + pad_left + pad_right - (kernel_w - 1) * dilation_w - 1) // stride_w + 1

    if pad_top or pad_left or pad_bottom or pad_right:
        before, after = [0] * 4, [0] * 4
        before[h_pos], before[w_pos] = pad_top, pad_left
        after[h_pos], after[w_pos] = pad_bottom, pad_right
        data = pad(data, before, after, name="data_pad")

    out_shape = [0] * 4
    for pos, extent in zip((n_pos, c_pos, h_pos, w_pos), (data_shape[n_pos], out_channels, out_h, out_w)):
        out_shape[pos] = extent
    ry = te.reduce_axis((0, kernel_h), name="ry")
    rx = te.reduce_axis((0, kernel_w), name="rx")

    def _at(positions, values):
        index = [0] * 4
        for pos, value in zip(positions, values):
            index[pos] = value
        return index

    def _compute(*index):
        batch, channel, y, x = (index[p] for p in (n_pos, c_pos, h_pos, w_pos))
        pixel = data[
            tuple(
                _at(
                    (n_pos, c_pos, h_pos, w_pos),
                    (
                        batch,
                        channel // multiplier,
                        y * stride_h + ry * dilation_h,
                        x * stride_w + rx * dilation_w,
                    ),
                )
            )
        ]
        weight = kernel[tuple(_at((o_pos, i_pos, kh_pos, kw_pos), (channel, 0, ry, rx)))]
        return te.sum(pixel.astype(out_dtype) * weight.astype(out_dtype), axis=[ry, rx])

    return te.compute(
        out_shape,
        _compute,
        name="depthwise_conv2d_canonical",
        tag="depthwise_conv2d_canonical",
        attrs={"data_layout": data_layout, "kernel_layout": kernel_layout},
    )
