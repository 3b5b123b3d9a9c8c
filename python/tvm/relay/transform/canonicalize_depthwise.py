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
"""Rewrite depthwise convolutions from the channel-multiplier form to the canonical grouped form."""

import contextlib
import logging
from dataclasses import dataclass
from typing import Tuple

import numpy as np

import tvm
from tvm import relay, tir
from tvm.relay.dataflow_pattern import DFPatternCallback, is_op, rewrite, wildcard
from tvm.topi.nn.depthwise_form import MULTIPLIER, conv_form, is_primal_layout

logger = logging.getLogger(__name__)

CONV_OPS = ("nn.conv2d", "nn.conv3d", "qnn.conv2d")
"""The convolutions the pass rewrites: Conv2DRel, Conv3DRel and QnnConv2DRel all accept the
multiplier form."""


@dataclass(frozen=True)
class Rewrite:
    """One convolution the pass rewrote (see :func:`recording_rewrites`)."""

    op: str
    data_layout: str
    kernel_layout: str
    in_channels: int
    multiplier: int
    weight_shape: Tuple[int, ...]
    new_weight_shape: Tuple[int, ...]
    new_constant: bool  # a constant weight became a new constant (else: reshaped in the graph)


_RECORDERS = []


@contextlib.contextmanager
def recording_rewrites():
    """Collect every rewrite the pass makes inside the ``with`` block, wherever it runs (called
    directly, or in a build), as a list of :class:`Rewrite`."""
    records = []
    _RECORDERS.append(records)
    try:
        yield records
    finally:
        _RECORDERS.remove(records)


def _static_shape(ty):
    return [int(extent) for extent in ty.shape]


def conv_call_form(call):
    """The :class:`~tvm.topi.nn.depthwise_form.ConvForm` of a typed ``nn.conv2d``/``nn.conv3d``."""
    data_type, kernel_type = call.args[0].checked_type, call.args[1].checked_type
    attrs = call.attrs
    return conv_form(
        data_type.shape, attrs.data_layout, kernel_type.shape, attrs.kernel_layout, attrs.groups
    )


conv2d_call_form = conv_call_form
"""The name :func:`conv_call_form` had when the pass rewrote ``nn.conv2d`` only."""


def _oi_layout(layout):
    # OIHW for a 2-D kernel layout, OIDHW for a 3-D one: where [C, m, ..] -> [C*m, 1, ..] is a
    # reshape.
    spatial = [layout[i] for i in range(len(layout)) if layout[i] not in "OI"]
    return "OI" + "".join(sorted(spatial, key="DHW".index))


def canonical_weight_shape(kernel_shape, kernel_layout, multiplier):
    """The canonical weight's shape in ``kernel_layout``: O grows ``m`` times, I becomes 1."""
    layout = tir.layout(kernel_layout)
    shape = list(kernel_shape)
    shape[layout.index_of("O")] *= multiplier
    shape[layout.index_of("I")] = 1
    return shape


def _merges_by_reshape(layout):
    # When I directly follows O, [.., C, m, ..] -> [.., C*m, 1, ..] keeps the element order, so
    # a reshape alone does the rewrite (OIHW, HWOI, OIDHW, DHWOI).
    return layout.index_of("I") == layout.index_of("O") + 1


def _canonical_constant(weight, kernel_layout, multiplier):
    layout = tir.layout(kernel_layout)
    array = weight.data.numpy()
    new_shape = canonical_weight_shape(array.shape, kernel_layout, multiplier)
    if _merges_by_reshape(layout):
        return relay.const(array.reshape(new_shape), str(array.dtype))
    oi_layout = _oi_layout(layout)
    to_oi = tir.bijective_layout(kernel_layout, oi_layout)
    oi = array.transpose([layout.index_of(axis) for axis in oi_layout])
    canonical = oi.reshape([int(e) for e in to_oi.forward_shape(new_shape)])
    back_axes = [oi_layout.index(layout[i]) for i in range(len(layout))]
    return relay.const(np.ascontiguousarray(canonical.transpose(back_axes)), str(array.dtype))


def _canonical_expr(weight, kernel_shape, kernel_layout, multiplier):
    layout = tir.layout(kernel_layout)
    new_shape = canonical_weight_shape(kernel_shape, kernel_layout, multiplier)
    if _merges_by_reshape(layout):
        return relay.reshape(weight, new_shape)
    oi_layout = _oi_layout(layout)
    to_oi = tir.bijective_layout(kernel_layout, oi_layout)
    oi = relay.layout_transform(weight, kernel_layout, oi_layout)
    oi = relay.reshape(oi, [int(e) for e in to_oi.forward_shape(new_shape)])
    return relay.layout_transform(oi, oi_layout, kernel_layout)


def canonical_weight(weight, kernel_shape, kernel_layout, multiplier):
    """The canonical grouped form of a multiplier-form weight, in the same kernel layout.

    A constant becomes a new constant; any other expression gets reshaping ops, which
    ``FoldConstant`` folds once its value is bound.
    """
    if isinstance(weight, relay.Constant):
        return _canonical_constant(weight, kernel_layout, multiplier)
    return _canonical_expr(weight, kernel_shape, kernel_layout, multiplier)


# The layouts QNN's canonicalization of qnn.conv2d takes. In others, stock TVM lowers a
# qnn.conv2d only where a target's legalization turns it into nn.conv2d first, which arm_cpu's
# does for the multiplier form (its depthwise test is C == O == groups) and not for the
# canonical one; left to stock, it becomes an nn.conv2d, which is then canonicalized.
QNN_DATA_LAYOUTS = ("NCHW", "NHWC")
QNN_KERNEL_LAYOUTS = ("OIHW", "HWIO", "HWOI", "OHWI")


def _skip_reason(op_name, data_layout, kernel_layout, kernel_type):
    """Why a multiplier-form convolution is left as it is, or None to rewrite it."""
    if not is_primal_layout(kernel_layout):
        return f"packed kernel layout {kernel_layout}"
    if not all(isinstance(e, tir.IntImm) for e in kernel_type.shape):
        return "symbolic weight shape"
    if op_name == "qnn.conv2d" and (
        data_layout not in QNN_DATA_LAYOUTS or kernel_layout not in QNN_KERNEL_LAYOUTS
    ):
        return f"layouts {data_layout}/{kernel_layout}, which QNN lowers only as written"
    return None


class _MultiplierFormRewrite(DFPatternCallback):
    """Matches every ``nn.conv2d``, ``nn.conv3d`` and ``qnn.conv2d``; rewrites those in the
    multiplier form."""

    def __init__(self, external_calls):
        # The module is typed before the rewrite, so `pre` keeps its checked types and its
        # identity (which the external-codegen check relies on).
        super().__init__(require_type=False, rewrite_once=True)
        conv2d, conv3d = (is_op(op)(wildcard(), wildcard()) for op in CONV_OPS[:2])
        # data, weight, input and kernel zero points, input and kernel scales
        qnn_conv2d = is_op("qnn.conv2d")(*[wildcard() for _ in range(6)])
        self.pattern = conv2d | conv3d | qnn_conv2d
        self.external_calls = external_calls
        self.rewritten = {}
        self.count = 0

    def callback(self, pre, post, node_map):
        form = conv_call_form(pre)
        if form.kind != MULTIPLIER:
            return post
        span = f"{pre.op.name} {pre.attrs.data_layout}/{pre.attrs.kernel_layout}"
        reason = (
            "inside a function for an external codegen"
            if pre in self.external_calls
            else (
                _skip_reason(
                    pre.op.name,
                    pre.attrs.data_layout,
                    pre.attrs.kernel_layout,
                    pre.args[1].checked_type,
                )
            )
        )
        if reason is not None:
            logger.debug("%s: multiplier form left as is: %s", span, reason)
            return post
        weight = post.args[1]
        kernel_shape = _static_shape(pre.args[1].checked_type)
        key = (weight, pre.attrs.kernel_layout)
        if key not in self.rewritten:
            self.rewritten[key] = canonical_weight(
                weight, kernel_shape, pre.attrs.kernel_layout, form.multiplier
            )
        new_weight = self.rewritten[key]
        self.count += 1
        record = Rewrite(
            pre.op.name,
            str(pre.attrs.data_layout),
            str(pre.attrs.kernel_layout),
            form.in_channels,
            form.multiplier,
            tuple(kernel_shape),
            tuple(canonical_weight_shape(kernel_shape, pre.attrs.kernel_layout, form.multiplier)),
            isinstance(new_weight, relay.Constant),
        )
        for records in _RECORDERS:
            records.append(record)
        logger.debug(
            "%s: C=%d m=%d: weight %s -> %s (%s)",
            span,
            record.in_channels,
            record.multiplier,
            list(record.weight_shape),
            list(record.new_weight_shape),
            "new constant" if record.new_constant else "reshaped in graph",
        )
        # qnn.conv2d's zero points and scales stay as they are: a per-channel one is indexed by
        # output channel, c*m + j in both forms
        args = [post.args[0], new_weight] + list(post.args[2:])
        return relay.Call(post.op, args, post.attrs, post.type_args, pre.span)


def _external_conv_calls(func):
    """The conv calls inside nested functions that an external codegen will compile."""
    calls = set()

    def visit_function(node):
        if isinstance(node, relay.Function) and node.attrs and "Compiler" in node.attrs:
            relay.analysis.post_order_visit(node.body, visit_call)

    def visit_call(node):
        if isinstance(node, relay.Call):
            calls.add(node)

    relay.analysis.post_order_visit(func, visit_function)
    return calls


def skip_function_reason(func):
    """Why the pass leaves ``func`` alone (a string), or None where it rewrites it."""
    if not isinstance(func, relay.Function):
        return "not a Relay function"
    for attr in ("Compiler", "Primitive"):
        if func.attrs and attr in func.attrs:
            return f"marked {attr}"
    return None


PASS_NAME = "CanonicalizeDepthwise"
OPT_LEVEL = 3


def context_runs(name, opt_level, ctx=None):
    """Whether ``ctx`` (default: the current PassContext) runs the pass ``name`` of
    ``opt_level``, by the rule every pass follows: listed in ``required_pass``, or at or below
    the context's ``opt_level`` and not disabled."""
    ctx = tvm.transform.PassContext.current() if ctx is None else ctx
    if name in ctx.required_pass:
        return True
    return ctx.opt_level >= opt_level and name not in ctx.disabled_pass


def pass_enabled(ctx=None):
    """Whether ``ctx`` (default: the current PassContext) runs ``CanonicalizeDepthwise``."""
    return context_runs(PASS_NAME, OPT_LEVEL, ctx)


def legalize_multiplier_form(op, attrs, inputs, types):
    """The canonical form of one convolution call, given as a legalize function receives it.

    Every Relay pipeline runs ``Legalize`` (and ``qnn.transform.Legalize``) before fusion, the
    C++ ones too (MetaSchedule's task extraction, the VM's), so a legalize registration sees
    every convolution the pass may have missed.

    Parameters
    ----------
    op : tvm.ir.Op
        ``nn.conv2d``, ``nn.conv3d`` or ``qnn.conv2d``.
    attrs, inputs, types :
        The call's attributes, arguments, and argument types followed by its result type.

    Returns
    -------
    result : tuple of (relay.Call, list of Type), or None
        The canonical call and its argument and result types, or None where the call is not in
        the multiplier form or is left as it is (see :func:`CanonicalizeDepthwise`).
    """
    data_type, kernel_type = types[0], types[1]
    spatial = {"nn.conv3d": 3}.get(op.name, 2)
    form = conv_form(
        data_type.shape,
        attrs.data_layout,
        kernel_type.shape,
        attrs.kernel_layout,
        attrs.groups,
        spatial,
    )
    if (
        form.kind != MULTIPLIER
        or _skip_reason(op.name, attrs.data_layout, attrs.kernel_layout, kernel_type) is not None
    ):
        return None
    kernel_shape = _static_shape(kernel_type)
    weight = canonical_weight(inputs[1], kernel_shape, attrs.kernel_layout, form.multiplier)
    new_shape = canonical_weight_shape(kernel_shape, attrs.kernel_layout, form.multiplier)
    new_types = [data_type, relay.TensorType(new_shape, kernel_type.dtype)] + list(types[2:])
    return relay.Call(op, [inputs[0], weight] + list(inputs[2:]), attrs), new_types


@tvm.transform.module_pass(opt_level=OPT_LEVEL, name=PASS_NAME)
class _CanonicalizeDepthwise:
    """See :func:`CanonicalizeDepthwise`."""

    def transform_module(self, mod, ctx):  # pylint: disable=unused-argument
        """The module with every function's multiplier-form convolutions rewritten."""
        # Work on a copy: InferType and update_func would otherwise change the caller's module.
        new_mod = relay.transform.InferType()(mod.clone())
        changed = False
        for gvar, func in list(new_mod.functions.items()):
            reason = skip_function_reason(func)
            if reason is not None:
                logger.debug("function %s skipped: %s", gvar.name_hint, reason)
                continue
            callback = _MultiplierFormRewrite(_external_conv_calls(func))
            new_func = rewrite(callback, func, new_mod)
            if callback.count:
                logger.debug("function %s: %d conv(s) rewritten", gvar.name_hint, callback.count)
                new_mod[gvar] = new_func
                changed = True
        if not changed:
            return mod
        return relay.transform.InferType()(new_mod)


def CanonicalizeDepthwise():  # pylint: disable=invalid-name
    """Rewrite depthwise ``nn.conv2d``/``nn.conv3d``/``qnn.conv2d`` from the multiplier to the
    canonical form.

    A depthwise convolution with channel multiplier ``m`` over ``C`` input channels
    (``groups == C``, ``channels == C*m``) reaches Relay with its weight in one of two forms.
    In OIHW terms the multiplier form is ``[C, m, kH, kW]`` (TFLite, Keras, TensorFlow) and the
    canonical grouped form is ``[C*m, 1, kH, kW]`` (ONNX, PyTorch, and every grouped
    convolution); in OIDHW terms ``[C, m, kD, kH, kW]`` and ``[C*m, 1, kD, kH, kW]``. This pass
    rewrites every convolution in the multiplier form, in any data layout and any unpacked
    kernel layout, to the canonical form with identical results, so that one strategy serves
    every depthwise 2-D convolution, and so that a 3-D one computes ``C*m`` output channels at
    all (stock TVM 0.19 type-checks the multiplier form of ``nn.conv3d``, then computes ``C``).
    A quantized ``qnn.conv2d`` (what the TFLite frontend emits for a quantized depthwise conv,
    HWOI ``[kH, kW, C, m]``) keeps its zero points and scales: per-channel ones are indexed by
    output channel, ``c*m + j`` in both forms; one in layouts QNN's canonicalization does not
    take (data other than NCHW/NHWC, kernel other than OIHW/HWIO/HWOI/OHWI) is left as written,
    for a target's QNN legalization to make it an ``nn.conv2d``, which is then rewritten.
    A constant weight becomes a new constant; any other weight is reshaped in the graph
    (``FoldConstant`` folds it once it is bound). Everything else is left unchanged, as are
    functions for an external codegen.

    Returns
    -------
    ret : tvm.transform.Pass
        The registered pass, named ``CanonicalizeDepthwise``, at opt_level 3.
    """
    return _CanonicalizeDepthwise()
