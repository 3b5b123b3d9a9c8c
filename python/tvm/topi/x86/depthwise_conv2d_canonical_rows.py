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
"""The width-innermost family of the CPU depthwise template (NCHW and other ``...W`` layouts).

A vector runs along the output width of a row; a register block is a few rows of such vectors;
a task is a block of channels (a multiple of ``m`` output channels, the outputs of its input
channels) and of rows. The padded rows a task reads are staged per task (see
:mod:`.depthwise_conv2d_canonical_staging`), split by column phase where the row is strided.
Its untuned tiles are chosen by :mod:`.depthwise_conv2d_canonical_plan`.
"""

from tvm import te, tir

from ..nn.depthwise_conv2d_canonical import depthwise_conv2d_canonical_reading
from .depthwise_conv2d_canonical_common import split_axis
from .depthwise_conv2d_canonical_plan import PHASES, PLANES, row_extent
from .depthwise_conv2d_canonical_staging import phase_split_intrinsic, stage_rows


def compute(data, kernel, conv, plan, kernel_layout, out_dtype):
    """The convolution read from the staged rows of :func:`stage_rows`, rows computed
    ``plan.width`` columns wide and cropped to the output's where that is wider (see
    :func:`.depthwise_conv2d_canonical_plan.whole_vector_width`). ``conv`` is the
    :class:`.depthwise_conv2d_canonical_plan.Conv` of the call."""
    layout = conv.layout
    to_nchw = tir.bijective_layout(conv.data_layout, "NCHW")
    stride_h, stride_w = conv.strides
    dilation_h, dilation_w = conv.dilation
    # the rows computed `width` wide read zeros past the right padding
    pads = conv.pads[:3] + (conv.pads[3] + (plan.width - plan.out_width) * stride_w,)
    _, read_row = stage_rows(
        data,
        layout,
        pads,
        row_extent(conv, plan.width),
        stride_w,
        split=plan.staging in (PHASES, PLANES),
        whole_plane=plan.staging == PLANES,
    )

    def _read(n, channel, y, ry, x, rx):
        index = to_nchw.backward_index([n, channel, y * stride_h + ry * dilation_h, 0])
        return read_row(index[:-1], x, rx * dilation_w)

    out = depthwise_conv2d_canonical_reading(
        _read,
        conv.nchw,
        pads,
        data.dtype,
        kernel,
        conv.strides,
        conv.dilation,
        conv.data_layout,
        kernel_layout,
        out_dtype,
        attrs={"plan": plan.to_attrs()},
    )
    return _crop_width(out, plan.out_width) if plan.cropped else out


def _crop_width(conv, out_w):
    """The first ``out_w`` columns of ``conv`` (width innermost), which the schedule computes
    whole.

    The read of the last computed column (never selected) keeps that column in the bounds
    TVM infers for the sums of a block, so that their vectors stay whole.
    """
    last = int(conv.shape[-1]) - 1

    def _crop(*index):
        *rest, x = index
        return tir.Select(x < out_w, conv[index], conv[tuple(rest) + (last,)])

    shape = list(conv.shape[:-1]) + [out_w]
    return te.compute(shape, _crop, name="depthwise_crop", tag="injective")


def _tensorize_phase_split(sch, plan, conv, stage, h_pos):
    """Stage the rows split by phase with the vector shuffles of phase_split_intrinsic."""
    width, pad_left, phases, columns = plan.phase_row
    split = (width, pad_left, phases, columns, plan.lanes, stage.dtype)
    if plan.staging == PHASES:
        # row by row
        sch[stage].tensorize(sch[stage].op.axis[-2], phase_split_intrinsic(*split))
        return
    # Whole planes, their padding rows zeroed: one intrinsic a plane, where a task stages all
    # the rows of its channels at once (as the fallback does); else the guarded copy is left
    # to LLVM (correct, slower).
    if plan.stage_per_block or plan.tile_h[1] * plan.tile_h[2] < int(conv.shape[h_pos]):
        return
    plane = phase_split_intrinsic(*split, plane=plan.phase_plane)
    sch[stage].tensorize(sch[stage].op.axis[h_pos], plane)


def tile(sch, plan, out, positions):
    """Tile the output: tasks of channels and rows, blocks of rows of one vector along the
    width. Returns the vector axis, the block's axes, the task axis, the axis the block's
    sums are computed at and the axis of a block of rows (where a task stages per block)."""
    n, c, h, w = (sch[out].op.axis[p] for p in positions)
    c_outer, c_inner = split_axis(sch, out, c, plan.tile_c)
    h_outer, h_mid, h_inner = split_axis(sch, out, h, plan.tile_h)
    if not plan.cropped:
        w_outer, w_block, w_inner = split_axis(sch, out, w, plan.tile_w)
    else:
        # a row computed wider than the output: one vector of the whole output row
        w_outer, w_inner = sch[out].split(w, nparts=1)
        w_block, w_inner = sch[out].split(w_inner, nparts=1)
    sch[out].reorder(n, c_outer, h_outer, h_mid, w_outer, c_inner, h_inner, w_block, w_inner)
    # A block is one channel's: its sums stay on the stack (TVM 0.19 moves a buffer over
    # 1 KiB, such as the sums of several channels, to the workspace pool, where every sum is
    # stored and loaded again), and the loop over a task's channels stays a loop.
    return w_inner, [h_inner, w_block], sch[out].fuse(n, c_outer, h_outer), c_inner, h_mid


def place_staging(sch, plan, conv, out, data_pad, parallel, h_mid):
    """Stage the padded rows of a task (or of one block of its rows: ``plan.stage_per_block``)
    into a small buffer: a guard on the columns would scalarize the vectors along them."""
    h_pos = tir.layout(conv.op.attrs["data_layout"]).index_of("H")
    sch[data_pad].compute_at(sch[out], h_mid if plan.stage_per_block else parallel)
    # each staged row (or phase of a row) starts on a cache line, so that the vectors of at
    # least one kernel column are aligned loads
    sch[data_pad].storage_align(sch[data_pad].op.axis[-2], plan.align, 0)
    if plan.phase_row:
        _tensorize_phase_split(sch, plan, conv, data_pad, h_pos)


def order_accumulator(sch, plan, acc, positions):
    """The block's sums over the kernel window: channel, taps, rows, then the width blocks of
    the register block (unrolled) and the vector. Returns the vector axis."""
    n_pos, c_pos, h_pos, w_pos = positions
    axes = sch[acc].op.axis
    ry, rx = sch[acc].op.reduce_axis
    sch[acc].reorder(axes[n_pos], axes[c_pos], ry, rx, axes[h_pos], axes[w_pos])
    w_block, vector = sch[acc].split(axes[w_pos], nparts=plan.tile_w[1])
    sch[acc].unroll(w_block)
    return vector
