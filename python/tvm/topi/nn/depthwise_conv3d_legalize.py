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
"""Legalize depthwise ``nn.conv3d`` into what TVM 0.19's CPU conv3d computes get right.

After :func:`tvm.relay.transform.CanonicalizeDepthwise`, a depthwise ``nn.conv3d`` has the
canonical weight ``[C*m, 1, kD, kH, kW]`` (OIDHW terms), ``groups == C``. TVM 0.19 serves it on
CPU targets with the AutoTVM templates ``conv3d_ncdhw.x86`` / ``conv3d_ndhwc.x86`` (registered
for the ``cpu`` key, so for ``arm_cpu`` too) or the generic ``conv3d_ncdhw`` /
``conv3d_ndhwc``, which fail on most of these convolutions:

- They read the weight as OIDHW (NCDHW data) or DHWIO (NDHWC data) whatever ``kernel_layout``
  says (the strategies never look at it), so any other kernel layout fails to build or to run,
  or computes wrong numbers. This holds for every ``nn.conv3d``, grouped or not.
- With ``m > 1``, ``conv3d_ndhwc.x86`` asserts ``groups == 1 or oc_bn <= groups``, where its
  untuned configuration takes ``oc_bn`` as the largest divisor of ``C*m`` up to the SIMD width
  (8 lanes on AVX2): ``C = 4, m = 2`` fails. The compute is right without the assertion.
- With ``m > 1``, the input channel of each output-channel lane (``o // m``) is a vector
  index. Where several statements share it (it depends on the shapes), TIR's
  common-subexpression elimination binds it to an ``int32xN`` ``let``, and TVM 0.19's LLVM code
  generator attaches ``#dbg_declare`` to every ``let`` value, which LLVM 21 and newer accept
  only for pointers and scalar integers ("location of #dbg_declare must be a pointer or int").
  ``PassContext(config={"tir.disable_cse_tir": True})`` avoids it, for the whole build.

:func:`legalize_depthwise_conv3d` rewrites such a convolution with Relay ops only, into one
those computes get right: the weight goes to the layout they read (``layout_transform``, which
``FoldConstant`` folds for constant weights), and with ``m > 1`` each input channel is repeated
``m`` times (``repeat``), so that the convolution has ``groups == C*m`` and ``m == 1``: output
channel ``o`` reads repeated channel ``o``, which is input channel ``o // m``, as before.

A call still in the multiplier form (the pass did not run: ``opt_level < 3``, or
``disabled_pass``) first gets the pass's weight rewrite, so that correctness does not depend on
the pass.
"""

import tvm
from tvm import relay

from .depthwise_form import CANONICAL, MULTIPLIER, conv_form, is_primal_layout

NATIVE_KERNEL_LAYOUT = {"NCDHW": "OIDHW", "NDHWC": "DHWIO"}
"""The kernel layout TVM 0.19's CPU conv3d computes read, for each data layout they accept."""

_CPU_KINDS = ("llvm", "c")


def legalize_depthwise_conv3d(attrs, inputs, types):
    """``FTVMLegalize`` of ``nn.conv3d``: see the module's description.

    Returns None (leave the call as it is) unless the current target generates CPU code and the
    call is a depthwise convolution that TVM's CPU computes would get wrong.
    """
    target = tvm.target.Target.current(allow_none=True)
    if target is None or target.kind.name not in _CPU_KINDS:
        return None
    data_layout, kernel_layout = attrs.data_layout, attrs.kernel_layout
    native = NATIVE_KERNEL_LAYOUT.get(data_layout)
    if native is None or attrs.out_layout not in ("", data_layout):
        return None
    data_type, kernel_type = types[0], types[1]
    form = conv_form(
        data_type.shape, data_layout, kernel_type.shape, kernel_layout, attrs.groups, 3
    )
    data, weight = inputs
    if form.kind == MULTIPLIER:
        if not is_primal_layout(kernel_layout) or not all(
            isinstance(e, tvm.tir.IntImm) for e in kernel_type.shape
        ):
            return None
        # pylint: disable=import-outside-toplevel
        from tvm.relay.transform.canonicalize_depthwise import canonical_weight

        kernel_shape = [int(e) for e in kernel_type.shape]
        weight = canonical_weight(weight, kernel_shape, kernel_layout, form.multiplier)
    elif form.kind != CANONICAL or (kernel_layout == native and form.multiplier == 1):
        return None
    if kernel_layout != native:
        weight = relay.layout_transform(weight, kernel_layout, native)
    if form.multiplier > 1:
        data = relay.repeat(data, form.multiplier, axis=data_layout.index("C"))
    out_channels = form.in_channels * form.multiplier
    return relay.nn.conv3d(
        data,
        weight,
        strides=attrs.strides,
        padding=attrs.padding,
        dilation=attrs.dilation,
        groups=out_channels,
        channels=out_channels,
        kernel_size=attrs.kernel_size,
        data_layout=data_layout,
        kernel_layout=native,
        out_layout=attrs.out_layout,
        out_dtype=attrs.out_dtype,
    )
