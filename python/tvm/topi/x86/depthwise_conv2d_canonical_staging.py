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
"""Staged input of the width-innermost (NCHW) depthwise template: padded rows, split by phase.

A vector along the output width reads consecutive input columns, so the padding of a task's
rows is staged into a small buffer rather than guarded inside the vector; strided rows are
also split by column phase with vector shuffles (:func:`phase_split_intrinsic`).
"""

from tvm import te, tir

from .depthwise_conv2d_canonical_common import PAD_TAG


def pad(data, layout, pads):
    """Zero padding of the rows and columns, its guards marked ``likely`` (the border is rare)."""
    h_pos, w_pos = layout.index_of("H"), layout.index_of("W")
    pad_top, pad_left, pad_bottom, pad_right = pads
    shape = list(data.shape)
    height, width = shape[h_pos], shape[w_pos]
    shape[h_pos] = height + pad_top + pad_bottom
    shape[w_pos] = width + pad_left + pad_right

    def _padded(*index):
        index = list(index)
        y, x = index[h_pos], index[w_pos]
        inside = _inside(
            (y >= pad_top, pad_top),
            (y < height + pad_top, pad_bottom),
            (x >= pad_left, pad_left),
            (x < width + pad_left, pad_right),
        )
        index[h_pos], index[w_pos] = y - pad_top, x - pad_left
        return tir.if_then_else(inside, data[tuple(index)], tir.const(0, data.dtype))

    return te.compute(shape, _padded, name="data_pad", tag=PAD_TAG)


def _inside(*guards):
    """The conjunction of the needed ``(condition, needed)`` guards, each marked ``likely``."""
    return tir.all(*[tir.likely(cond) for cond, needed in guards if needed], tir.const(True))


def _column_inside(x, pad_left, width):
    """Whether padded column ``x`` of a row ``width`` wide is an input column."""
    return _inside((x >= pad_left, pad_left), (x < width + pad_left, True))


def _rows_inside(y, height, pad_top, pad_bottom):
    """Whether padded row ``y`` is an input row."""
    return _inside((y >= pad_top, pad_top), (y < height + pad_top, pad_bottom))


def phase_split_intrinsic(width, pad_left, stride, columns, lanes, dtype, plane=None):
    """A tensor intrinsic staging one padded row split by column phase, with vector shuffles.

    It computes ``out[phase, column]`` = padded column ``phase + stride * column`` of the row,
    the staging of :func:`stage_rows`, from whole-vector loads of the row: each chunk of
    ``lanes`` columns loads ``stride`` consecutive vectors and picks every ``stride``-th lane
    of them for each phase. Loads stay inside the row: a vector reaching past its ends loads
    its inner part only and fills the padding lanes with zeros.

    LLVM left to vectorize the guarded copy vectorizes some rows and not others, depending on
    the padding and the loop order (the shuffles' measurements: ``docs/design.md``).

    With ``plane = (height, pad_top, pad_bottom, needed)`` it stages the first ``needed``
    rows of a whole padded input plane instead, row by row, its padding rows as zeros (see
    :func:`stage_rows`).
    """
    row_extent = min(columns * stride - pad_left, width)
    zero = tir.const(0, dtype)
    if plane is None:
        row = te.placeholder((row_extent,), dtype, name="row")
        split = te.compute(
            (stride, columns),
            lambda phase, column: tir.if_then_else(
                _column_inside(column * stride + phase, pad_left, width),
                row[column * stride + phase - pad_left],
                zero,
            ),
            name="phase_split",
        )
        source_strides, target_strides = [1], [te.var("phase_stride"), 1]
    else:
        # the plane's rows that the convolution reads: `needed` padded rows, `inputs` of them
        # input rows
        height, pad_top, pad_bottom, needed = plane
        inputs = min(height, needed - pad_top)
        row = te.placeholder((inputs, row_extent), dtype, name="plane")
        split = te.compute(
            (needed, stride, columns),
            lambda y, phase, column: tir.if_then_else(
                tir.all(
                    _rows_inside(y, height, pad_top, pad_bottom),
                    _column_inside(column * stride + phase, pad_left, width),
                ),
                row[y - pad_top, column * stride + phase - pad_left],
                zero,
            ),
            name="phase_split",
        )
        source_strides = [te.var("row_stride"), 1]
        target_strides = [te.var("row_stride"), te.var("phase_stride"), 1]
    row_buffer = tir.decl_buffer(row.shape, dtype, "row", offset_factor=1, strides=source_strides)
    split_buffer = tir.decl_buffer(
        split.shape, dtype, "split", offset_factor=1, strides=target_strides
    )

    def _vector(source, at, start):
        # row positions start .. start + lanes - 1; the input columns are 0 .. width - 1
        first, last = max(start, 0), min(start + lanes, width)
        if first >= last:
            return tir.Broadcast(zero, lanes)
        if last - first == lanes:
            return source.vload(at + [start], f"{dtype}x{lanes}")
        inner = last - first
        part = source.vload(at + [first], f"{dtype}x{inner}" if inner > 1 else dtype)
        picks = [i - first if first <= i < last else inner for i in range(start, start + lanes)]
        return tir.Shuffle([part, tir.Broadcast(zero, lanes)], picks)

    def _split_row(builder, source, target, source_at, target_at):
        for chunk in range(-(-columns // lanes)):
            first = chunk * lanes
            # the row positions of the chunk's columns, `stride` vectors of them
            vectors = [
                _vector(source, source_at, first * stride + part * lanes - pad_left)
                for part in range(stride)
            ]
            count = min(lanes, columns - first)
            for phase in range(stride):
                picks = [phase + stride * i for i in range(count)]
                value = tir.Shuffle(vectors, picks)
                builder.emit(target.vstore(target_at + [phase, first], value))

    def _zero_rows(builder, target, first_row, count):
        if not count:
            return
        with builder.for_range(0, count, name="padding_row") as y:
            for chunk in range(-(-columns // lanes)):
                first = chunk * lanes
                size = min(lanes, columns - first)
                zeros = tir.Broadcast(zero, size) if size > 1 else zero
                for phase in range(stride):
                    builder.emit(target.vstore([first_row + y, phase, first], zeros))

    def _body(ins, outs):
        source, target = ins[0], outs[0]
        builder = tir.ir_builder.create()
        if plane is None:
            _split_row(builder, source, target, [], [])
            return builder.get()
        _zero_rows(builder, target, 0, pad_top)
        with builder.for_range(0, inputs, name="row") as y:
            _split_row(builder, source, target, [y], [y + pad_top])
        _zero_rows(builder, target, inputs + pad_top, needed - inputs - pad_top)
        return builder.get()

    return te.decl_tensor_intrin(
        split.op, _body, name="phase_split", binds={row: row_buffer, split: split_buffer}
    )


def splits_by_phase(stride, taps, columns, pad_left, width):
    """Whether a staged row is split by column phase with :func:`phase_split_intrinsic`.

    The intrinsic stages a whole row of ``stride`` phases of ``columns`` columns at a time, and
    TVM matches it against the stage only where the stage's region is that whole row and no
    axis of it is a single iteration (TVM folds such an axis into a constant on one side of
    the match only). So a row is split where the kernel column offsets ``taps`` meet every
    phase (not so for a kernel one column wide, or a dilation that is a multiple of the
    stride), where it has two columns or more, and where it reads its input row to the last of
    its ``width`` columns: TVM narrows the region of a row read in part to the columns read
    only where it can narrow both of its ends, so a row whose last columns are never read (a
    1x2 kernel at stride 2 over 3 columns after 2 of padding) keeps the left padding in its
    region, and the intrinsic's row, read whole, does not. Any other row is staged unsplit and
    read at the stride.
    """
    every_phase = len({tap % stride for tap in taps}) == stride
    return stride > 1 and every_phase and columns > 1 and columns * stride - pad_left >= width


def stage_rows(data, layout, pads, extent, stride, split=False, whole_plane=False):
    """The padded input of a task's rows for layouts with the width innermost (NCHW).

    A vector along the output width reads consecutive input columns, so a guard on the
    columns inside it would scalarize it; the rows are therefore staged, zero padded, into a
    buffer the schedule places per task. With ``split`` (at column stride ``s > 1``, see
    :func:`splits_by_phase`) the padded columns are also split into their ``s`` phases: padded
    column ``phase + s * column`` is staged at ``[phase, column]``, so the convolution reads
    each phase at unit stride instead of
    gathering every ``s``-th column (faster than leaving strided columns to LLVM; the
    measurements are in ``docs/design.md``). The convolution reads the padding rows as zeros
    rather than staging them zeroed, so that staging a row depends on its columns only and
    the schedule can tensorize it with vector shuffles (:func:`phase_split_intrinsic`).
    With ``whole_plane`` the padding rows are staged as zeros instead and the convolution
    reads them unmasked: the schedule then stages a task's whole planes, each with one
    intrinsic that knows which of its rows are padding.

    Rows not split are staged padded and read at the column stride.

    Returns the stage and ``read(index, x, tap)``: the pixel of the row at ``index`` (the
    position in the layout but for the width) that output column ``x`` meets at the kernel
    column offset ``tap``.
    """
    h_pos = layout.index_of("H")
    pad_top, pad_left, pad_bottom, _ = pads
    shape = list(data.shape)
    height, width = shape[h_pos], shape[-1]
    shape[h_pos] = height + pad_top + pad_bottom
    zero = tir.const(0, data.dtype)

    def _rows(y):
        return _rows_inside(y, height, pad_top, pad_bottom)

    columns = -(-extent // stride)
    if split:
        padded_rows = bool(pad_top or pad_bottom)

        def _phases(*index):
            *index, phase, column = index
            x = column * stride + phase
            if whole_plane:
                y = index[h_pos]
                index[h_pos] = y - pad_top
                return tir.if_then_else(
                    tir.all(_rows(y), _column_inside(x, pad_left, width)),
                    data[tuple(index) + (x - pad_left,)],
                    zero,
                )
            if padded_rows:
                # a padding row stages the nearest input row, which the convolution never
                # uses: the staging of a row is then the same for every row (no guard on
                # it) and the schedule can tensorize it
                index[h_pos] = tir.max(tir.min(index[h_pos] - pad_top, height - 1), 0)
            return tir.if_then_else(
                _column_inside(x, pad_left, width), data[tuple(index) + (x - pad_left,)], zero
            )

        stage = te.compute(shape[:-1] + [stride, columns], _phases, name="data_pad", tag=PAD_TAG)

        def _read_split(index, x, tap):
            phase, offset = tir.floormod(tap, stride), tir.floordiv(tap, stride)
            pixel = stage[tuple(index) + (phase, x + offset)]
            if whole_plane or not padded_rows:
                return pixel
            # a select, where a guarded load would branch inside the block
            return tir.Select(_rows(index[h_pos]), pixel, zero)

        return stage, _read_split

    stage = pad(data, layout, pads)

    def _read_padded(index, x, tap):
        return stage[tuple(index) + (x * stride + tap,)]

    return stage, _read_padded
