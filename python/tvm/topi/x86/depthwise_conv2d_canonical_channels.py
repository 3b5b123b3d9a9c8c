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
"""The channels-innermost family of the CPU depthwise template: NHWC-like and packed layouts.

A vector runs along the output channels (of the channel block, in a packed layout such as
``NCHW16c``); a register block is a few columns of a row of such vectors; a task is a block of
rows, of channel blocks or of all of them. The padding is read through guards, which depend on
rows and columns only, never on the vector. With a multiplier ``m > 1`` the input is upsampled
along channels (input channel ``c`` repeated ``m`` times), per task or at each kernel tap, so
that a vector of output channels reads a vector of input.
"""

import tvm
from tvm import te, tir
from tvm.autotvm.task.space import OtherOptionEntity, SplitEntity

from ..utils import get_const_tuple
from .depthwise_conv2d_canonical_common import (
    PARALLEL_WORK,
    UPSAMPLE_TAG,
    is_packed,
    largest_divisor,
    register_block,
    vector_factor,
)

# columns a register block takes at most, where its sums would allow more (AArch64's 16): past
# that its weights and input columns no longer fit beside the sums (docs/design.md)
_MAX_COLUMNS = 14
# an input read fewer times than this by the outputs is upsampled at each tap, not per task
_TAP_UPSAMPLE_READS = 2


def upsample(data, to_nchw, multiplier, out_channels):
    """The (padded) input with each channel repeated ``multiplier`` times, in its layout."""
    batch, _, height, width = get_const_tuple(to_nchw.forward_shape(data.shape))

    def _upsample(*index):
        n, channel, y, x = to_nchw.forward_index(index)
        return data[tuple(to_nchw.backward_index([n, channel // multiplier, y, x]))]

    return te.compute(
        to_nchw.backward_shape([batch, out_channels, height, width]),
        _upsample,
        name="data_upsampled",
        tag=UPSAMPLE_TAG,
    )


def fallback(cfg, conv, cpu, accumulators, work):
    """The untuned configuration of a channels-innermost conv, chosen from the shape and
    ``cpu``; ``work`` is its multiply-adds."""
    layout = tir.layout(conv.op.attrs["data_layout"])
    c_pos, h_pos, w_pos = (layout.index_of(axis) for axis in "CHW")
    shape = get_const_tuple(conv.shape)
    out_c, out_h, out_w = shape[c_pos], shape[h_pos], shape[w_pos]
    staged = conv.op.input_tensors[0]
    lanes = cpu.vector_lanes(staged.dtype)
    taps = 1
    for axis in conv.op.reduce_axis:
        taps *= int(axis.dom.extent)
    per_tap_upsample = staged.op.tag == UPSAMPLE_TAG and not is_packed(layout)
    at_tap = False
    # packed layouts vectorize their inner channel block, and split only the outer one
    vec = 1 if is_packed(layout) else vector_factor(out_c, lanes)
    if per_tap_upsample:
        # An upsampled pixel pays off when several outputs read it. Read about once (a
        # 22x1 kernel over 22 rows), the input is upsampled at each tap instead, into
        # vectors of two input channels' m copies each (a two-element load and a permute;
        # vectors of four channels would gather).
        staged_shape = get_const_tuple(staged.shape)
        reads = out_h * out_w * taps / (staged_shape[h_pos] * staged_shape[w_pos])
        if reads < _TAP_UPSAMPLE_READS:
            multiplier = out_c // int(staged.op.input_tensors[0].shape[c_pos])
            at_tap = 2 * multiplier <= lanes and out_c % (2 * multiplier) == 0
            vec = 2 * multiplier if at_tap else largest_divisor(multiplier, lanes)
        cfg["upsample_per_tap"] = OtherOptionEntity(int(at_tap))
    cfg["tile_c"] = SplitEntity([-1, vec])
    # a vector whose sums take several registers (8-bit data on NEON) leaves fewer columns
    columns = min(_MAX_COLUMNS, max(1, accumulators // cpu.sum_registers(vec)))
    cfg["tile_w"] = SplitEntity([-1, register_block(out_w, columns)])
    # Tasks over all channel blocks where that wins (see _channels_inner); a layer on one
    # thread keeps each channel block's weights over all its columns instead.
    inner = (
        not is_packed(layout)
        and work >= PARALLEL_WORK
        and _channels_inner(conv, layout, vec, cfg["tile_w"].size[-1], cpu, at_tap)
    )
    if not is_packed(layout):
        cfg["channels_inner"] = OtherOptionEntity(int(inner))
    # An upsampled input is built per task: tall tasks rebuild fewer of its rows, while
    # a register block stays one row of columns. Tasks of rows over all channels (never
    # with an upsampled copy) are one row each, so that there are enough of them.
    upsampled = staged.op.tag == UPSAMPLE_TAG
    rows = register_block(out_h, 8) if upsampled and not inner else 1
    cfg["tile_h"] = SplitEntity([-1, rows] if is_packed(layout) else [-1, rows, 1])


def _channels_inner(conv, layout, vec, block_w, cpu, upsample_per_tap=False):
    """Whether NHWC tasks should span all channel blocks of their rows (fallback rule).

    A task of rows that loops over every channel block inside each block of columns writes
    whole output pixels in turn, where a task of one channel block writes one vector per
    pixel, 64 bytes apart from the next at the pixel's pitch. That wins as long as the input
    a block of columns reads across all channels stays in L1; it loses where that window is
    larger, and where each task would upsample all channels (``m`` not a multiple of the
    vector and no upsampling at each tap).
    """
    staged = conv.op.input_tensors[0]
    c_pos = layout.index_of("C")
    out_c = int(conv.shape[c_pos])
    source = staged
    if staged.op.tag == UPSAMPLE_TAG:
        source = staged.op.input_tensors[0]
        multiplier = out_c // int(source.shape[c_pos])
        if multiplier % vec and not upsample_per_tap:
            return False
    kernel_h, kernel_w = (int(axis.dom.extent) for axis in conv.op.reduce_axis)
    _, stride_w = (int(e) for e in conv.op.attrs["strides"])
    dilation_h, dilation_w = (int(e) for e in conv.op.attrs["dilation"])
    window_w = (block_w - 1) * stride_w + (kernel_w - 1) * dilation_w + 1
    window_h = (kernel_h - 1) * dilation_h + 1
    bytes_per_pixel = int(source.shape[c_pos]) * tvm.DataType(source.dtype).bits // 8
    return window_h * window_w * bytes_per_pixel <= cpu.window_bytes


def tile(sch, cfg, out, positions, lane_pos):
    """Tile the output: tasks of rows (and channel blocks), blocks of columns of one row of
    channel vectors. Returns the vector axis, the block's axes, the task axis and the axis
    the block's sums are computed at."""
    layout_packed = lane_pos != positions[1]
    axes = sch[out].op.axis
    n, c, h, w = (axes[p] for p in positions)
    c_outer, c_inner = cfg["tile_c"].apply(sch, out, c)
    h_outer, *h_inner = cfg["tile_h"].apply(sch, out, h)
    w_outer, w_inner = cfg["tile_w"].apply(sch, out, w)
    if layout_packed:
        (h_inner,) = h_inner
        vector = axes[lane_pos]
        sch[out].reorder(n, c_outer, h_outer, w_outer, c_inner, h_inner, w_inner, vector)
        return vector, [c_inner, h_inner, w_inner], sch[out].fuse(n, c_outer, h_outer), w_outer
    h_mid, h_inner = h_inner
    if cfg["channels_inner"].val:
        # whole output pixels in turn; the block's sums are one channel block's
        sch[out].reorder(n, h_outer, h_mid, w_outer, c_outer, h_inner, w_inner, c_inner)
        return c_inner, [h_inner, w_inner], sch[out].fuse(n, h_outer), c_outer
    sch[out].reorder(n, h_outer, c_outer, h_mid, w_outer, h_inner, w_inner, c_inner)
    return c_inner, [h_inner, w_inner], sch[out].fuse(n, h_outer, c_outer), w_outer


def place_upsampled(sch, cfg, upsampled, out, parallel, lane_pos, packed):
    """Where the upsampled input is computed: per task, inline as broadcasts, or (knob
    upsample_per_tap) at each kernel tap of the sums, placed by the caller."""
    source = upsampled.op.input_tensors[0]
    multiplier = int(upsampled.shape[lane_pos]) // int(source.shape[lane_pos])
    if packed:
        # the packed channel block indexes its source through the outer block too
        sch[upsampled].compute_at(sch[out], parallel)
        sch[upsampled].vectorize(sch[upsampled].op.axis[lane_pos])
    elif cfg["upsample_per_tap"].val:
        pass  # placed at the accumulator's kernel column
    elif multiplier % cfg["tile_c"].size[-1] == 0:
        # a vector of output channels reads one input channel: a broadcast, no copy
        sch[upsampled].compute_inline()
    else:
        sch[upsampled].compute_at(sch[out], parallel)
        # vectors of the m copies of one input channel are broadcasts of one scalar load; a
        # vector across several input channels would gather element by element
        _, copies = sch[upsampled].split(sch[upsampled].op.axis[lane_pos], factor=multiplier)
        sch[upsampled].vectorize(copies)


def order_accumulator(sch, acc, positions, lane_pos):
    """The block's sums over the kernel window: taps, then rows, columns (unrolled) and the
    channel vector. Returns the vector axis."""
    n_pos, c_pos, h_pos, w_pos = positions
    axes = sch[acc].op.axis
    ry, rx = sch[acc].op.reduce_axis
    if lane_pos != c_pos:
        vector = axes[lane_pos]
        sch[acc].reorder(axes[n_pos], axes[c_pos], ry, rx, axes[h_pos], axes[w_pos], vector)
        sch[acc].unroll(axes[c_pos])
    else:
        vector = axes[c_pos]
        sch[acc].reorder(axes[n_pos], ry, rx, axes[h_pos], axes[w_pos], vector)
    sch[acc].unroll(axes[w_pos])
    return vector
