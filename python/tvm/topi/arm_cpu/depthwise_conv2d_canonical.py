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

from ..x86.depthwise_conv2d_canonical import register_templates

# Vector registers a register block's sums may take: half of AArch64's 32 (x86: 8 of 16 or 32)
ACCUMULATORS = 16

# the x86 template's compute and schedule, for the NEON CPU of the current target
depthwise_conv2d_canonical, schedule_depthwise_conv2d_canonical = register_templates(
    "depthwise_conv2d_canonical.arm_cpu", ACCUMULATORS
)
