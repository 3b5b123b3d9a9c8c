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
"""x86 templates of depthwise convolution on canonical weights (any multiplier and layout).

This module registers the AutoTVM templates and holds what every layout shares: the knobs,
the register block's sums and the placement of its stages. The two layout families live in
their own modules: :mod:`.depthwise_conv2d_canonical_rows` (the width innermost, such as
NCHW: vectors along a row) and :mod:`.depthwise_conv2d_canonical_channels` (channels
innermost or packed, such as NHWC and NCHW16c: vectors along channels). The untuned fallback
is a model of the CPU that :func:`tvm.topi.generic.depthwise_cpu.describe_cpu` derives from the
target.
"""

import tvm
from tvm import autotvm, te, tir
from tvm.autotvm.task.space import OtherOptionEntity

from ..nn.depthwise_conv2d_canonical import depthwise_conv2d_canonical as _compute
from ..nn.utils import get_pad_tuple
from ..utils import get_const_tuple, traverse_inline
from . import depthwise_conv2d_canonical_channels as _channels
from . import depthwise_conv2d_canonical_rows as _rows
from .depthwise_conv2d_canonical_common import (
    PAD_TAG,
    PARALLEL_WORK,
    TAG,
    UPSAMPLE_TAG,
    is_packed,
    vectorized_along_channels,
)
from ..generic.depthwise_cpu import describe_cpu
from .depthwise_conv2d_canonical_staging import pad


def depthwise_conv2d_canonical_cpu(
    data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype, cpu=None
):
    """:func:`tvm.topi.nn.depthwise_conv2d_canonical` in the form the CPU schedules take.

    The input is padded here, so that the schedule places the padding itself, and the
    compute runs unpadded on it. The staged input is arranged so that vectors stay plain
    loads:

    * with channels innermost and a multiplier ``m > 1``, output channel ``o`` reading input
      channel ``o // m`` would make a vector of output channels gather its input: the padded
      input is then also upsampled along channels (input channel ``c`` repeated ``m`` times,
      computed per task by the schedule, never as a whole);
    * with the width innermost, the rows of a task are staged zero padded, and split by
      column phase when strided; an output row narrower than a vector of ``cpu.lanes`` is
      computed in a whole vector over zero padding and cropped (see
      :func:`.depthwise_conv2d_canonical_rows.compute`).

    ``cpu`` is the :class:`tvm.topi.generic.depthwise_cpu.CPUDescription` compiled for (None when
    only the compute is asked). The weight is read in place either way.
    """
    layout = tir.layout(data_layout)
    to_nchw = tir.bijective_layout(data_layout, "NCHW")
    in_shape = get_const_tuple(to_nchw.forward_shape(data.shape))
    out_channels, _, kernel_h, kernel_w = get_const_tuple(
        tir.bijective_layout(kernel_layout, "OIHW").forward_shape(kernel.shape)
    )
    in_channels = in_shape[1]
    multiplier = out_channels // in_channels if out_channels % in_channels == 0 else 1
    stride_w = strides if isinstance(strides, int) else strides[1]
    dilation_h, dilation_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    pads = get_pad_tuple(
        padding, ((kernel_h - 1) * dilation_h + 1, (kernel_w - 1) * dilation_w + 1)
    )
    if _rows.stages_rows(layout, stride_w, pads):
        return _rows.compute(
            data,
            kernel,
            strides,
            dilation,
            pads,
            in_shape,
            (data_layout, kernel_layout),
            out_dtype,
            cpu,
        )
    if any(pads):
        data = pad(data, layout, pads)
    if multiplier > 1 and vectorized_along_channels(layout):
        data = _channels.upsample(data, to_nchw, multiplier, out_channels)
    return _compute(data, kernel, strides, 0, dilation, data_layout, kernel_layout, out_dtype)


@autotvm.register_topi_compute("depthwise_conv2d_canonical.x86")
def depthwise_conv2d_canonical(
    cfg, data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype
):
    """Compute of :func:`tvm.topi.nn.depthwise_conv2d_canonical`, as an AutoTVM template."""
    del cfg
    # the CPU compiled for; none when only the compute is asked
    cpu = describe_cpu() if tvm.target.Target.current(allow_none=True) else None
    return depthwise_conv2d_canonical_cpu(
        data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype, cpu
    )


@autotvm.register_topi_schedule("depthwise_conv2d_canonical.x86")
def schedule_depthwise_conv2d_canonical(cfg, outs):
    """Vectorized, register-blocked schedule for the CPU of the current target."""
    return schedule_depthwise_conv2d_canonical_cpu(cfg, outs, describe_cpu())


# Sums a register block may hold: 32 vector registers of 16 lanes, the largest of the CPUs the
# templates serve (AVX-512, SVE aside).
MAX_BLOCK_SUMS = 32 * 16


def _block_sums(entity, channels_last, block):
    """The sums a register block of the configuration ``entity`` holds, in elements: rows x
    columns x channels (a packed layout's blocks of ``block`` channels), or rows x columns x
    the vector along the width (width innermost)."""
    rows = entity["tile_h"].size[-1]
    if channels_last:
        return rows * entity["tile_w"].size[-1] * entity["tile_c"].size[-1] * block
    return rows * entity["tile_w"].size[-2] * entity["tile_w"].size[-1]


def _define_knobs(cfg, conv, cpu, accumulators, cropped=False):
    """Knobs of the template and, when nothing is tuned, the fallback chosen from the shape."""
    layout = tir.layout(conv.op.attrs["data_layout"])
    shape = get_const_tuple(conv.shape)
    out_c, out_h, out_w = (shape[layout.index_of(axis)] for axis in "CHW")
    channels_last = vectorized_along_channels(layout)
    cfg.define_split("tile_c", out_c, num_outputs=2)
    # unpacked layouts: rows of a task, blocks of rows within it, rows of a register block;
    # every divisor: the fallback gives a task of a large plane all its rows (28 blocks of
    # 4 rows of 112), which tuning must be able to reach and log as well
    cfg.define_split("tile_h", out_h, num_outputs=2 if is_packed(layout) else 3)
    cfg.define_split("tile_w", out_w, num_outputs=3 if not channels_last else 2)
    cfg.define_knob("unroll_kernel", [1, 0])
    cfg.define_knob("parallel", [1, 0])
    staged = conv.op.input_tensors[0]
    if channels_last and not is_packed(layout):
        # tasks of rows that loop over the channel blocks, or of rows and channel blocks
        cfg.define_knob("channels_inner", [0, 1])
    if not channels_last and staged.op.tag == PAD_TAG:
        # the staged rows of a task at once, or block by block of its rows
        cfg.define_knob("stage_per_block", [0, 1])
    if staged.op.tag == UPSAMPLE_TAG and not is_packed(layout):
        # the input upsampled along channels once per task, or at every kernel tap
        cfg.define_knob("upsample_per_tap", [0, 1])
    # a block of more sums than the largest register file only spills, and unrolled it takes
    # LLVM up to a minute to compile (a tuning trial); the bound depends on the workload only
    block = shape[layout.index_of("c")] if is_packed(layout) else 1
    cfg.multi_filter(
        filter=lambda entity: _block_sums(entity, channels_last, block) <= MAX_BLOCK_SUMS
    )
    if not cfg.is_fallback:
        return
    work = 1
    for extent in list(shape) + [int(axis.dom.extent) for axis in conv.op.reduce_axis]:
        work *= extent
    if channels_last:
        _channels.fallback(cfg, conv, cpu, accumulators, work)
    else:
        _rows.fallback(cfg, conv, cpu, accumulators, cropped)
    cfg["unroll_kernel"] = OtherOptionEntity(1)
    # a layer with less work than starting the thread pool costs runs on one thread
    cfg["parallel"] = OtherOptionEntity(int(work >= PARALLEL_WORK))


def schedule_depthwise_conv2d_canonical_cpu(cfg, outs, cpu, accumulators=8):
    """Schedule :func:`tvm.topi.nn.depthwise_conv2d_canonical` for a CPU with SIMD.

    Shared by the x86 and ARM templates. Channels-last data (NHWC) is vectorized along the
    output channels and register-blocked along the output width; channels-first data (NCHW)
    is vectorized along the output width and blocked along width and rows. The accumulators
    of a block stay in registers over the unrolled kernel window. Channels-last reads the
    padding through a guard (it never depends on the vector lanes); channels-first pads only
    the rows of one task into a small buffer. Injective consumers (bias, activation) are
    fused into the store of the block.

    Parameters
    ----------
    cfg : ConfigEntity
        Knobs ``tile_c``, ``tile_h``, ``tile_w`` (splits), ``unroll_kernel``, ``parallel``,
        ``stage_per_block`` (NCHW), ``channels_inner`` and ``upsample_per_tap`` (NHWC).
    outs : te.Tensor or list of te.Tensor
        The output of the (possibly fused) operator.
    cpu : CPUDescription
        The CPU compiled for (see :func:`tvm.topi.generic.depthwise_cpu.describe_cpu`).
    accumulators : int
        Vector accumulators a register block may use, registers permitting.

    Returns
    -------
    sch : te.Schedule
    """
    outs = [outs] if isinstance(outs, te.tensor.Tensor) else outs
    sch = te.create_schedule([x.op for x in outs])

    def _callback(op):
        if op.tag != TAG:
            return
        schedule_block(sch, cfg, op.output(0), outs[0], cpu, accumulators)

    traverse_inline(sch, outs[0].op, _callback)
    return sch


def _stages(sch, conv, channels_last):
    """The staged rows (width innermost) and the upsampled input of ``conv``, None where it
    has none; padding read through guards is inlined."""
    data_pad = conv.op.input_tensors[0]
    upsampled = None
    if isinstance(data_pad.op, te.ComputeOp) and data_pad.op.tag == UPSAMPLE_TAG:
        upsampled, data_pad = data_pad, data_pad.op.input_tensors[0]
    if not (isinstance(data_pad.op, te.ComputeOp) and data_pad.op.tag == PAD_TAG):
        data_pad = None
    elif channels_last or upsampled is not None:
        # the guards depend on rows and columns, never on the vector lanes (channels)
        sch[data_pad].compute_inline()
        data_pad = None
    return data_pad, upsampled


# Vectors of rounded products a task must hold for them to be stored per task (see
# _rounded_product): a task of fewer is straight-line code or short loops that LLVM unrolls,
# forwarding each stored product to its add, which it then contracts.
TASK_PRODUCTS = 64


def _rounded_product(conv, out):
    """The float product of an integer convolution's epilogue that is added to next, or None.

    A quantized convolution's requantize, as TVM lowers it, is ``floor(float(sums) * scale +
    c)``: a multiply and an add, each rounded to float32 in Relay. In one expression TVM's
    intrinsic lowering contracts them into a fused multiply-add (one rounding), and so does
    LLVM wherever it sees the product reach the add in one basic block; ``floor`` then turns
    a last-bit difference into a quantum now and then. TVM's own channels-last depthwise
    schedule computes every stage of the fused function in a loop of its own, so its
    products are rounded. The schedule stores the products in a buffer of their own, so as
    to compute TVM's integers: per task where a task holds at least ``TASK_PRODUCTS``
    vectors (loops LLVM keeps, so the adds load the stored products), else in a parallel
    loop of their own before the output's (another function: nothing to contract).
    """
    if not conv.dtype.startswith(("int", "uint")):
        return None
    stages = _stages_from(out, conv)
    shape = get_const_tuple(out.shape)
    ops = {stage.op for stage in stages}
    products = [
        producer
        for consumer in stages
        if isinstance(consumer.op.body[0], (tir.Add, tir.Sub))
        for producer in consumer.op.input_tensors
        if producer.op in ops
        and producer.dtype.startswith("float")
        and isinstance(producer.op.body[0], tir.Mul)
        and _loads(consumer.op.body[0], producer)
        and get_const_tuple(producer.shape) == shape
        # every path from the output to the sums passes through it: the register blocks
        # can move into its stage
        and not _reaches(out, conv, avoiding=producer)
    ]
    # the one nearest the sums (a requantize, rather than an activation after it)
    for product in products:
        if not any(other.op != product.op and _reaches(product, other) for other in products):
            return product
    return None


def _stages_from(out, conv):
    """The stages of the fused function between ``conv`` (excluded) and ``out``."""
    found = {}

    def _visit(tensor):
        if tensor.op in found or not isinstance(tensor.op, te.ComputeOp):
            return
        if tensor.op == conv.op:
            return
        if _reaches(tensor, conv):
            found[tensor.op] = tensor
            for producer in tensor.op.input_tensors:
                _visit(producer)

    _visit(out)
    return list(found.values())


def _reaches(tensor, target, avoiding=None):
    """Whether ``tensor`` is computed from ``target`` by a path that does not pass through
    ``avoiding``."""
    if avoiding is not None and tensor.op == avoiding.op:
        return False
    if tensor.op == target.op:
        return True
    return isinstance(tensor.op, te.ComputeOp) and any(
        _reaches(producer, target, avoiding) for producer in tensor.op.input_tensors
    )


def _task_vectors(cfg, out, positions):
    """Vectors of the output one task of the (unpacked) channels-last family computes."""
    shape = get_const_tuple(out.shape)
    rows = 1
    for size in cfg["tile_h"].size[1:]:
        rows *= size
    lanes = cfg["tile_c"].size[-1]
    channels = shape[positions[1]] if cfg["channels_inner"].val else lanes
    return rows * shape[positions[3]] * channels // lanes


def _loads(expr, tensor):
    """Whether an operand of the binary ``expr`` is a load of ``tensor``."""
    return any(
        isinstance(side, tir.ProducerLoad) and side.producer.op == tensor.op
        for side in (expr.a, expr.b)
    )


def schedule_block(sch, cfg, conv, out, cpu, accumulators=8):
    """Schedule ``conv`` and the injective stages between it and ``out`` into register blocks."""
    # an NCHW row computed wider than the output (see the rows family's compute)
    cropped = int(out.shape[-1]) != int(conv.shape[-1])
    _define_knobs(cfg, conv, cpu, accumulators, cropped)
    layout = tir.layout(conv.op.attrs["data_layout"])
    positions = tuple(layout.index_of(axis) for axis in "NCHW")
    channels_last = vectorized_along_channels(layout)
    # the vector axis along channels: the inner block of a packed layout, else C itself
    lane_pos = layout.index_of("c") if is_packed(layout) else positions[1]
    data_pad, upsampled = _stages(sch, conv, channels_last)
    if conv.op == out.op:
        acc = sch.cache_write(conv, "global")
        out = conv
    else:
        acc = conv
        sch[conv].set_scope("global")

    # the stage of the register blocks: the output, or the rounded products of a requantize
    blocked = out
    product = None
    if channels_last and not is_packed(layout):
        product = _rounded_product(conv, out)
    per_task = product is not None and _task_vectors(cfg, out, positions) >= TASK_PRODUCTS
    if product is not None:
        o_vector, o_block, o_parallel, _ = _channels.tile(sch, cfg, out, positions, lane_pos)
        if cfg["parallel"].val:
            sch[out].parallel(o_parallel)
        for axis in o_block:
            sch[out].unroll(axis)
        sch[out].vectorize(o_vector)
        if per_task:
            sch[product].compute_at(sch[out], o_parallel)
        else:
            sch[product].compute_root()
        blocked = product
    h_mid = None
    if channels_last:
        vector, block, parallel, block_at = _channels.tile(sch, cfg, blocked, positions, lane_pos)
    else:
        vector, block, parallel, block_at, h_mid = _rows.tile(sch, cfg, blocked, positions, cropped)
    if cfg["parallel"].val and not per_task:
        sch[blocked].parallel(parallel)
    for axis in block:
        sch[blocked].unroll(axis)
    sch[blocked].vectorize(vector)
    sch[acc].compute_at(sch[blocked], block_at)
    if data_pad is not None:
        _rows.place_staging(sch, cfg, conv, blocked, data_pad, parallel, h_mid, cpu)
    if upsampled is not None:
        _channels.place_upsampled(
            sch, cfg, upsampled, blocked, parallel, lane_pos, is_packed(layout)
        )

    if channels_last:
        a_vector = _channels.order_accumulator(sch, acc, positions, lane_pos)
    else:
        a_vector = _rows.order_accumulator(sch, cfg, acc, positions)
    sch[acc].unroll(sch[acc].op.axis[positions[2]])
    ry, rx = sch[acc].op.reduce_axis
    if upsampled is not None and not is_packed(layout) and cfg["upsample_per_tap"].val:
        # the pixels of a block of columns for this tap, upsampled into a few vectors; the
        # kernel loop stays rolled, as unrolled taps would share the lanes' channel pattern
        # as a vector variable, which LLVM 21 and newer reject in TVM's debug info
        sch[upsampled].compute_at(sch[acc], rx)
        sch[upsampled].vectorize(sch[upsampled].op.axis[lane_pos])
    elif cfg["unroll_kernel"].val:
        sch[acc].unroll(ry)
        sch[acc].unroll(rx)
    sch[acc].vectorize(a_vector)
