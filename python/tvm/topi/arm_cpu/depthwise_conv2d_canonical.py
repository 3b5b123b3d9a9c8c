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
"""ARM CPU templates of depthwise convolution on canonical weights (any multiplier and layout)."""

import tvm
from tvm import autotvm

from ..x86.depthwise_conv2d_canonical import (
    depthwise_conv2d_canonical_cpu,
    schedule_depthwise_conv2d_canonical_cpu,
)
from ..generic.depthwise_cpu import describe_cpu

# Vector registers a register block's sums may take: half of AArch64's 32 (x86: 8 of 16 or 32)
ACCUMULATORS = 16


@autotvm.register_topi_compute("depthwise_conv2d_canonical.arm_cpu")
def depthwise_conv2d_canonical(
    cfg, data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype
):
    """Compute of :func:`tvm.topi.nn.depthwise_conv2d_canonical`, as an AutoTVM template."""
    cpu = describe_cpu() if tvm.target.Target.current(allow_none=True) else None
    return depthwise_conv2d_canonical_cpu(
        cfg,
        data,
        kernel,
        strides,
        padding,
        dilation,
        (data_layout, kernel_layout),
        out_dtype,
        cpu,
        ACCUMULATORS,
    )


@autotvm.register_topi_schedule("depthwise_conv2d_canonical.arm_cpu")
def schedule_depthwise_conv2d_canonical(cfg, outs):
    """The CPU schedule of the x86 template, of the plan the compute made for NEON."""
    del cfg  # the compute made the plan from it
    return schedule_depthwise_conv2d_canonical_cpu(outs)
