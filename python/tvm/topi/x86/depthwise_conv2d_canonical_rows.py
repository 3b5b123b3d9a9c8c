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
Every rule of :func:`fallback` says why in a line; the measurements behind them, and the
workloads they were taken on, are in ``docs/design.md``.
"""

import tvm
from tvm import te, tir
from tvm.autotvm.task.space import OtherOptionEntity, SplitEntity

from ..nn.depthwise_conv2d_canonical import depthwise_conv2d_canonical_reading
from ..utils import get_const_tuple
from .depthwise_conv2d_canonical_common import PAD_TAG, largest_divisor, register_block
from .depthwise_conv2d_canonical_common import vector_factor
from .depthwise_conv2d_canonical_staging import (
    is_phase_split,
    phase_split_intrinsic,
    stage_rows,
    stages_whole_planes,
)

# broadcast weights a register block of rows keeps in registers at most (a 3x3 kernel's, as
# measured; see _block_sums)
_HELD_WEIGHTS = 9
# registers of sums a block of rows takes at most, where the target allows more (AArch64): its
# broadcast weights and the rows it loads need the rest
_ROW_BLOCK_SUMS = 8
# channels a task takes on planes of at most so many outputs: a small plane is too little work
# for a task's launch
_TASK_CHANNELS = ((64, 8), (1024, 4))
# a block stages its own rows unless that stages them this many times over (tall, strided)
_RESTAGE_LIMIT = 1.5
# a kernel this tall, over channels enough for this many tasks each, stages whole planes with
# zeroed padding rows: its many masked loads would spill
_ZEROED_KERNEL_ROWS, _ZEROED_TASKS = 5, 4


def stages_rows(layout, stride_w, pads):
    """Whether a conv in ``layout`` is computed from staged rows: the width innermost, and
    strided or padded (else it reads its input in place)."""
    return layout.index_of("W") == len(layout) - 1 and (stride_w > 1 or any(pads))


def compute(data, kernel, strides, dilation, pads, in_shape, layouts, out_dtype, cpu):
    """The convolution read from the staged rows of :func:`stage_rows`, an output row narrower
    than a vector computed in a whole vector over zero padding and cropped (see
    :func:`_whole_vector_width`). ``in_shape`` is the input's NCHW shape, ``layouts`` the data
    and kernel layouts; ``cpu`` is None where only the compute is asked (no target)."""
    data_layout, kernel_layout = layouts
    layout = tir.layout(data_layout)
    to_nchw = tir.bijective_layout(data_layout, "NCHW")
    _, _, kernel_h, kernel_w = get_const_tuple(
        tir.bijective_layout(kernel_layout, "OIHW").forward_shape(kernel.shape)
    )
    stride_h, stride_w = (strides, strides) if isinstance(strides, int) else strides
    dilation_h, dilation_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    in_channels = in_shape[1]
    lanes = cpu.lanes if cpu else None
    # with no target, the tasks of the default two threads
    min_tasks = cpu.min_tasks if cpu else 16
    out_w = (in_shape[3] + pads[1] + pads[3] - (kernel_w - 1) * dilation_w - 1) // stride_w + 1
    wide = _whole_vector_width(out_w, lanes)
    extent = (wide - 1) * stride_w + (kernel_w - 1) * dilation_w + 1
    # the rows computed `wide` columns wide read zeros past the right padding
    wide_pads = pads[:3] + (pads[3] + (wide - out_w) * stride_w,)
    # a tall kernel's padding rows staged as zeros, not masked at every read
    whole_plane = kernel_h >= _ZEROED_KERNEL_ROWS and in_channels >= _ZEROED_TASKS * min_tasks
    taps = [column * dilation_w for column in range(kernel_w)]
    _, read_row = stage_rows(
        data, layout, wide_pads, extent, stride_w, taps, whole_plane=whole_plane
    )

    def _read(n, channel, y, ry, x, rx):
        index = to_nchw.backward_index([n, channel, y * stride_h + ry * dilation_h, 0])
        return read_row(index[:-1], x, rx * dilation_w)

    conv = depthwise_conv2d_canonical_reading(
        _read,
        in_shape,
        wide_pads,
        data.dtype,
        kernel,
        strides,
        dilation,
        data_layout,
        kernel_layout,
        out_dtype,
    )
    return conv if wide == out_w else _crop_width(conv, out_w)


def _whole_vector_width(out_w, lanes):
    """Columns to compute a row of ``out_w`` with: whole vectors where the row has odd ones.

    A row narrower than a vector (7 columns in 7 lanes split every unaligned load into three
    or four instructions) is computed in the next power of two; a row between two and four
    vectors wide in whole vectors (one vector of several registers, not vectors of half a
    register). A row between one and two vectors keeps its width: computed wider it was
    slower.
    """
    if not lanes:
        return out_w
    if out_w < lanes:
        return 1 << (out_w - 1).bit_length()
    if 2 * lanes < out_w < 4 * lanes and out_w % lanes:
        return -(-out_w // lanes) * lanes
    return out_w


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


def fallback(cfg, conv, cpu, accumulators, cropped):
    """The untuned configuration of a width-innermost conv, chosen from the shape and ``cpu``."""
    layout = tir.layout(conv.op.attrs["data_layout"])
    c_pos, h_pos, w_pos = (layout.index_of(axis) for axis in "CHW")
    shape = get_const_tuple(conv.shape)
    out_c, out_h, out_w = shape[c_pos], shape[h_pos], shape[w_pos]
    staged = conv.op.input_tensors[0]
    lanes = cpu.vector_lanes(staged.dtype)
    taps = 1
    for axis in conv.op.reduce_axis:
        taps *= int(axis.dom.extent)
    staging = staged.op.tag == PAD_TAG
    # Strided columns make TVM's vectors gathers. The staged input of a width-innermost
    # layout splits them by phase; in any other layout they are left scalar, and LLVM
    # vectorizes them with wide loads and shuffles.
    strided = int(conv.op.attrs["strides"][1]) > 1 and len(staged.shape) == len(shape)
    # several channels a task on small planes, to pay for its launch
    plane = out_h * out_w
    channels_per_task = next((n for size, n in _TASK_CHANNELS if plane <= size), 1)
    in_c = int(staged.shape[c_pos])
    multiplier = out_c // in_c
    vec = 1 if strided else vector_factor(out_w, lanes)
    registers = 1
    if not strided and lanes < out_w < 2 * lanes:
        # one vector of two registers, not two of half the row: it starts on a cache line
        vec, registers = out_w, 2
    if cropped and out_w > lanes:
        # a row computed whole over padding (see _whole_vector_width): one vector of
        # as many registers
        vec, registers = out_w, max(1, out_w // lanes)
    # the sums of a vector of 8-bit data on NEON take several registers
    registers *= cpu.sum_registers(vec // registers)
    if strided:
        tile_c = 1
    elif multiplier > 1:
        # the m outputs of an input channel in one task: its rows staged once
        inputs = channels_per_task // multiplier
        if registers > 1:
            # two input channels at least: with one, LLVM hoists the block's row loads
            # out of the loop over its output channels and spills them
            inputs = max(inputs, 2)
        tile_c = multiplier * largest_divisor(in_c, inputs)
    else:
        tile_c = largest_divisor(out_c, channels_per_task)
    # Strided rows of a layer whose input outgrows L2: tasks of more channels, each
    # staging its rows at once (see _streaming_channels)
    streaming = False
    if multiplier == 1 and is_phase_split(staged):
        channels = _streaming_channels(staged.op.input_tensors[0], layout, tile_c, cpu)
        streaming, tile_c = channels > tile_c, channels
    cfg["tile_c"] = SplitEntity([-1, tile_c])
    # a block of rows of one column strip: the padded rows of a task are read
    # (rows + kernel - 1) / rows times, so blocks as tall as the registers allow
    sums = _block_sums(min(accumulators, _ROW_BLOCK_SUMS), taps, cpu.vector_registers, registers)
    rows = register_block(out_h, sums // registers)
    # A task takes several blocks of rows when there are enough tasks: its padded rows
    # are then staged once, not again for every block, in one buffer per task, which
    # should stay in L1.
    channel_tasks = out_c // cfg["tile_c"].size[-1]
    blocks = 1
    if staging:
        cfg["stage_per_block"] = OtherOptionEntity(0)
    if channel_tasks >= cpu.min_tasks:
        staged_shape = get_const_tuple(staged.shape)
        phases = staged_shape[-2] if is_phase_split(staged) else 1
        kernel_h = int(conv.op.reduce_axis[0].dom.extent)
        stride_h = int(conv.op.attrs["strides"][0])
        # each phase of a staged row starts on a cache line
        phase_bytes = staged_shape[-1] * tvm.DataType(staged.dtype).bits // 8
        row_bytes = phases * -(-phase_bytes // cpu.line_bytes) * cpu.line_bytes
        # the input channels the task's output channels read
        row_bytes *= -(-tile_c // multiplier)
        for count in range(out_h // rows, 0, -1):
            staged_rows = (count * rows - 1) * stride_h + kernel_h
            if (out_h // rows) % count == 0 and staged_rows * row_bytes <= cpu.stage_bytes:
                blocks = count
                break
        if staging and channel_tasks >= 2 * cpu.min_tasks and blocks < out_h // rows:
            # a whole channel a task all the same, read in order, staged block by block
            blocks = out_h // rows
            # unless that stages a block's rows too many times over: then all at once (L2)
            restaged = ((rows - 1) * stride_h + kernel_h) / (rows * stride_h)
            cfg["stage_per_block"] = OtherOptionEntity(int(restaged < _RESTAGE_LIMIT))
    if stages_whole_planes(staged) or streaming:
        # planes staged whole (zeroed padding rows, or streaming): all rows of a task's
        # channels
        blocks = out_h // rows
        cfg["stage_per_block"] = OtherOptionEntity(0)
    cfg["tile_h"] = SplitEntity([-1, blocks, rows])
    # a block of all the rows there are (a tall kernel over one output row) takes several
    # vectors along the width instead, as many as its sums allow
    vectors = 1
    if rows == out_h and vec < out_w and not cropped:
        vectors = largest_divisor(out_w // vec, sums // (rows * registers))
    cfg["tile_w"] = SplitEntity([-1, vectors, vec])


def _streaming_channels(data, layout, channels, cpu):
    """Channels for a task of strided NCHW rows (fallback rule): at least ``channels``.

    A layer whose input is larger than a core's L2 (``cpu.l2_bytes``) streams it from L3,
    and there tasks that stage their rows in longer sweeps win: a task then takes the fewest
    multiples of ``channels`` that stage ``cpu.stream_bytes`` of input or more at once, as long
    as there are ``2 * cpu.min_tasks`` tasks; such tasks stage all their rows at once. On
    inputs that fit in L2 more channels were worth nothing.
    """
    shape = get_const_tuple(data.shape)
    channel_bytes = tvm.DataType(data.dtype).bits // 8
    for axis in "HW":
        channel_bytes *= shape[layout.index_of(axis)]
    in_c = shape[layout.index_of("C")]
    if shape[layout.index_of("N")] * in_c * channel_bytes < cpu.l2_bytes:
        return channels
    best = channels
    for count in range(channels, in_c // (2 * cpu.min_tasks) + 1, channels):
        if in_c % count == 0:
            best = count
            if count * channel_bytes >= cpu.stream_bytes:
                break
    return best


def _block_sums(accumulators, taps, vector_registers, row_registers):
    """Vector sums of a width-innermost (NCHW) register block (fallback rule).

    ``accumulators``, or fewer where the kernel's ``taps`` broadcast weights would not fit
    in the registers beside them: the weights are the same for every block of a channel,
    and LLVM keeps them in registers over a task's blocks. Eight sums with a 3x3 kernel
    overfill AVX2's 16 registers (8 sums, 9 weights, a loaded row and a temporary), and
    LLVM spills the weights and the input rows that two rows of the block share. The sums
    are then cut to what the registers leave (5 on AVX2). Never below two rows of
    ``row_registers`` registers each: in blocks of one row, rows lose what they share. Only
    kernels of up to ``_HELD_WEIGHTS`` taps qualify (a 5x5 kernel's trade is not measured).
    """
    if taps <= _HELD_WEIGHTS and taps + accumulators + 2 > vector_registers:
        return max(vector_registers - taps - 2, 2 * row_registers)
    return accumulators


def _tensorize_phase_split(sch, cfg, conv, stage, h_pos, lanes, per_block):
    """Stage the rows split by phase with the vector shuffles of phase_split_intrinsic."""
    attrs = stage.op.attrs
    split = (
        int(attrs["width"]),
        int(attrs["pad_left"]),
        int(stage.shape[-2]),
        int(stage.shape[-1]),
        lanes,
        stage.dtype,
    )
    if not stages_whole_planes(stage):
        # row by row
        sch[stage].tensorize(sch[stage].op.axis[-2], phase_split_intrinsic(*split))
        return
    # Whole planes, their padding rows zeroed: one intrinsic a plane, where a task stages all
    # the rows of its channels at once (as the fallback does); else the guarded copy is left
    # to LLVM (correct, slower).
    out_h = int(conv.shape[h_pos])
    if per_block or cfg["tile_h"].size[1] * cfg["tile_h"].size[2] < out_h:
        return
    stride_h, dilation_h = int(conv.op.attrs["strides"][0]), int(conv.op.attrs["dilation"][0])
    kernel_h = int(conv.op.reduce_axis[0].dom.extent)
    # the padded rows the convolution reads
    needed = (out_h - 1) * stride_h + (kernel_h - 1) * dilation_h + 1
    plane = (int(attrs["height"]), int(attrs["pad_top"]), int(attrs["pad_bottom"]), needed)
    sch[stage].tensorize(sch[stage].op.axis[h_pos], phase_split_intrinsic(*split, plane=plane))


def tile(sch, cfg, out, positions, cropped):
    """Tile the output: tasks of channels and rows, blocks of rows of one vector along the
    width. Returns the vector axis, the block's axes, the task axis, the axis the block's
    sums are computed at and the axis of a block of rows (where a task stages per block)."""
    n, c, h, w = (sch[out].op.axis[p] for p in positions)
    c_outer, c_inner = cfg["tile_c"].apply(sch, out, c)
    h_outer, h_mid, h_inner = cfg["tile_h"].apply(sch, out, h)
    if not cropped:
        w_outer, w_block, w_inner = cfg["tile_w"].apply(sch, out, w)
    else:
        # a row computed wider than the output: one vector of the whole output row
        w_outer, w_inner = sch[out].split(w, nparts=1)
        w_block, w_inner = sch[out].split(w_inner, nparts=1)
    sch[out].reorder(n, c_outer, h_outer, h_mid, w_outer, c_inner, h_inner, w_block, w_inner)
    # A block is one channel's: its sums stay on the stack (TVM 0.19 moves a buffer over
    # 1 KiB, such as the sums of several channels, to the workspace pool, where every sum is
    # stored and loaded again), and the loop over a task's channels stays a loop.
    return w_inner, [h_inner, w_block], sch[out].fuse(n, c_outer, h_outer), c_inner, h_mid


def place_staging(sch, cfg, conv, out, data_pad, parallel, h_mid, cpu):
    """Stage the padded rows of a task (or of one block of its rows: knob stage_per_block)
    into a small buffer: a guard on the columns would scalarize the vectors along them."""
    h_pos = tir.layout(conv.op.attrs["data_layout"]).index_of("H")
    per_block = bool(cfg["stage_per_block"].val)
    sch[data_pad].compute_at(sch[out], h_mid if per_block else parallel)
    # each staged row (or phase of a row) starts on a cache line, so that the vectors of at
    # least one kernel column are aligned loads
    line = cpu.line_bytes * 8 // tvm.DataType(data_pad.dtype).bits
    sch[data_pad].storage_align(sch[data_pad].op.axis[-2], line, 0)
    if is_phase_split(data_pad):
        _tensorize_phase_split(sch, cfg, conv, data_pad, h_pos, cpu.lanes, per_block)


def order_accumulator(sch, cfg, acc, positions):
    """The block's sums over the kernel window: channel, taps, rows, then the width blocks of
    the register block (unrolled) and the vector. Returns the vector axis."""
    n_pos, c_pos, h_pos, w_pos = positions
    axes = sch[acc].op.axis
    ry, rx = sch[acc].op.reduce_axis
    sch[acc].reorder(axes[n_pos], axes[c_pos], ry, rx, axes[h_pos], axes[w_pos])
    w_block, vector = sch[acc].split(axes[w_pos], nparts=cfg["tile_w"].size[1])
    sch[acc].unroll(w_block)
    return vector
