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
"""Rewrite PReLU imported through a flattening reshape to a per-channel ``nn.prelu``."""

import logging

import numpy as np

import tvm
from tvm import relay
from tvm.relay.dataflow_pattern import DFPatternCallback, is_op, rewrite, wildcard
from tvm.relay.transform.canonicalize_depthwise import (
    CanonicalizeDepthwise,
    context_runs,
    skip_function_reason,
)

logger = logging.getLogger(__name__)

PASS_NAME = "CanonicalizePReLU"
OPT_LEVEL = 3


def pass_enabled(ctx=None):
    """Whether ``ctx`` (default: the current PassContext) runs ``CanonicalizePReLU``."""
    return context_runs(PASS_NAME, OPT_LEVEL, ctx)


def _static_shape(expr):
    ty = expr.checked_type
    if not isinstance(ty, relay.TensorType):
        return None
    try:
        return [int(extent) for extent in ty.shape]
    except TypeError:  # a symbolic extent
        return None


def _unflattened_alpha(alpha):
    """The alpha before the frontend broadcast and flattened it: an expression whose shape
    broadcasts to the data, or a constant of the data's size; None if it is neither."""
    if isinstance(alpha, relay.Call) and isinstance(alpha.op, tvm.ir.Op):
        if alpha.op.name == "reshape":
            return _unflattened_alpha(alpha.args[0])
        if alpha.op.name in ("broadcast_to", "broadcast_to_like"):
            return alpha.args[0]
    if isinstance(alpha, relay.Constant):
        return alpha
    return None


def per_channel_alpha(alpha, data_shape, default_axis, source=None):
    """``(axis, alpha of shape [data_shape[axis]])`` where ``alpha``, broadcast to
    ``data_shape``, varies along one axis at most; None where it varies along more.

    A constant of the data's size is read by value (every pixel the same), anything else by its
    shape. An alpha that is the same everywhere goes on ``default_axis``. The new alpha is built
    on ``source`` (default: ``alpha``, which must be typed).
    """
    shape = _static_shape(alpha)
    if shape is None:
        return None
    rank = len(data_shape)
    if isinstance(alpha, relay.Constant) and int(np.prod(shape)) == int(np.prod(data_shape)):
        values = alpha.data.numpy().reshape(data_shape)
        varying = [
            a
            for a in range(rank)
            if data_shape[a] > 1 and not np.all(values == values.take([0], axis=a))
        ]
        if len(varying) > 1:
            return None
        axis = varying[0] if varying else default_axis
        index = tuple(slice(None) if a == axis else 0 for a in range(rank))
        return axis, relay.const(np.ascontiguousarray(values[index]), str(values.dtype))
    if len(shape) > rank:
        return None
    aligned = [1] * (rank - len(shape)) + shape
    if any(extent not in (1, data_shape[a]) for a, extent in enumerate(aligned)):
        return None
    varying = [a for a, extent in enumerate(aligned) if extent > 1]
    if len(varying) > 1:
        return None
    axis = varying[0] if varying else default_axis
    alpha = relay.reshape(alpha if source is None else source, [-1])
    if not varying:  # one value for every channel
        alpha = relay.broadcast_to(alpha, [data_shape[axis]])
    return axis, alpha


def per_channel_prelu(out, channel_axis=-1, source=None):
    """The per-channel ``nn.prelu`` that computes ``out``, a flattened PReLU as the TFLite and
    ONNX frontends emit it (``reshape(prelu(reshape(x, [-1]), alpha, axis=0), shape(x))``); None
    where ``out`` is not one or its alpha varies along more than one axis.

    ``out`` and its arguments must be typed. ``channel_axis`` takes an alpha that is the same
    everywhere (TFLite and Keras tensors are channels-last). ``source``: the same expression,
    rewritten (untyped), to build on.
    """
    if not (
        isinstance(out, relay.Call)
        and isinstance(out.op, tvm.ir.Op)
        and out.op.name in ("reshape", "dyn.reshape")
    ):
        return None
    prelu = out.args[0]
    if not (
        isinstance(prelu, relay.Call)
        and prelu.op == tvm.ir.Op.get("nn.prelu")
        and int(prelu.attrs.axis) == 0
    ):
        return None
    flat = prelu.args[0]
    if not (
        isinstance(flat, relay.Call)
        and isinstance(flat.op, tvm.ir.Op)
        and flat.op.name == "reshape"
    ):
        return None
    data = flat.args[0]
    data_shape = _static_shape(data)
    if out.op.name == "dyn.reshape":  # the ONNX frontend reshapes back to shape_of(data)
        target = out.args[1]
        back = (
            isinstance(target, relay.Call)
            and target.op == tvm.ir.Op.get("shape_of")
            and target.args[0].same_as(data)
        )
    else:
        back = _static_shape(out) == data_shape
    if data_shape is None or not back or len(_static_shape(flat) or []) != 1:
        return None
    if data.checked_type.dtype != out.checked_type.dtype:
        return None
    alpha = _unflattened_alpha(prelu.args[1])
    if alpha is None:
        return None
    alpha_source = None
    if source is not None:  # build on the rewritten expression
        data = source.args[0].args[0].args[0]
        alpha_source = _unflattened_alpha(source.args[0].args[1])
    found = per_channel_alpha(alpha, data_shape, channel_axis % len(data_shape), alpha_source)
    if found is None:
        return None
    axis, alpha = found
    return relay.nn.prelu(data, alpha, axis=axis)


class _FlatPReLURewrite(DFPatternCallback):
    def __init__(self):
        super().__init__(require_type=True, rewrite_once=True)
        flat_prelu = is_op("nn.prelu")(is_op("reshape")(wildcard()), wildcard())
        self.pattern = is_op("reshape")(flat_prelu) | is_op("dyn.reshape")(flat_prelu, wildcard())
        self.count = 0

    def callback(self, pre, post, node_map):
        new = per_channel_prelu(pre, source=post)
        if new is None:
            logger.debug("flattened PReLU left as is: its alpha varies along several axes")
            return post
        self.count += 1
        return relay.Call(new.op, new.args, new.attrs, None, pre.span)


@tvm.transform.module_pass(opt_level=OPT_LEVEL, name=PASS_NAME)
class _CanonicalizePReLU:
    def transform_module(self, mod, ctx):  # pylint: disable=unused-argument
        """The module with every flattened PReLU that its alpha allows made per-channel."""
        new_mod = relay.transform.InferType()(mod.clone())
        changed = False
        for gvar, func in list(new_mod.functions.items()):
            if skip_function_reason(func) is not None:
                continue
            callback = _FlatPReLURewrite()
            new_func = rewrite(callback, func, new_mod)
            if callback.count:
                logger.debug("function %s: %d PReLU rewritten", gvar.name_hint, callback.count)
                # the result type is inferred anew: an ONNX reshape back was dynamic
                new_mod[gvar] = relay.Function(
                    new_func.params, new_func.body, None, new_func.type_params, new_func.attrs
                )
                changed = True
        return relay.transform.InferType()(new_mod) if changed else mod


def CanonicalizePReLU():  # pylint: disable=invalid-name
    """Rewrite a PReLU that a frontend imported through a flattening reshape to a per-channel
    ``nn.prelu`` on the data's channel axis.

    The TFLite and ONNX frontends import PReLU as ``reshape(x, [-1])``, an ``nn.prelu`` on that
    1-D tensor with its alpha broadcast to every element, and a ``reshape`` back: a form no
    layout pass can see through, so ``ConvertLayout`` wraps each one in layout transforms. Where
    the alpha varies along one axis at most (per-channel, or one value), this pass rewrites it
    to ``nn.prelu(x, alpha[C], axis=channel)``, with identical results; an alpha that varies
    along several axes (per-element) is left as it is.

    Returns
    -------
    ret : tvm.transform.Pass
        The registered pass, named ``CanonicalizePReLU``, at opt_level 3.
    """
    return _CanonicalizePReLU()


def canonicalize_for_build(mod):
    """``CanonicalizeDepthwise`` and ``CanonicalizePReLU`` on ``mod``, by the current
    PassContext's rules, as a build entry point runs them before TVM's own pipeline.

    ``Sequential`` applies the context's ``opt_level``, ``required_pass`` and
    ``disabled_pass`` to the passes exactly as to TVM's own passes, and instruments see them.
    Anything but an ``IRModule`` (a build's other inputs) is returned as it is.
    """
    if not isinstance(mod, tvm.IRModule):
        return mod
    return tvm.transform.Sequential(
        [CanonicalizeDepthwise(), CanonicalizePReLU()], name="CanonicalizeDepthwiseAtBuild"
    )(mod)
