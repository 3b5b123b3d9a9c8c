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
each lane's division loop-invariant over the width, so it is computed once per row. Where the
block is a slice of the source's (``NCHW16c -> NCHW8c``), TOPI's vector reads contiguous lanes
and is kept. Measurements: ``docs/layout-transforms.md``.
"""

from tvm import te, tir

from ..utils import is_empty_shape
from .injective import schedule_injective_from_existing

# Blocks up to this many channels are unrolled (x86 packs 4 to 16; wider ones vectorize).
MAX_UNROLLED_BLOCK = 32
# Output columns per unrolled step: enough independent copies to hide the loads' latency;
# narrow blocks take fewer, which LLVM's vectorizers then merge into wider copies.
COLUMNS_PER_STEP = 4
NARROW_BLOCK, COLUMNS_PER_NARROW_STEP = 8, 2


def packed_block(tensor):
    """The channel block of a ``layout_transform`` output whose innermost axis is a block of
    at most :data:`MAX_UNROLLED_BLOCK` (``16`` for ``NCHW16c``) and not a slice of the source's
    block, else None."""
    attrs = tensor.op.attrs if isinstance(tensor.op, te.ComputeOp) else {}
    if "dst_layout" not in attrs or len(tensor.shape) < 3:
        return None
    block = _innermost_block(attrs["dst_layout"])
    if not 0 < block <= MAX_UNROLLED_BLOCK:
        return None
    source_block = _innermost_block(attrs["src_layout"])
    return None if source_block > 0 and source_block % block == 0 else block


def _innermost_block(layout):
    """The factor of ``layout``'s innermost axis if it is a split axis (``NCHW16c``: 16), else 0."""
    layout = tir.layout(str(layout))
    innermost = layout[len(layout) - 1]
    return 0 if innermost.isupper() else layout.factor_of(innermost)


def schedule_packed_layout_transform(sch, out):
    """Outer axes in parallel; the next-to-innermost axis in unrolled steps of
    :data:`COLUMNS_PER_STEP` columns (:data:`COLUMNS_PER_NARROW_STEP` for a block narrower than
    :data:`NARROW_BLOCK`); the channel block unrolled."""
    axes = sch[out].op.axis
    outer = sch[out].fuse(*axes[:-2]) if len(axes) > 3 else axes[0]
    sch[out].parallel(outer)
    narrow = int(axes[-1].dom.extent) < NARROW_BLOCK
    step = COLUMNS_PER_NARROW_STEP if narrow else COLUMNS_PER_STEP
    _, columns = sch[out].split(axes[-2], factor=step)
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
