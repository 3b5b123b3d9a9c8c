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

from tvm import te

from ..utils import get_const_tuple
from .depthwise_conv2d_canonical_common import UPSAMPLE_TAG, split_axis


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


def tile(sch, plan, out, positions, lane_pos):
    """Tile the output: tasks of rows (and channel blocks), blocks of columns of one row of
    channel vectors. Returns the vector axis, the block's axes, the task axis and the axis
    the block's sums are computed at."""
    layout_packed = lane_pos != positions[1]
    axes = sch[out].op.axis
    n, c, h, w = (axes[p] for p in positions)
    c_outer, c_inner = split_axis(sch, out, c, plan.tile_c)
    h_outer, *h_inner = split_axis(sch, out, h, plan.tile_h)
    w_outer, w_inner = split_axis(sch, out, w, plan.tile_w)
    if layout_packed:
        (h_inner,) = h_inner
        vector = axes[lane_pos]
        sch[out].reorder(n, c_outer, h_outer, w_outer, c_inner, h_inner, w_inner, vector)
        return vector, [c_inner, h_inner, w_inner], sch[out].fuse(n, c_outer, h_outer), w_outer
    h_mid, h_inner = h_inner
    if plan.channels_inner:
        # whole output pixels in turn; the block's sums are one channel block's
        sch[out].reorder(n, h_outer, h_mid, w_outer, c_outer, h_inner, w_inner, c_inner)
        return c_inner, [h_inner, w_inner], sch[out].fuse(n, h_outer), c_outer
    sch[out].reorder(n, h_outer, c_outer, h_mid, w_outer, h_inner, w_inner, c_inner)
    return c_inner, [h_inner, w_inner], sch[out].fuse(n, h_outer, c_outer), w_outer


def place_upsampled(sch, plan, upsampled, out, parallel, lane_pos, packed):
    """Where the upsampled input is computed: per task, inline as broadcasts, or
    (``plan.upsample_per_tap``) at each kernel tap of the sums, placed by the caller."""
    source = upsampled.op.input_tensors[0]
    multiplier = int(upsampled.shape[lane_pos]) // int(source.shape[lane_pos])
    if packed:
        # the packed channel block indexes its source through the outer block too
        sch[upsampled].compute_at(sch[out], parallel)
        sch[upsampled].vectorize(sch[upsampled].op.axis[lane_pos])
    elif plan.upsample_per_tap:
        pass  # placed at the accumulator's kernel column
    elif multiplier % plan.tile_c[-1] == 0:
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
