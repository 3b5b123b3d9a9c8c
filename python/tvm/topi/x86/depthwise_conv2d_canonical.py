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

This module registers the AutoTVM templates and holds what every layout shares: the compute,
which makes the convolution's plan (:mod:`.depthwise_conv2d_canonical_plan`: every choice, from
the configuration, tuned or the fallback's, and the CPU that
:func:`tvm.topi.generic.depthwise_cpu.describe_cpu` derives from the target), and the schedule
of the register block that follows it. The two layout families live in their own modules:
:mod:`.depthwise_conv2d_canonical_rows` (the width innermost, such as NCHW: vectors along a
row) and :mod:`.depthwise_conv2d_canonical_channels` (channels innermost or packed, such as
NHWC and NCHW16c: vectors along channels).
"""

import tvm
from tvm import autotvm, te, tir

from ..nn.depthwise_conv2d_canonical import depthwise_conv2d_canonical as _compute
from ..utils import get_const_tuple, traverse_inline
from . import depthwise_conv2d_canonical_channels as _channels
from . import depthwise_conv2d_canonical_rows as _rows
from .depthwise_conv2d_canonical_common import TAG, is_packed, vectorized_along_channels
from .depthwise_conv2d_canonical_plan import GUARDED, NONE, ROWS, PHASES, PLANES, Conv, Plan
from .depthwise_conv2d_canonical_plan import TASK_PRODUCTS, make_plan
from ..generic.depthwise_cpu import describe_cpu
from .depthwise_conv2d_canonical_staging import pad

# vector sums a register block may use, registers permitting (x86: 8 of AVX2's 16 registers)
ACCUMULATORS = 8


def depthwise_conv2d_canonical_cpu(
    cfg,
    data,
    kernel,
    strides,
    padding,
    dilation,
    layouts,
    out_dtype,
    cpu,
    accumulators=ACCUMULATORS,
):
    """:func:`tvm.topi.nn.depthwise_conv2d_canonical` in the form the CPU schedules take.

    The :class:`.depthwise_conv2d_canonical_plan.Plan` of the call is made here, from ``cfg``
    (AutoTVM's configuration, whose knobs it defines) and ``cpu`` (the
    :class:`tvm.topi.generic.depthwise_cpu.CPUDescription` compiled for; None when only the
    compute is asked), and attached to the convolution for the schedule. The input is
    staged as the plan says, so that vectors stay plain loads:

    * with channels innermost and a multiplier ``m > 1``, output channel ``o`` reading input
      channel ``o // m`` would make a vector of output channels gather its input: the padded
      input is then also upsampled along channels (input channel ``c`` repeated ``m`` times,
      computed per task by the schedule, never as a whole);
    * with the width innermost, the rows of a task are staged zero padded, and split by
      column phase when strided; an output row narrower than a vector is computed in a whole
      vector over zero padding and cropped (see :func:`.depthwise_conv2d_canonical_rows.compute`).

    ``layouts`` are the data and kernel layouts. The weight is read in place either way.
    """
    data_layout, kernel_layout = layouts
    conv = Conv.of(data, kernel, strides, padding, dilation, data_layout, kernel_layout)
    plan = make_plan(cfg, conv, cpu, accumulators)
    if plan.staging in (ROWS, PHASES, PLANES):
        return _rows.compute(data, kernel, conv, plan, kernel_layout, out_dtype)
    if plan.staging != NONE:
        data = pad(data, conv.layout, conv.pads)
    if plan.upsample:
        to_nchw = tir.bijective_layout(data_layout, "NCHW")
        data = _channels.upsample(data, to_nchw, conv.multiplier, conv.out_channels)
    return _compute(
        data,
        kernel,
        conv.strides,
        0,
        conv.dilation,
        data_layout,
        kernel_layout,
        out_dtype,
        attrs={"plan": plan.to_attrs()},
    )


def register_templates(name, accumulators=ACCUMULATORS):
    """Register :func:`depthwise_conv2d_canonical_cpu` and its schedule as the AutoTVM template
    ``name``, for the CPU of the current target with ``accumulators`` vector sums a block;
    returns the compute and the schedule."""

    @autotvm.register_topi_compute(name)
    def _compute(
        cfg, data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype
    ):
        # the CPU compiled for; none when only the compute is asked
        cpu = describe_cpu() if tvm.target.Target.current(allow_none=True) else None
        layouts = (data_layout, kernel_layout)
        return depthwise_conv2d_canonical_cpu(
            cfg, data, kernel, strides, padding, dilation, layouts, out_dtype, cpu, accumulators
        )

    @autotvm.register_topi_schedule(name)
    def _schedule(cfg, outs):
        del cfg  # the compute made the plan from it
        return schedule_depthwise_conv2d_canonical_cpu(outs)

    return _compute, _schedule


# Compute of :func:`tvm.topi.nn.depthwise_conv2d_canonical` and the vectorized, register-blocked
# schedule of the plan it made, as x86's AutoTVM template
depthwise_conv2d_canonical, schedule_depthwise_conv2d_canonical = register_templates(
    "depthwise_conv2d_canonical.x86"
)


def schedule_depthwise_conv2d_canonical_cpu(outs):
    """Schedule :func:`depthwise_conv2d_canonical_cpu` as its plan says.

    Shared by the x86 and ARM templates. Channels-last data (NHWC) is vectorized along the
    output channels and register-blocked along the output width; channels-first data (NCHW)
    is vectorized along the output width and blocked along width and rows. The accumulators
    of a block stay in registers over the unrolled kernel window. Channels-last reads the
    padding through a guard (it never depends on the vector lanes); channels-first pads only
    the rows of one task into a small buffer. Injective consumers (bias, activation) are
    fused into the store of the block.

    Parameters
    ----------
    outs : te.Tensor or list of te.Tensor
        The output of the (possibly fused) operator.

    Returns
    -------
    sch : te.Schedule
    """
    outs = [outs] if isinstance(outs, te.tensor.Tensor) else outs
    sch = te.create_schedule([x.op for x in outs])

    def _callback(op):
        if op.tag != TAG:
            return
        schedule_block(sch, op.output(0), outs[0])

    traverse_inline(sch, outs[0].op, _callback)
    return sch


def _stages(sch, conv, plan):
    """The staged rows (width innermost) and the upsampled input of ``conv``, None where it
    has none; padding read through guards is inlined."""
    data_pad = conv.op.input_tensors[0]
    upsampled = None
    if plan.upsample:
        upsampled, data_pad = data_pad, data_pad.op.input_tensors[0]
    if plan.staging == NONE:
        return None, upsampled
    if plan.staging == GUARDED:
        # the guards depend on rows and columns, never on the vector lanes (channels)
        sch[data_pad].compute_inline()
        return None, upsampled
    return data_pad, upsampled


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


def _task_vectors(plan, out, positions):
    """Vectors of the output one task of the (unpacked) channels-last family computes."""
    shape = get_const_tuple(out.shape)
    rows = 1
    for size in plan.tile_h[1:]:
        rows *= size
    lanes = plan.tile_c[-1]
    channels = shape[positions[1]] if plan.channels_inner else lanes
    return rows * shape[positions[3]] * channels // lanes


def _loads(expr, tensor):
    """Whether an operand of the binary ``expr`` is a load of ``tensor``."""
    return any(
        isinstance(side, tir.ProducerLoad) and side.producer.op == tensor.op
        for side in (expr.a, expr.b)
    )


def schedule_block(sch, conv, out):
    """Schedule ``conv`` and the injective stages between it and ``out`` into register blocks,
    as the plan the compute attached to ``conv`` says; returns that plan."""
    plan = Plan.from_attrs(conv.op.attrs["plan"])
    if not plan.tile_c:
        raise ValueError("depthwise_conv2d_canonical: the compute was made without a target")
    layout = tir.layout(conv.op.attrs["data_layout"])
    positions = tuple(layout.index_of(axis) for axis in "NCHW")
    channels_last = vectorized_along_channels(layout)
    packed = is_packed(layout)
    # the vector axis along channels: the inner block of a packed layout, else C itself
    lane_pos = layout.index_of("c") if packed else positions[1]
    data_pad, upsampled = _stages(sch, conv, plan)
    if conv.op == out.op:
        acc = sch.cache_write(conv, "global")
        out = conv
    else:
        acc = conv
        sch[conv].set_scope("global")

    # the stage of the register blocks: the output, or the rounded products of a requantize
    blocked = out
    product = None
    if channels_last and not packed:
        product = _rounded_product(conv, out)
    per_task = product is not None and _task_vectors(plan, out, positions) >= TASK_PRODUCTS
    if product is not None:
        o_vector, o_block, o_parallel, _ = _channels.tile(sch, plan, out, positions, lane_pos)
        if plan.parallel:
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
        vector, block, parallel, block_at = _channels.tile(sch, plan, blocked, positions, lane_pos)
    else:
        vector, block, parallel, block_at, h_mid = _rows.tile(sch, plan, blocked, positions)
    if plan.parallel and not per_task:
        sch[blocked].parallel(parallel)
    for axis in block:
        sch[blocked].unroll(axis)
    sch[blocked].vectorize(vector)
    sch[acc].compute_at(sch[blocked], block_at)
    if data_pad is not None:
        _rows.place_staging(sch, plan, conv, blocked, data_pad, parallel, h_mid)
    if upsampled is not None:
        _channels.place_upsampled(sch, plan, upsampled, blocked, parallel, lane_pos, packed)

    if channels_last:
        a_vector = _channels.order_accumulator(sch, acc, positions, lane_pos)
    else:
        a_vector = _rows.order_accumulator(sch, plan, acc, positions)
    sch[acc].unroll(sch[acc].op.axis[positions[2]])
    ry, rx = sch[acc].op.reduce_axis
    if upsampled is not None and not packed and plan.upsample_per_tap:
        # the pixels of a block of columns for this tap, upsampled into a few vectors; the
        # kernel loop stays rolled, as unrolled taps would share the lanes' channel pattern
        # as a vector variable, which LLVM 21 and newer reject in TVM's debug info
        sch[upsampled].compute_at(sch[acc], rx)
        sch[upsampled].vectorize(sch[upsampled].op.axis[lane_pos])
    elif plan.unroll_kernel:
        sch[acc].unroll(ry)
        sch[acc].unroll(rx)
    sch[acc].vectorize(a_vector)
    return plan
