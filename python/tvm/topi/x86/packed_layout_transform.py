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
"""x86 schedule of fused functions that end in a ``layout_transform`` into a packed layout.

TOPI's injective schedule vectorizes the innermost output axis. Packing into ``NCHW{b}c``
makes that axis the channel block, and where the source's channels are blocked differently (a
re-blocking ``NCHW12c -> NCHW14c``, or the unpack, channel pad and repack that a padded
residual becomes after AlterOpLayout), each lane's source index is a division by the source
block: LLVM scalarizes the vector and divides per element. Unrolling the block instead makes
each lane's division loop-invariant over the width, so it is computed once per row.
"""

from tvm import te, tir

from ..utils import is_empty_shape
from .injective import schedule_injective_from_existing

# Blocks up to this many channels are unrolled (x86 packs 4 to 16; wider ones vectorize).
MAX_UNROLLED_BLOCK = 32
# Output columns per unrolled step: enough independent copies to hide the loads' latency.
COLUMNS_PER_STEP = 4


def packed_block(tensor):
    """The channel block of a ``layout_transform`` output whose innermost axis is a block of
    at most :data:`MAX_UNROLLED_BLOCK` (``16`` for ``NCHW16c``), else None."""
    dst = tensor.op.attrs.get("dst_layout") if isinstance(tensor.op, te.ComputeOp) else None
    if dst is None or len(tensor.shape) < 3:
        return None
    layout = tir.layout(str(dst))
    innermost = layout[len(layout) - 1]
    if innermost.isupper():
        return None
    block = layout.factor_of(innermost)
    return block if 0 < block <= MAX_UNROLLED_BLOCK else None


def schedule_packed_layout_transform(sch, out):
    """Outer axes in parallel; the next-to-innermost axis in unrolled steps of
    :data:`COLUMNS_PER_STEP`; the channel block unrolled."""
    axes = sch[out].op.axis
    outer = sch[out].fuse(*axes[:-2]) if len(axes) > 3 else axes[0]
    sch[out].parallel(outer)
    _, columns = sch[out].split(axes[-2], factor=COLUMNS_PER_STEP)
    sch[out].unroll(columns)
    sch[out].unroll(axes[-1])
    return sch


def schedule_layout_transform(outs):
    """Schedule of a fused function whose anchor is ``layout_transform``: packed outputs as
    :func:`schedule_packed_layout_transform`, any other as TOPI's x86 injective schedule."""
    outs = [outs] if isinstance(outs, te.Tensor) else outs
    sch = te.create_schedule([x.op for x in outs])
    te.schedule.AutoInlineInjective(sch)
    for out in outs:
        if is_empty_shape(out.shape):
            continue
        if packed_block(out) is not None:
            schedule_packed_layout_transform(sch, out)
        else:
            schedule_injective_from_existing(sch, out)
    return sch
