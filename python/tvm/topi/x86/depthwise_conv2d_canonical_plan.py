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
"""The plan of one depthwise convolution on one CPU: every choice the template makes, once.

:func:`make_plan` takes the convolution (:class:`Conv`, from the compute's arguments), the
AutoTVM configuration and the :class:`~tvm.topi.generic.depthwise_cpu.CPUDescription` of the
target, and returns a :class:`Plan`: how the input is staged, how wide a row is computed, the
tiles and the loop choices. The compute builds its stages from the plan and attaches it to the
convolution (``attrs["plan"]``); the schedule takes it from there and reads nothing else back.

Untuned, the configuration is the fallback's: a short model of the CPU description, one rule a
line. The constants it uses are named below; the measurements behind them, and the workloads
they were taken on, are in ``docs/design.md``.
"""

from dataclasses import dataclass, fields, replace
from functools import cached_property

import tvm
from tvm import tir
from tvm.autotvm.task.space import OtherOptionEntity, SplitEntity

from ..nn.utils import get_pad_tuple
from ..utils import get_const_tuple
from .depthwise_conv2d_canonical_common import (
    is_packed,
    largest_divisor,
    register_block,
    vector_factor,
    vectorized_along_channels,
)
from .depthwise_conv2d_canonical_staging import splits_by_phase

# ---- the fallback's constants ---------------------------------------------------------------
# multiply-adds below which a layer runs on one thread: starting the thread pool costs more
PARALLEL_WORK = 1 << 16
# sums a register block may hold: 32 registers of 16 lanes, the largest register file served
MAX_BLOCK_SUMS = 32 * 16
# tasks wanted where no target says how many threads (the compute alone)
DEFAULT_MIN_TASKS = 16
# width innermost: broadcast weights a block of rows keeps in registers at most (3x3)
HELD_WEIGHTS = 9
# width innermost: registers of sums of a block of rows, where the target would allow more
ROW_BLOCK_SUMS = 8
# width innermost: channels a task takes on planes of at most so many outputs
TASK_CHANNELS = ((64, 8), (1024, 4))
# width innermost: a block stages its own rows unless that stages them this many times over
RESTAGE_LIMIT = 1.5
# width innermost: a kernel this tall, over this many tasks' channels, stages zeroed planes
ZEROED_KERNEL_ROWS, ZEROED_TASKS = 5, 4
# channels innermost: columns of a register block at most (weights and inputs need the rest)
MAX_COLUMNS = 14
# channels innermost: an input read fewer times than this is upsampled at each tap
TAP_UPSAMPLE_READS = 2
# channels innermost: rows of a task that upsamples its input (fewer rows rebuilt)
UPSAMPLED_TASK_ROWS = 8
# int8 epilogues: vectors of rounded products a task holds for them to be stored per task (in
# a smaller task LLVM unrolls the loops and contracts each stored product into its add)
TASK_PRODUCTS = 64

# ---- how the convolution reads its input ----------------------------------------------------
NONE = "none"  # in place: no padding
GUARDED = "guarded"  # through guards on rows and columns, inlined (channels innermost)
PADDED = "padded"  # a padded copy placed per task (width not innermost)
ROWS = "rows"  # the padded rows of a task, staged (width innermost)
PHASES = "phases"  # the same, split by column phase (strided)
PLANES = "planes"  # whole planes split by phase, their padding rows zeroed (tall kernels)


@dataclass(frozen=True)
class Conv:
    """One depthwise convolution as the compute is given it (shapes in their layouts)."""

    data_layout: str
    data_shape: tuple
    dtype: str
    out_channels: int
    kernel: tuple  # (kH, kW)
    strides: tuple
    dilation: tuple
    pads: tuple  # (top, left, bottom, right)

    @staticmethod
    def of(data, kernel, strides, padding, dilation, data_layout, kernel_layout):
        """The convolution of a compute's arguments."""
        out_channels, _, kernel_h, kernel_w = get_const_tuple(
            tir.bijective_layout(kernel_layout, "OIHW").forward_shape(kernel.shape)
        )
        strides = (strides, strides) if isinstance(strides, int) else strides
        dilation = (dilation, dilation) if isinstance(dilation, int) else dilation
        extent = (
            (kernel_h - 1) * int(dilation[0]) + 1,
            (kernel_w - 1) * int(dilation[1]) + 1,
        )
        return Conv(
            data_layout,
            get_const_tuple(data.shape),
            data.dtype,
            out_channels,
            (kernel_h, kernel_w),
            tuple(int(e) for e in strides),
            tuple(int(e) for e in dilation),
            tuple(int(e) for e in get_pad_tuple(padding, extent)),
        )

    @cached_property
    def layout(self):
        """The data layout as a :class:`tvm.tir.Layout`."""
        return tir.layout(self.data_layout)

    @cached_property
    def nchw(self):
        """The input's (N, C, H, W)."""
        to_nchw = tir.bijective_layout(self.data_layout, "NCHW")
        return get_const_tuple(to_nchw.forward_shape(self.data_shape))

    @property
    def multiplier(self):
        """Output channels per input channel."""
        return self.out_channels // self.nchw[1]

    @property
    def taps(self):
        """Kernel taps."""
        return self.kernel[0] * self.kernel[1]

    @property
    def out_size(self):
        """The output's (H, W)."""
        _, _, height, width = self.nchw
        return tuple(
            (size + self.pads[i] + self.pads[i + 2] - (k - 1) * d - 1) // s + 1
            for i, (size, k, d, s) in enumerate(
                zip((height, width), self.kernel, self.dilation, self.strides)
            )
        )

    def out_shape(self, width):
        """The computed output's shape in the data layout, rows ``width`` columns wide."""
        to_nchw = tir.bijective_layout(self.data_layout, "NCHW")
        shape = [self.nchw[0], self.out_channels, self.out_size[0], width]
        return get_const_tuple(to_nchw.backward_shape(shape))


@dataclass(frozen=True)
class Plan:
    """Every choice for one convolution on one CPU (see the module's description)."""

    staging: str  # how the input is read: NONE, GUARDED, PADDED, ROWS, PHASES or PLANES
    upsample: bool  # the input repeated along channels (channels innermost, m > 1)
    width: int  # columns computed a row: more than the output's where it is cropped
    out_width: int  # the output's columns
    lanes: int  # 32-bit lanes of a vector (0: no target)
    align: int  # elements a staged row is aligned to (a cache line)
    # PHASES, PLANES: the row the phase-split intrinsic stages (input width, left pad, phases,
    # columns), and for PLANES the plane (input height, top and bottom pads, rows read)
    phase_row: tuple = ()
    phase_plane: tuple = ()
    tile_c: tuple = ()  # the splits of the layout's C, H and W axes (outer first)
    tile_h: tuple = ()
    tile_w: tuple = ()
    unroll_kernel: bool = True
    parallel: bool = True
    stage_per_block: bool = False  # stage a block of rows at a time, not a task's
    channels_inner: bool = False  # NHWC tasks of rows over all channel blocks
    upsample_per_tap: bool = False  # upsample at each kernel tap, not per task

    @property
    def cropped(self):
        """Whether rows are computed wider than the output."""
        return self.width != self.out_width

    def to_attrs(self):
        """The plan as compute attributes."""
        return {f.name: _attr(getattr(self, f.name)) for f in fields(self)}

    @staticmethod
    def from_attrs(attrs):
        """The plan of a convolution the compute made (its ``attrs["plan"]``)."""
        values = {}
        for field in fields(Plan):
            value = attrs[field.name]
            if field.type is tuple:
                values[field.name] = tuple(int(e) for e in value)
            else:
                values[field.name] = field.type(int(value) if field.type is bool else value)
        return Plan(**values)


def _attr(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def whole_vector_width(out_w, lanes):
    """Columns to compute a row of ``out_w`` with: whole vectors where the row has odd ones.

    A row narrower than a vector is computed in the next power of two (unaligned loads of an
    odd width split into several instructions); a row between two and four vectors in whole
    vectors. A row between one and two vectors keeps its width (computed wider, slower).
    """
    if not lanes:
        return out_w
    if out_w < lanes:
        return 1 << (out_w - 1).bit_length()
    if 2 * lanes < out_w < 4 * lanes and out_w % lanes:
        return -(-out_w // lanes) * lanes
    return out_w


def stages_rows(conv):
    """Whether the width is innermost and the rows need staging (strided or padded)."""
    layout = conv.layout
    return layout.index_of("W") == len(layout) - 1 and (conv.strides[1] > 1 or any(conv.pads))


def row_extent(conv, width):
    """Padded input columns a row of ``width`` output columns reads."""
    return (width - 1) * conv.strides[1] + (conv.kernel[1] - 1) * conv.dilation[1] + 1


def _staging(conv, width, min_tasks):
    """How the convolution reads its input (see NONE ... PLANES)."""
    if vectorized_along_channels(conv.layout):
        return GUARDED if any(conv.pads) else NONE
    if not stages_rows(conv):
        return PADDED if any(conv.pads) else NONE
    stride = conv.strides[1]
    columns = -(-row_extent(conv, width) // stride)
    taps = [column * conv.dilation[1] for column in range(conv.kernel[1])]
    if not splits_by_phase(stride, taps, columns, conv.pads[1], conv.nchw[3]):
        return ROWS
    # a tall kernel's padding rows zeroed once, not masked at every read (many tasks only)
    zeroed = conv.kernel[0] >= ZEROED_KERNEL_ROWS and conv.nchw[1] >= ZEROED_TASKS * min_tasks
    return PLANES if zeroed and (conv.pads[0] or conv.pads[2]) else PHASES


def staged_shape(conv, plan):
    """The shape of the tensor the convolution reads (before any upsampling), in its layout."""
    layout = conv.layout
    shape = list(conv.data_shape)
    if plan.staging == NONE:
        return tuple(shape)
    h_pos, w_pos = layout.index_of("H"), layout.index_of("W")
    shape[h_pos] += conv.pads[0] + conv.pads[2]
    if plan.staging in (PHASES, PLANES):
        stride = conv.strides[1]
        return tuple(shape[:-1] + [stride, -(-row_extent(conv, plan.width) // stride)])
    # the rows computed `width` wide read zeros past the right padding
    extra = (plan.width - plan.out_width) * conv.strides[1]
    shape[w_pos] += conv.pads[1] + conv.pads[3] + extra
    return tuple(shape)


def make_plan(cfg, conv, cpu, accumulators):
    """The :class:`Plan` of ``conv`` on ``cpu`` (None: no target, the structure only) from
    ``cfg``, whose knobs this defines, and whose fallback it fills where nothing is tuned."""
    out_w = conv.out_size[1]
    width = out_w
    if stages_rows(conv):
        width = whole_vector_width(out_w, cpu.lanes if cpu else None)
    staging = _staging(conv, width, cpu.min_tasks if cpu else DEFAULT_MIN_TASKS)
    phase_row, phase_plane = (), ()
    _, _, height, in_w = conv.nchw
    if staging in (PHASES, PLANES):
        stride = conv.strides[1]
        phase_row = (in_w, conv.pads[1], stride, -(-row_extent(conv, width) // stride))
    if staging == PLANES:
        rows_read = (conv.out_size[0] - 1) * conv.strides[0]
        rows_read += (conv.kernel[0] - 1) * conv.dilation[0] + 1
        phase_plane = (height, conv.pads[0], conv.pads[2], rows_read)
    structure = Plan(
        staging=staging,
        upsample=conv.multiplier > 1 and vectorized_along_channels(conv.layout),
        width=width,
        out_width=out_w,
        lanes=cpu.lanes if cpu else 0,
        align=cpu.line_bytes * 8 // tvm.DataType(conv.dtype).bits if cpu else 1,
        phase_row=phase_row,
        phase_plane=phase_plane,
    )
    if cfg is None or cpu is None:
        return structure
    switches = _define_knobs(cfg, conv, structure)
    if cfg.is_fallback:
        _fallback(cfg, conv, structure, cpu, accumulators)
    return replace(
        structure,
        tile_c=tuple(cfg["tile_c"].size),
        tile_h=tuple(cfg["tile_h"].size),
        tile_w=tuple(cfg["tile_w"].size),
        **{name: bool(cfg[name].val) for name in switches},
    )


def _block_sums(entity, channels_last, block):
    """The sums a register block of the configuration ``entity`` holds, in elements."""
    rows = entity["tile_h"].size[-1]
    if channels_last:
        return rows * entity["tile_w"].size[-1] * entity["tile_c"].size[-1] * block
    return rows * entity["tile_w"].size[-2] * entity["tile_w"].size[-1]


def _define_knobs(cfg, conv, plan):
    """The template's knobs, over the computed output's axes; returns the names of the on/off
    knobs this conv has (the plan's fields of the same names; the others stay off)."""
    layout = conv.layout
    shape = conv.out_shape(plan.width)
    out_c, out_h, out_w = (shape[layout.index_of(axis)] for axis in "CHW")
    channels_last = vectorized_along_channels(layout)
    packed = is_packed(layout)
    cfg.define_split("tile_c", out_c, num_outputs=2)
    # unpacked: rows of a task, blocks of rows within it, rows of a register block; every
    # divisor, so that tuning reaches (and logs) the fallback's task of all rows of a plane
    cfg.define_split("tile_h", out_h, num_outputs=2 if packed else 3)
    cfg.define_split("tile_w", out_w, num_outputs=3 if not channels_last else 2)
    switches = {"unroll_kernel": [1, 0], "parallel": [1, 0]}
    if channels_last and not packed:
        switches["channels_inner"] = [0, 1]
    if not channels_last and plan.staging != NONE:
        switches["stage_per_block"] = [0, 1]
    if plan.upsample and not packed:
        switches["upsample_per_tap"] = [0, 1]
    for name, values in switches.items():
        cfg.define_knob(name, values)
    # a block of more sums than the largest register file only spills, and takes LLVM up to a
    # minute to compile unrolled; the bound depends on the workload only
    block = shape[layout.index_of("c")] if packed else 1
    cfg.multi_filter(
        filter=lambda entity: _block_sums(entity, channels_last, block) <= MAX_BLOCK_SUMS
    )
    return tuple(switches)


def _fallback(cfg, conv, plan, cpu, accumulators):
    """The untuned configuration: the rules of the conv's layout family, then the loops."""
    work = conv.taps
    for extent in conv.out_shape(plan.width):
        work *= extent
    if vectorized_along_channels(conv.layout):
        _channels_fallback(cfg, conv, plan, cpu, accumulators, work)
    else:
        _rows_fallback(cfg, conv, plan, cpu, accumulators)
    cfg["unroll_kernel"] = OtherOptionEntity(1)
    # less work than starting the thread pool costs runs on one thread
    cfg["parallel"] = OtherOptionEntity(int(work >= PARALLEL_WORK))


def _rows_fallback(cfg, conv, plan, cpu, accumulators):
    """The untuned tiles of a width-innermost conv: vectors along a row, blocks of rows."""
    # pylint: disable=too-many-locals
    out_h, out_w = conv.out_size[0], plan.width
    out_c, in_c, multiplier = conv.out_channels, conv.nchw[1], conv.multiplier
    lanes = cpu.vector_lanes(conv.dtype)
    split = plan.staging in (PHASES, PLANES)
    # strided columns not split by phase are left scalar (LLVM widens them with shuffles)
    strided = conv.strides[1] > 1 and not split
    # several channels a task on small planes, to pay for its launch
    channels_per_task = next((n for size, n in TASK_CHANNELS if out_h * out_w <= size), 1)
    vec = 1 if strided else vector_factor(out_w, lanes)
    registers = 1
    if not strided and lanes < out_w < 2 * lanes:
        # one vector of two registers, not two of half the row: it starts on a cache line
        vec, registers = out_w, 2
    if plan.cropped and out_w > lanes:
        # a row computed whole over padding: one vector of as many registers
        vec, registers = out_w, max(1, out_w // lanes)
    # the sums of a vector of 8-bit data on NEON take several registers
    registers *= cpu.sum_registers(vec // registers)
    if strided:
        tile_c = 1
    elif multiplier > 1:
        # the m outputs of an input channel in one task: its rows staged once; two input
        # channels at least for several registers a vector, or LLVM spills the hoisted rows
        inputs = channels_per_task // multiplier
        inputs = max(inputs, 2) if registers > 1 else inputs
        tile_c = multiplier * largest_divisor(in_c, inputs)
    else:
        tile_c = largest_divisor(out_c, channels_per_task)
    streaming = False
    if multiplier == 1 and split:
        # strided rows of an input larger than L2 stream from L3: longer sweeps a task
        channels = _streaming_channels(conv, tile_c, cpu)
        streaming, tile_c = channels > tile_c, channels
    cfg["tile_c"] = SplitEntity([-1, tile_c])
    # blocks of rows as tall as the registers allow: a task reads its rows (rows + kH - 1) /
    # rows times
    sums = _row_block_sums(min(accumulators, ROW_BLOCK_SUMS), conv.taps, cpu, registers)
    rows = register_block(out_h, sums // registers)
    channel_tasks = out_c // tile_c
    blocks = 1
    if plan.staging != NONE:
        cfg["stage_per_block"] = OtherOptionEntity(0)
    if channel_tasks >= cpu.min_tasks:
        # with tasks enough, a task takes as many blocks of rows as its staged rows fit in L1
        blocks = _blocks_in_l1(conv, plan, cpu, rows, tile_c)
        if plan.staging != NONE and channel_tasks >= 2 * cpu.min_tasks and blocks < out_h // rows:
            # a whole channel a task all the same, read in order, staged block by block...
            blocks = out_h // rows
            # ...unless that stages a block's rows too many times over: then all at once
            stride_h, kernel_h = conv.strides[0], conv.kernel[0]
            restaged = ((rows - 1) * stride_h + kernel_h) / (rows * stride_h)
            cfg["stage_per_block"] = OtherOptionEntity(int(restaged < RESTAGE_LIMIT))
    if plan.staging == PLANES or streaming:
        # planes staged whole: all rows of a task's channels
        blocks = out_h // rows
        cfg["stage_per_block"] = OtherOptionEntity(0)
    cfg["tile_h"] = SplitEntity([-1, blocks, rows])
    # a block of all the rows there are (a tall kernel over one row) takes several vectors
    # along the width instead, as many as its sums allow
    vectors = 1
    if rows == out_h and vec < out_w and not plan.cropped:
        vectors = largest_divisor(out_w // vec, sums // (rows * registers))
    cfg["tile_w"] = SplitEntity([-1, vectors, vec])


def _blocks_in_l1(conv, plan, cpu, rows, tile_c):
    """The most blocks of ``rows`` rows (a divisor of the blocks there are) whose staged rows
    fit a task's share of L1 (``cpu.stage_bytes``)."""
    out_h = conv.out_size[0]
    shape = staged_shape(conv, plan)
    phases = shape[-2] if plan.staging in (PHASES, PLANES) else 1
    # each phase of a staged row starts on a cache line
    phase_bytes = shape[-1] * tvm.DataType(conv.dtype).bits // 8
    row_bytes = phases * -(-phase_bytes // cpu.line_bytes) * cpu.line_bytes
    # the input channels the task's output channels read
    row_bytes *= -(-tile_c // conv.multiplier)
    stride_h, kernel_h = conv.strides[0], conv.kernel[0]
    for count in range(out_h // rows, 0, -1):
        staged_rows = (count * rows - 1) * stride_h + kernel_h
        if (out_h // rows) % count == 0 and staged_rows * row_bytes <= cpu.stage_bytes:
            return count
    return 1


def _streaming_channels(conv, channels, cpu):
    """Channels of a task of strided rows: at least ``channels``; where the input is larger
    than L2, the fewest multiples of ``channels`` that stage ``cpu.stream_bytes`` at once, as
    long as there are ``2 * cpu.min_tasks`` tasks."""
    batch, in_c, height, width = conv.nchw
    channel_bytes = height * width * tvm.DataType(conv.dtype).bits // 8
    if batch * in_c * channel_bytes < cpu.l2_bytes:
        return channels
    best = channels
    for count in range(channels, in_c // (2 * cpu.min_tasks) + 1, channels):
        if in_c % count == 0:
            best = count
            if count * channel_bytes >= cpu.stream_bytes:
                break
    return best


def _row_block_sums(accumulators, taps, cpu, row_registers):
    """Vector sums of a block of rows: ``accumulators``, or what the registers leave beside a
    small kernel's broadcast weights, a loaded row and a temporary (LLVM keeps the weights over
    a task's blocks), never below two rows of ``row_registers`` registers."""
    if taps <= HELD_WEIGHTS and taps + accumulators + 2 > cpu.vector_registers:
        return max(cpu.vector_registers - taps - 2, 2 * row_registers)
    return accumulators


def _channels_fallback(cfg, conv, plan, cpu, accumulators, work):
    """The untuned tiles of a channels-innermost conv: vectors along channels, blocks of
    columns of one row."""
    layout = conv.layout
    packed = is_packed(layout)
    shape = conv.out_shape(plan.width)
    out_c, out_h, out_w = (shape[layout.index_of(axis)] for axis in "CHW")
    lanes = cpu.vector_lanes(conv.dtype)
    at_tap = False
    # packed layouts vectorize their inner channel block, and split only the outer one
    vec = 1 if packed else vector_factor(out_c, lanes)
    if plan.upsample and not packed:
        # an input read about once is upsampled at each tap, into vectors of two input
        # channels' m copies (a two-element load and a permute)
        padded = staged_shape(conv, plan)
        reads = out_h * out_w * conv.taps
        reads /= padded[layout.index_of("H")] * padded[layout.index_of("W")]
        if reads < TAP_UPSAMPLE_READS:
            multiplier = conv.multiplier
            at_tap = 2 * multiplier <= lanes and out_c % (2 * multiplier) == 0
            vec = 2 * multiplier if at_tap else largest_divisor(multiplier, lanes)
        cfg["upsample_per_tap"] = OtherOptionEntity(int(at_tap))
    cfg["tile_c"] = SplitEntity([-1, vec])
    # a vector whose sums take several registers (8-bit data on NEON) leaves fewer columns
    columns = min(MAX_COLUMNS, max(1, accumulators // cpu.sum_registers(vec)))
    cfg["tile_w"] = SplitEntity([-1, register_block(out_w, columns)])
    inner = False
    if not packed:
        # tasks over all channel blocks where their window stays in L1 (a layer on one
        # thread keeps each channel block's weights over all its columns instead)
        block_w = cfg["tile_w"].size[-1]
        inner = work >= PARALLEL_WORK and _channels_inner(conv, vec, block_w, cpu, at_tap)
        cfg["channels_inner"] = OtherOptionEntity(int(inner))
    # an upsampled input is built per task: tall tasks rebuild fewer of its rows; tasks of
    # rows over all channels are one row each, so that there are enough of them
    rows = register_block(out_h, UPSAMPLED_TASK_ROWS) if plan.upsample and not inner else 1
    cfg["tile_h"] = SplitEntity([-1, rows] if packed else [-1, rows, 1])


def _channels_inner(conv, vec, block_w, cpu, upsample_per_tap):
    """Whether NHWC tasks should span all channel blocks of their rows: they write whole
    pixels in turn, which wins while the input a block of columns reads across all channels
    stays in L1, and unless every task would upsample all channels."""
    if conv.multiplier > 1 and conv.multiplier % vec and not upsample_per_tap:
        return False
    kernel_h, kernel_w = conv.kernel
    window_w = (block_w - 1) * conv.strides[1] + (kernel_w - 1) * conv.dilation[1] + 1
    window_h = (kernel_h - 1) * conv.dilation[0] + 1
    bytes_per_pixel = conv.nchw[1] * tvm.DataType(conv.dtype).bits // 8
    return window_h * window_w * bytes_per_pixel <= cpu.window_bytes
