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
"""x86 template of an NCHW depthwise layer that alter-layout packs: computed packed, as built.

x86's alter-layout rule packs a canonical depthwise NCHW layer with ``m = 1`` into
``NCHW{b}c`` (:func:`.depthwise_conv2d_canonical_common.packed_layouts`). AutoTVM's relay task
extraction runs without alter-layout, so it sees the NCHW layer: this template is what it
tunes for it. It packs the input and the weight, runs the packed template's compute on them
and unpacks the result, so its knobs are those of the packed call that replaces the layer at
build, which the alter-layout rule hands the tuned configuration to (``DispatchContext.update``,
as stock x86 does for depthwise_conv2d_NCHWc). Tuning measures the packing too, as stock's does.
"""

from tvm import autotvm, te, tir
from tvm.target.x86 import get_simd_32bit_lanes

from ..transform import layout_transform
from ..utils import get_const_tuple, traverse_inline
from .depthwise_conv2d_canonical import depthwise_conv2d_canonical_cpu, schedule_block
from .depthwise_conv2d_canonical_common import TAG, packed_layouts
from .depthwise_conv2d_canonical_plan import GUARDED
from ..generic.depthwise_cpu import describe_cpu


def packs(data, kernel, data_layout, kernel_layout, groups=None):
    """The packed layouts x86 computes this canonical depthwise layer in, or None: what the
    strategy and the alter-layout rule ask, for the current target's lanes. ``groups``
    defaults to the input's channels (a compute is only given depthwise layers)."""
    data_shape = get_const_tuple(data.shape)
    if groups is None:
        groups = get_const_tuple(
            tir.bijective_layout(data_layout, "NCHW").forward_shape(data_shape)
        )[1]
    return packed_layouts(
        data_shape,
        data_layout,
        get_const_tuple(kernel.shape),
        kernel_layout,
        groups,
        get_simd_32bit_lanes(),
    )


@autotvm.register_topi_compute("depthwise_conv2d_canonical_packed.x86")
def depthwise_conv2d_canonical_packed(
    cfg, data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype
):
    """Pack, the packed template's compute, unpack (see the module's description)."""
    layouts = packs(data, kernel, data_layout, kernel_layout)
    packed_data = layout_transform(data, data_layout, layouts[0])
    packed_kernel = layout_transform(kernel, kernel_layout, layouts[1])
    out = depthwise_conv2d_canonical_cpu(
        cfg,
        packed_data,
        packed_kernel,
        strides,
        padding,
        dilation,
        layouts,
        out_dtype,
        describe_cpu(),
    )
    return layout_transform(out, layouts[0], data_layout)


@autotvm.register_topi_schedule("depthwise_conv2d_canonical_packed.x86")
def schedule_depthwise_conv2d_canonical_packed(cfg, outs):
    """The packed schedule; the packing and the unpacking each in a parallel loop of its own."""
    del cfg  # the compute made the plan from it
    outs = [outs] if isinstance(outs, te.tensor.Tensor) else outs
    sch = te.create_schedule([x.op for x in outs])

    def _callback(op):
        if op.tag == TAG:
            conv = op.output(0)
            plan = schedule_block(sch, conv, conv)
            _schedule_repacking(sch, conv, outs[0], plan)

    traverse_inline(sch, outs[0].op, _callback)
    return sch


def _schedule_repacking(sch, conv, out, plan):
    # The packings are computed whole (inlined into the convolution's reads, they would make
    # every vector a gather), then the unpacked output with its epilogue; all over rows.
    staged, *others = conv.op.input_tensors
    if plan.staging == GUARDED:
        staged = staged.op.input_tensors[0]  # the padding is inlined into the reads
    for tensor in [staged, *others]:
        if isinstance(tensor.op, te.ComputeOp):
            sch[tensor].compute_root()
            sch[tensor].parallel(sch[tensor].fuse(*sch[tensor].op.axis[:3]))
    sch[out].parallel(sch[out].fuse(*sch[out].op.axis[:3]))
