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

``nn.conv2d`` strategies are registered per target key. :func:`register` puts, in front of
each key's stock strategy, a dispatch that sends canonical depthwise convolutions
(:func:`tvm.topi.nn.depthwise_form.is_depthwise`) to :func:`depthwise_conv2d_canonical_strategy`
and everything else to the stock strategy for that key, unchanged. The depthwise strategy is
itself a generic function: a target gets its own depthwise implementation by registering one.
"""
import tvm
from tvm import topi
from tvm.target import generic_func
from tvm.topi.arm_cpu import depthwise_conv2d_canonical as _arm_cpu_depthwise
from tvm.topi.nn.depthwise_conv2d_canonical import depthwise_conv2d_canonical
from tvm.topi.nn.depthwise_form import is_depthwise
from tvm.topi.x86 import depthwise_conv2d_canonical as _x86_depthwise
from tvm.topi.x86 import depthwise_conv2d_canonical_packed as _x86_packed_depthwise

from .. import op as _op
from . import arm_cpu as _stock_arm_cpu
from . import x86 as _stock_x86
from .generic import (
    conv2d_strategy,
    depthwise_conv2d_NCHWc_strategy,
    wrap_compute_conv2d,
    wrap_topi_schedule,
)


def _compute(topi_compute):
    return wrap_compute_conv2d(topi_compute, need_data_layout=True, need_kernel_layout=True)


def _implementation(topi_compute, topi_schedule, name):
    def strategy(attrs, inputs, out_type, target):
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


def _dispatching(stock_strategy, gate):
    def conv2d_strategy_with_depthwise(attrs, inputs, out_type, target):
        if gate() and is_depthwise_call(attrs, inputs):
            return depthwise_conv2d_canonical_strategy(attrs, inputs, out_type, target)
        return stock_strategy(attrs, inputs, out_type, target)

    conv2d_strategy_with_depthwise.__doc__ = f"Depthwise dispatch, else {stock_strategy.__name__}."
    return conv2d_strategy_with_depthwise


def _always():
    return True


_STOCK_CONV2D_STRATEGIES = {
    "cpu": _stock_x86.conv2d_strategy_cpu,
    "arm_cpu": _stock_arm_cpu.conv2d_strategy_arm_cpu,
}


_STOCK_DEFAULT = conv2d_strategy.fdefault


def register(gate=None):
    """Put the depthwise dispatch in front of the stock conv2d strategies.

    ``nn.contrib_depthwise_conv2d_NCHWc`` is what x86 alter-layout packs depthwise
    convolutions into (``topi/x86/depthwise_conv2d_canonical_alter_op.py``); its canonical
    depthwise calls get the same strategy. Calling it again replaces the earlier registration.

    Parameters
    ----------
    gate : callable, optional
        Asked at every dispatch; where it returns False the stock strategy serves the call,
        as if this module were absent. None dispatches always.
    """
    gate = gate or _always
    for key, stock in _STOCK_CONV2D_STRATEGIES.items():
        conv2d_strategy.register(key, _dispatching(stock, gate), override=True)
    depthwise_conv2d_NCHWc_strategy.register(
        "cpu", _dispatching(_stock_x86.depthwise_conv2d_NCHWc_strategy_cpu, gate), override=True
    )
    conv2d_strategy.generic_func_node.set_default(
        _dispatching(_STOCK_DEFAULT, gate), allow_override=True
    )
