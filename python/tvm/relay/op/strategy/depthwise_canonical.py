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
"""One conv2d strategy for every depthwise convolution with canonical weights.

Each target key's ``nn.conv2d`` strategy (and x86's ``nn.contrib_depthwise_conv2d_NCHWc``
one) sends canonical depthwise convolutions (:func:`is_depthwise_call`) to
:func:`depthwise_conv2d_canonical_strategy` and everything else where it went before; upstream
that is a branch at the top of ``conv2d_strategy_cpu`` and ``conv2d_strategy_arm_cpu``, here the
install glue puts it in front of them. The depthwise strategy is itself a generic function: a
target gets its own depthwise implementation by registering one.
"""

from tvm import topi
from tvm.target import generic_func
from tvm.topi.arm_cpu import depthwise_conv2d_canonical as _arm_cpu_depthwise
from tvm.topi.nn.depthwise_conv2d_canonical import depthwise_conv2d_canonical
from tvm.topi.nn.depthwise_form import is_depthwise
from tvm.topi.x86 import depthwise_conv2d_canonical as _x86_depthwise
from tvm.topi.x86 import depthwise_conv2d_canonical_packed as _x86_packed_depthwise

from .. import op as _op
from .generic import wrap_compute_conv2d, wrap_topi_schedule


def _compute(topi_compute):
    return wrap_compute_conv2d(topi_compute, need_data_layout=True, need_kernel_layout=True)


def _implementation(topi_compute, topi_schedule, name):
    def strategy(attrs, inputs, out_type, target):  # pylint: disable=unused-argument
        strategy = _op.OpStrategy()
        strategy.add_implementation(
            _compute(topi_compute), wrap_topi_schedule(topi_schedule), name=name
        )
        return strategy

    strategy.__doc__ = f"Depthwise conv2d with canonical weights: {name}."
    return strategy


@generic_func
def depthwise_conv2d_canonical_strategy(attrs, inputs, out_type, target):
    """Depthwise conv2d with canonical weights: the target-independent fallback."""
    return _implementation(
        depthwise_conv2d_canonical,
        topi.generic.schedule_depthwise_conv2d_nchw,  # the default schedule, any layout
        "depthwise_conv2d_canonical.generic",
    )(attrs, inputs, out_type, target)


_x86_unpacked = _implementation(
    _x86_depthwise.depthwise_conv2d_canonical,
    _x86_depthwise.schedule_depthwise_conv2d_canonical,
    "depthwise_conv2d_canonical.x86",
)
_x86_packed = _implementation(
    _x86_packed_depthwise.depthwise_conv2d_canonical_packed,
    _x86_packed_depthwise.schedule_depthwise_conv2d_canonical_packed,
    "depthwise_conv2d_canonical_packed.x86",
)


def _x86_strategy(attrs, inputs, out_type, target):
    # A layer x86's alter-layout packs is computed (and so tuned) packed, as it is built.
    data, kernel = inputs
    with target:
        packs = _x86_packed_depthwise.packs(data, kernel, attrs.data_layout, attrs.kernel_layout)
    return (_x86_unpacked if packs is None else _x86_packed)(attrs, inputs, out_type, target)


# One registration per target: an AutoTVM template with its schedule.
depthwise_conv2d_canonical_strategy.register("cpu", _x86_strategy)
depthwise_conv2d_canonical_strategy.register(
    "arm_cpu",
    _implementation(
        _arm_cpu_depthwise.depthwise_conv2d_canonical,
        _arm_cpu_depthwise.schedule_depthwise_conv2d_canonical,
        "depthwise_conv2d_canonical.arm_cpu",
    ),
)


def is_depthwise_call(attrs, inputs):
    """:func:`is_depthwise` for a conv2d strategy's ``attrs`` and input tensors."""
    data, kernel = inputs
    return is_depthwise(
        data.shape, attrs.data_layout, kernel.shape, attrs.kernel_layout, attrs.groups
    )
