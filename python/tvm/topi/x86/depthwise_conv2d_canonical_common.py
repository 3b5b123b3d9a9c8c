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
"""What the CPU depthwise templates share: tags, layout families, factor choices."""

from tvm import tir
from tvm.autotvm.task.space import SplitEntity

from ..nn.depthwise_form import CANONICAL, conv2d_form

TAG = "depthwise_conv2d_canonical"
UPSAMPLE_TAG = "depthwise_channel_upsample"
PAD_TAG = "depthwise_pad"


def is_packed(layout):
    """True for a layout with a split channel axis, such as ``NCHW16c``."""
    return layout.index_of("c") >= 0


def vectorized_along_channels(layout):
    """Channels-last (NHWC) and packed (NCHW16c) layouts vectorize along output channels."""
    return is_packed(layout) or layout.index_of("C") > layout.index_of("W")


def largest_divisor(extent, limit):
    """The largest divisor of ``extent`` that is at most ``limit`` (at least 1)."""
    for factor in range(min(extent, max(limit, 1)), 0, -1):
        if extent % factor == 0:
            return factor
    return 1


def vector_factor(extent, lanes):
    """Lanes to vectorize an axis of ``extent`` with: a divisor, whole vectors when possible."""
    if extent <= lanes:
        return extent
    if extent % lanes == 0:
        return lanes
    # half a register of whole lanes beats an odd-sized vector (56 wide: 8 lanes, not 14)
    half = lanes // 2
    if half > 1 and extent % half == 0:
        return half
    return largest_divisor(extent, lanes)


def register_block(extent, limit):
    """A divisor of ``extent`` near ``limit`` for the unrolled register block."""
    block = largest_divisor(extent, limit)
    if 2 * block <= limit and extent <= 2 * limit:
        # prime-ish extents: one block over the whole axis beats blocks of 1
        block = extent
    return block


def split_axis(sch, stage, axis, sizes):
    """Split ``axis`` of ``stage`` into ``sizes`` (outer first), as AutoTVM's split knobs do."""
    return SplitEntity(list(sizes)).apply(sch, stage, axis)


def channel_block(channels, lanes):
    """The channel block of a packed layer of ``channels``: their largest divisor up to ``lanes``.

    It is the block x86's untuned rules give every packed conv2d (``tile_ic``/``tile_oc`` of
    conv2d_NCHWc and depthwise_conv2d_NCHWc), so a depthwise convolution packed with it meets
    its neighbours in the layout they produce and read.
    """
    return largest_divisor(channels, lanes)


def packed_layouts(data_shape, data_layout, kernel_shape, kernel_layout, groups, lanes):
    """The (data, kernel) layouts x86 computes a canonical depthwise conv2d in, or None.

    ``m = 1`` on NCHW data packs to ``NCHW{b}c``/``OIHW1i{b}o`` with :func:`channel_block`, as
    stock TVM packs depthwise_conv2d_NCHWc; ``m > 1`` and other layouts stay as they are (see
    ``depthwise_conv2d_canonical_alter_op``). The alter-layout rule and the template of such a
    layer (what AutoTVM tunes) both ask this, so the tuned layer is the one built.
    """
    if data_layout != "NCHW":
        return None
    form = conv2d_form(data_shape, "NCHW", kernel_shape, kernel_layout, groups)
    if form.kind != CANONICAL or form.multiplier != 1:
        return None
    block = channel_block(form.in_channels, lanes)
    return f"NCHW{block}c", f"OIHW1i{block}o"


def packed_shapes(data_shape, data_layout, kernel_shape, kernel_layout, layouts):
    """The shapes of the data and the kernel in the packed ``layouts``."""
    return tuple(
        tuple(int(e) for e in tir.bijective_layout(src, dst).forward_shape(shape))
        for shape, src, dst in (
            (data_shape, data_layout, layouts[0]),
            (kernel_shape, kernel_layout, layouts[1]),
        )
    )
