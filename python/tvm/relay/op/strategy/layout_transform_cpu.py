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
"""``layout_transform`` on CPUs: TOPI's compute, the packed-layout schedule of
:mod:`tvm.topi.x86.packed_layout_transform` (upstream: registered for ``cpu`` in ``x86.py``)."""

from tvm import topi
from tvm.topi.x86 import packed_layout_transform

from .. import op as _op
from .generic import wrap_compute_layout_transform, wrap_topi_schedule


def layout_transform_strategy_cpu(attrs, inputs, out_type, target):
    """layout_transform x86 strategy"""
    # pylint: disable=unused-argument
    strategy = _op.OpStrategy()
    strategy.add_implementation(
        wrap_compute_layout_transform(topi.layout_transform),
        wrap_topi_schedule(packed_layout_transform.schedule_layout_transform),
        name="layout_transform.x86",
    )
    return strategy
