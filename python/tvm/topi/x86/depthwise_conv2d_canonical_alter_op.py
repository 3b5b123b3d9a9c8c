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
"""x86 alter-layout for canonical depthwise conv2d: NCHW to NCHW{b}c, with its neighbours' block."""

import re

import tvm
from tvm import autotvm, relay, te, tir

from ...auto_scheduler import is_auto_scheduler_enabled
from ...meta_schedule.relay_integration import is_meta_schedule_enabled
from ..utils import get_const_tuple
from . import conv2d_alter_op as _stock
from .depthwise_conv2d_canonical_common import packed_shapes
from .depthwise_conv2d_canonical_packed import packs

PACKED_TEMPLATE = "depthwise_conv2d_canonical.x86"
"""The template the packed call (``nn.contrib_depthwise_conv2d_NCHWc``) dispatches to."""


def alter_conv2d_layout(attrs, inputs, tinfos, out_type):
    """Pack canonical depthwise convolutions as stock TVM packs depthwise ones; else stock x86.

    A layer's layout follows its network's, not its own speed alone: where x86 packs a network
    into NCHW{b}c, every layout change between two convolutions costs a ``layout_transform``
    of the whole tensor, often as long as a depthwise convolution itself. So the rule is stock
    TVM's, which is consistent along a chain: ``m = 1`` packs with ``channel_block`` (as
    stock packs depthwise_conv2d_NCHWc); ``m > 1`` stays NCHW (stock packs no such convolution)
    and so costs no transform that stock TVM does not have either. The kernel may be in any
    layout: AlterOpLayout transforms it (once, at build time, for a constant).
    """
    twin = nchw_twin(attrs, tinfos, out_type)
    if twin is not None:
        altered = alter_conv2d_layout(*twin[:1], inputs, *twin[1:])
        if altered is not None:
            return altered
    layouts = packs(*tinfos, attrs.data_layout, attrs.kernel_layout, attrs.groups)
    if layouts is not None:
        new_attrs = {key: attrs[key] for key in attrs.keys()}
        new_attrs["data_layout"], new_attrs["kernel_layout"] = layouts
        new_attrs["out_layout"] = layouts[0]
        carry_tuned_config(attrs, tinfos, out_type, layouts)
        return relay.nn.contrib_depthwise_conv2d_nchwc(*inputs, **new_attrs)
    altered = _stock._alter_conv2d_layout(attrs, inputs, tinfos, out_type)
    return take_arriving_block(altered, inputs, attrs, tinfos, out_type)


_PACKED = re.compile(r"NCHW(\d+)c")
_LAYOUT_FIELDS = ("out_layout", "dst_layout", "layout", "data_layout")


def arriving_block(expr, depth=8):
    """The channel block of the packed ``NCHW{b}c`` an altered argument arrives in, or None.

    AlterOpLayout hands a rule its arguments as they are after their own rewrite: a packed
    convolution, a layout transform or a resize names its layout; pointwise ops in between
    (bias, activation, residual add) keep their packed argument's.
    """
    if depth == 0 or not isinstance(expr, relay.Call) or not isinstance(expr.op, tvm.ir.Op):
        return None
    fields = set(expr.attrs.keys()) if expr.attrs is not None else set()
    for field in _LAYOUT_FIELDS:
        if field in fields and str(expr.attrs[field]):
            found = _PACKED.fullmatch(str(expr.attrs[field]))
            return int(found.group(1)) if found else None
    # relay.op is read here, not at import: topi is imported while tvm.relay is
    pointwise = (relay.op.OpPattern.ELEMWISE, relay.op.OpPattern.BROADCAST)
    if expr.op.get_attr("TOpPattern") not in pointwise:
        return None
    for arg in expr.args:
        block = arriving_block(arg, depth - 1)
        if block is not None:
            return block
    return None


def take_arriving_block(altered, inputs, attrs, tinfos, out_type):
    """``altered`` (stock's packed ``conv2d_NCHWc`` for an untuned float call) reading its
    data in the block it arrives in, where that block divides the input channels.

    Stock's untuned rule takes an input block no larger than the output block, so a 1x1
    convolution after a depthwise one often reads another block than the depthwise one
    writes, and AlterOpLayout puts a ``layout_transform`` between them. The input block only
    splits the reduction (the output block is the vector): the transform costs more than the
    block saves. A tuned configuration is kept as tuned.
    """
    if not isinstance(altered, relay.Call) or altered.op.name != "nn.contrib_conv2d_NCHWc":
        return altered
    if is_auto_scheduler_enabled() or is_meta_schedule_enabled() or int(attrs.groups) != 1:
        return altered
    data, kernel = tinfos
    if data.dtype != "float32" or kernel.dtype != "float32" or attrs.data_layout != "NCHW":
        return altered
    in_channels = get_const_tuple(data.shape)[1]
    block = arriving_block(inputs[0])
    current = _PACKED.fullmatch(str(altered.attrs.data_layout))
    if block is None or current is None or int(current.group(1)) == block or in_channels % block:
        return altered
    if _tuned(attrs, tinfos, out_type):
        return altered
    out_block = _PACKED.fullmatch(str(altered.attrs.out_layout)).group(1)
    fields = {str(key): altered.attrs[key] for key in altered.attrs.keys()}
    fields.update(data_layout=f"NCHW{block}c", kernel_layout=f"OIHW{block}i{out_block}o")
    return relay.nn.contrib_conv2d_nchwc(*inputs, **fields)


def _tuned(attrs, tinfos, out_type):
    """Whether the current dispatch context holds a tuned configuration for this call."""
    target = tvm.target.Target.current(allow_none=False)
    _, outs = relay.backend.te_compiler.select_implementation(
        relay.op.get("nn.conv2d"), attrs, tinfos, out_type, target
    )
    workload = autotvm.task.get_workload(outs)
    return (
        workload is not None
        and not autotvm.task.DispatchContext.current.query(target, workload).is_fallback
    )


def nchw_twin(attrs, tinfos, out_type):
    """``(attrs, tinfos, out_type)`` of the NCHW/OIHW convolution that computes this NHWC one,
    for an NHWC float conv2d that x86 packs like its NCHW twin: ``groups = 1``, or depthwise
    with ``m = 1``, and no tuned configuration of its own (a record tuned for the NHWC call is
    kept by leaving it as it is; so is every call when auto_scheduler or MetaSchedule is on,
    whose records are of the call as written). None for any other call.

    x86 computes NHWC convolutions with stock's generic NHWC schedule, several times slower
    than the packed NCHW{b}c one, and a network imported in NHWC would pay that on every conv.
    Altered as its twin, the call becomes the twin's packed call on the NHWC tensors;
    AlterOpLayout then inserts the transforms its layouts need, which cancel between packed
    neighbours, so that only the graph's edges keep them.
    """
    data, kernel = tinfos
    if attrs.data_layout != "NHWC" or str(attrs.out_layout) not in ("", "NHWC"):
        return None
    # auto_scheduler and MetaSchedule tune the call as written: keep it for their records
    if is_auto_scheduler_enabled() or is_meta_schedule_enabled():
        return None
    if (
        data.dtype != "float32"
        or kernel.dtype != "float32"
        or str(attrs.out_dtype) not in ("", "float32")
    ):
        return None
    data_shape = get_const_tuple(data.shape)
    to_oihw = tir.bijective_layout(attrs.kernel_layout, "OIHW")
    if to_oihw is None:
        return None
    kernel_shape = get_const_tuple(to_oihw.forward_shape(kernel.shape))
    groups = int(attrs.groups)
    if groups != 1 and not (groups == data_shape[3] == kernel_shape[0] and kernel_shape[1] == 1):
        return None
    if _tuned(attrs, tinfos, out_type):
        return None
    fields = {str(key): attrs[key] for key in attrs.keys()}
    # the packed call needs what type inference leaves implicit on the NHWC call
    fields.update(
        data_layout="NCHW",
        kernel_layout="OIHW",
        out_layout="",
        channels=kernel_shape[0],
        kernel_size=kernel_shape[2:],
    )
    twin_attrs = tvm.ir.make_node("relay.attrs.Conv2DAttrs", **fields)
    n, h, w, c = data_shape
    out_n, out_h, out_w, out_c = get_const_tuple(out_type.shape)
    twin_tinfos = [
        te.placeholder((n, c, h, w), data.dtype),
        te.placeholder(kernel_shape, kernel.dtype),
    ]
    twin_out = relay.TensorType((out_n, out_c, out_h, out_w), out_type.dtype)
    return twin_attrs, twin_tinfos, twin_out


def carry_tuned_config(attrs, tinfos, out_type, layouts):
    """Record the layer's tuned configuration, if any, for the packed call that replaces it.

    AutoTVM tunes the layer as its relay task extraction sees it (NCHW: alter-layout does not
    run there), with the template ``depthwise_conv2d_canonical_packed.x86``, which computes it
    packed in ``layouts``; its knobs are those of the packed call's template. As stock x86 does
    for depthwise_conv2d_NCHWc, the configuration is handed on with ``DispatchContext.update``,
    so the build finds it under the packed call's workload.
    """
    target = tvm.target.Target.current(allow_none=False)
    dispatch_ctx = autotvm.task.DispatchContext.current
    _, outs = relay.backend.te_compiler.select_implementation(
        relay.op.get("nn.conv2d"), attrs, tinfos, out_type, target
    )
    workload = autotvm.task.get_workload(outs)
    if workload is None:
        return
    cfg = dispatch_ctx.query(target, workload)
    if cfg.is_fallback:
        return
    (data, kernel), dtypes = tinfos, [t.dtype for t in tinfos]
    shapes = packed_shapes(
        get_const_tuple(data.shape),
        "NCHW",
        get_const_tuple(kernel.shape),
        attrs.kernel_layout,
        layouts,
    )
    # (name, data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype)
    packed = [te.placeholder(shape, dtype) for shape, dtype in zip(shapes, dtypes)]
    new_workload = autotvm.task.args_to_workload(
        packed + list(workload[3:6]) + list(layouts) + [workload[-1]], PACKED_TEMPLATE
    )
    dispatch_ctx.update(target, new_workload, cfg)
