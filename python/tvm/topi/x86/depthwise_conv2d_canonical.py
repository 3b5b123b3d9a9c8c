"""x86 schedule for depthwise convolution on canonical weights (any multiplier and layout)."""
import tvm
from tvm import autotvm, te, tir
from tvm.autotvm.task.space import OtherOptionEntity, SplitEntity
from tvm.target.x86 import get_simd_32bit_lanes

from ..nn.depthwise_conv2d_canonical import depthwise_conv2d_canonical as _compute
from ..nn.depthwise_conv2d_canonical import depthwise_conv2d_canonical_reading
from ..nn.utils import get_pad_tuple
from ..utils import get_const_tuple, traverse_inline

_TAG = "depthwise_conv2d_canonical"
_UPSAMPLE_TAG = "depthwise_channel_upsample"
_PAD_TAG = "depthwise_pad"
# multiply-adds below which a layer runs on one thread
_PARALLEL_WORK = 1 << 16
# parallel tasks wanted before a task takes several blocks of rows
_MIN_TASKS = 16
# bytes of staged input rows a task may hold (half an L1 data cache)
_STAGE_BYTES = 24 * 1024
# input bytes a block of NHWC columns may read across all channels for a task to loop over
# the channel blocks (about two thirds of an L1 data cache)
_WINDOW_BYTES = 32 * 1024
# Staged rows start on a cache line: a vector load crossing two lines costs about two loads
_LINE_BYTES = 64
# input bytes a task of strided NCHW rows stages at once where the input outgrows L2, and the
# L2 it outgrows (a core's, on Zen 3; see _streaming_channels)
_STREAM_BYTES = 16 * 1024
_L2_BYTES = 512 * 1024
# broadcast weights a register block of width-innermost rows keeps in registers at most (a
# 3x3 kernel's, as measured; see _block_sums)
_HELD_WEIGHTS = 9


def is_packed(layout):
    """True for a layout with a split channel axis, such as ``NCHW16c``."""
    return layout.index_of("c") >= 0


def vectorized_along_channels(layout):
    """Channels-last (NHWC) and packed (NCHW16c) layouts vectorize along output channels."""
    return is_packed(layout) or layout.index_of("C") > layout.index_of("W")


def _pad(data, layout, pads):
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

    return te.compute(shape, _padded, name="data_pad", tag=_PAD_TAG)


def _inside(*guards):
    """The conjunction of the needed ``(condition, needed)`` guards, each marked ``likely``."""
    return tir.all(*[tir.likely(cond) for cond, needed in guards if needed], tir.const(True))


def _column_inside(x, pad_left, width):
    """Whether padded column ``x`` of a row ``width`` wide is an input column."""
    return _inside((x >= pad_left, pad_left), (x < width + pad_left, True))


def _rows_inside(y, height, pad_top, pad_bottom):
    """Whether padded row ``y`` is an input row."""
    return _inside((y >= pad_top, pad_top), (y < height + pad_top, pad_bottom))


def _phase_split_intrinsic(width, pad_left, stride, columns, lanes, dtype, plane=None):
    """A tensor intrinsic staging one padded row split by column phase, with vector shuffles.

    It computes ``out[phase, column]`` = padded column ``phase + stride * column`` of the row,
    the staging of :func:`_stage_rows`, from whole-vector loads of the row: each chunk of
    ``lanes`` columns loads ``stride`` consecutive vectors and picks every ``stride``-th lane
    of them for each phase. Loads stay inside the row: a vector reaching past its ends loads
    its inner part only and fills the padding lanes with zeros.

    LLVM left to vectorize the guarded copy vectorizes some rows and not others, depending on
    the padding and the loop order; the shuffles measured 0.78-0.95x the whole layer on AVX2
    on 3x3 and 5x5 stride-2 layers from 14x14 to 112x112 (0.88x and 0.83x on 512 and 576
    channels of 14x14), 1.01x on 224x224 and 1.18x on an odd 57x57.

    With ``plane = (height, pad_top, pad_bottom, needed)`` it stages the first ``needed``
    rows of a whole padded input plane instead, row by row, its padding rows as zeros (see
    :func:`_stage_rows`).
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
    row_buffer = tir.decl_buffer(
        row.shape, dtype, "row", offset_factor=1, strides=source_strides
    )
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


def _is_phase_split(stage):
    """Whether ``stage`` is the rows of :func:`_stage_rows` split by column phase."""
    return isinstance(stage.op, te.ComputeOp) and "pad_left" in stage.op.attrs


def _stages_whole_planes(stage):
    """Whether ``stage`` (split by phase) keeps its padding rows as zeros, which the schedule
    stages a whole plane at a time (see :func:`_stage_rows`)."""
    return _is_phase_split(stage) and "pad_top" in stage.op.attrs


def _splits_by_phase(stride, taps, columns, pad_left):
    """Whether a staged row is split by column phase with :func:`_phase_split_intrinsic`.

    The intrinsic stages a whole row of ``stride`` phases of ``columns`` columns at a time, and
    TVM matches it against the stage only where the stage's region is that whole row and no
    axis of it is a single iteration (TVM folds such an axis into a constant on one side of
    the match only). So a row is split where the kernel column offsets ``taps`` meet every
    phase (not so for a kernel one column wide, or a dilation that is a multiple of the
    stride), where it has two columns or more, and where it holds an input column at all (a
    row narrower than its left padding does not); any other row is staged unsplit and read at
    the stride.
    """
    every_phase = len({tap % stride for tap in taps}) == stride
    return stride > 1 and every_phase and columns > 1 and columns * stride > pad_left


def _stage_rows(data, layout, pads, extent, stride, taps, whole_plane=False):
    """The padded input of a task's rows for layouts with the width innermost (NCHW).

    A vector along the output width reads consecutive input columns, so a guard on the
    columns inside it would scalarize it; the rows are therefore staged, zero padded, into a
    buffer the schedule places per task. At column stride ``s > 1`` the padded columns are
    also split into their ``s`` phases: padded column ``phase + s * column`` is staged at
    ``[phase, column]``, so the convolution reads each phase at unit stride instead of
    gathering every ``s``-th column (faster than leaving strided columns to LLVM; the
    measurements are in ``docs/design.md``). The convolution reads the padding rows as zeros
    rather than staging them zeroed, so that staging a row depends on its columns only and
    the schedule can tensorize it with vector shuffles (:func:`_phase_split_intrinsic`).
    With ``whole_plane`` the padding rows are staged as zeros instead and the convolution
    reads them unmasked: the schedule then stages a task's whole planes, each with one
    intrinsic that knows which of its rows are padding.

    ``taps`` are the kernel's column offsets (kernel column times dilation). Rows that
    :func:`_splits_by_phase` rules out are staged unsplit and read at the column stride.

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
    if _splits_by_phase(stride, taps, columns, pad_left):
        padded_rows = bool(pad_top or pad_bottom)
        whole_plane = whole_plane and padded_rows

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

        attrs = {"width": width, "pad_left": pad_left}
        if whole_plane:
            attrs.update(height=height, pad_top=pad_top, pad_bottom=pad_bottom)
        stage = te.compute(
            shape[:-1] + [stride, columns], _phases, name="data_pad", tag=_PAD_TAG,
            attrs=attrs,
        )

        def _read_split(index, x, tap):
            phase, offset = tir.floormod(tap, stride), tir.floordiv(tap, stride)
            pixel = stage[tuple(index) + (phase, x + offset)]
            if whole_plane or not padded_rows:
                return pixel
            # a select, where a guarded load would branch inside the block (2x slower on a
            # 256x28 stride-2 layer)
            return tir.Select(_rows(index[h_pos]), pixel, zero)

        return stage, _read_split

    stage = _pad(data, layout, pads)

    def _read_padded(index, x, tap):
        return stage[tuple(index) + (x * stride + tap,)]

    return stage, _read_padded


def depthwise_conv2d_canonical_cpu(
    data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype, lanes=None
):
    """:func:`tvm.topi.nn.depthwise_conv2d_canonical` in the form the CPU schedules take.

    The input is padded here, so that the schedule places the padding itself, and the
    compute runs unpadded on it. The staged input is arranged so that vectors stay plain
    loads:

    * with channels innermost and a multiplier ``m > 1``, output channel ``o`` reading input
      channel ``o // m`` would make a vector of output channels gather its input: the padded
      input is then also upsampled along channels (input channel ``c`` repeated ``m`` times,
      computed per task by the schedule, never as a whole);
    * with the width innermost, the rows of a task are staged zero padded, and split by
      column phase when strided (see :func:`_stage_rows`); an output row narrower than a
      vector of ``lanes`` (the target's 32-bit SIMD lanes) is computed in a whole vector
      over zero padding and cropped (see :func:`_whole_vector_width`).

    The weight is read in place either way.
    """
    layout = tir.layout(data_layout)
    to_nchw = tir.bijective_layout(data_layout, "NCHW")
    in_shape = get_const_tuple(to_nchw.forward_shape(data.shape))
    out_channels, _, kernel_h, kernel_w = get_const_tuple(
        tir.bijective_layout(kernel_layout, "OIHW").forward_shape(kernel.shape)
    )
    in_channels = in_shape[1]
    multiplier = out_channels // in_channels if out_channels % in_channels == 0 else 1
    stride_h, stride_w = (strides, strides) if isinstance(strides, int) else strides
    dilation_h, dilation_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    pads = get_pad_tuple(
        padding, ((kernel_h - 1) * dilation_h + 1, (kernel_w - 1) * dilation_w + 1)
    )
    if layout.index_of("W") == len(layout) - 1 and (stride_w > 1 or any(pads)):
        out_w = (
            in_shape[3] + pads[1] + pads[3] - (kernel_w - 1) * dilation_w - 1
        ) // stride_w + 1
        wide = _whole_vector_width(out_w, lanes)
        extent = (wide - 1) * stride_w + (kernel_w - 1) * dilation_w + 1
        # the rows computed `wide` columns wide read zeros past the right padding
        wide_pads = pads[:3] + (pads[3] + (wide - out_w) * stride_w,)
        # A tall kernel reads many pixels of the padding rows, each masked by a select: with
        # channels enough for tasks of whole planes, those rows are staged as zeros instead
        # (see _stage_rows). AVX2, whole layer, one process: 0.79x effb0_144x56_k5_s2
        # (canonical and multiplier input), 0.98-1.01x effb0_672x14_k5_s2, whose one block of
        # rows has no select left.
        whole_plane = kernel_h >= 5 and in_channels >= 4 * _MIN_TASKS
        taps = [column * dilation_w for column in range(kernel_w)]
        staged, read_row = _stage_rows(
            data, layout, wide_pads, extent, stride_w, taps, whole_plane=whole_plane
        )

        def _read(n, channel, y, ry, x, rx):
            index = to_nchw.backward_index([n, channel, y * stride_h + ry * dilation_h, 0])
            return read_row(index[:-1], x, rx * dilation_w)

        conv = depthwise_conv2d_canonical_reading(
            _read, in_shape, wide_pads, data.dtype, kernel, strides, dilation, data_layout,
            kernel_layout, out_dtype,
        )
        return conv if wide == out_w else _crop_width(conv, out_w)
    if any(pads):
        data = _pad(data, layout, pads)
    if multiplier > 1 and vectorized_along_channels(layout):
        batch, _, height, width = get_const_tuple(to_nchw.forward_shape(data.shape))
        source = data

        def _upsample(*index):
            n, channel, y, x = to_nchw.forward_index(index)
            return source[tuple(to_nchw.backward_index([n, channel // multiplier, y, x]))]

        data = te.compute(
            to_nchw.backward_shape([batch, out_channels, height, width]),
            _upsample,
            name="data_upsampled",
            tag=_UPSAMPLE_TAG,
        )
    return _compute(data, kernel, strides, 0, dilation, data_layout, kernel_layout, out_dtype)


def _whole_vector_width(out_w, lanes):
    """Columns to compute a row of ``out_w`` with: whole vectors where the row has odd ones.

    A row of 7 columns in vectors of 7 lanes splits every unaligned load of the staged rows
    into three or four instructions (4 + 2 + 1 lanes); computed 8 wide, every load is whole
    and only the store of the row is split. AVX2, one process against 7 lanes: 0.87-0.93x on
    the 3x3 stride-2 layers over 14x14 (512 and 576 channels), 0.78x on 1024 channels of
    7x7 (stride 1).

    A row between two and four vectors wide (28 columns on AVX2) is computed in whole
    vectors too (32 columns, one vector of four registers and blocks of two rows), where it
    was vectors of half a register. AVX2, whole layer in one process: with ``m = 1``, 0.72x
    ``mnv1_256x28``, 0.81x ``mnv2_192x28``, 0.95x ``mnv1_128x56_s2``, 0.79x
    ``effb0_144x56_k5_s2``, 0.51x ``effb0_240x28_k5``; with ``m > 1`` (tasks of two input
    channels or more, see _define_knobs), 0.52-0.54x ``m2_96x28_k5``, 0.72-0.75x
    ``m16_32x28``, 0.73x ``m4_32x56_s2``, 0.50x on 32 channels of 28x28 under a 5x5 kernel
    with ``m = 4``. A row between one and two vectors (14 columns on AVX2) stays one vector
    of two registers as it is: computed 16 wide it measured 1.07-1.20x slower.
    """
    if not lanes:
        return out_w
    if out_w < lanes:
        return 1 << (out_w - 1).bit_length()
    if 2 * lanes < out_w < 4 * lanes and out_w % lanes:
        return -(-out_w // lanes) * lanes
    return out_w


def _crop_width(conv, out_w):
    """The first ``out_w`` columns of ``conv`` (width innermost), which the schedule computes
    whole.

    The read of the last computed column (never selected) keeps that column in the bounds
    TVM infers for the sums of a block, so that their vectors stay whole.
    """
    last = int(conv.shape[-1]) - 1

    def _crop(*index):
        *rest, x = index
        return tir.Select(x < out_w, conv[index], conv[tuple(rest) + (last,)])

    shape = list(conv.shape[:-1]) + [out_w]
    return te.compute(shape, _crop, name="depthwise_crop", tag="injective")


@autotvm.register_topi_compute("depthwise_conv2d_canonical.x86")
def depthwise_conv2d_canonical(
    cfg, data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype
):
    """Compute of :func:`tvm.topi.nn.depthwise_conv2d_canonical`, as an AutoTVM template."""
    del cfg
    # the vector width of the target being compiled for; none when only the compute is asked
    lanes = get_simd_32bit_lanes() if tvm.target.Target.current(allow_none=True) else None
    return depthwise_conv2d_canonical_cpu(
        data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype, lanes
    )


@autotvm.register_topi_schedule("depthwise_conv2d_canonical.x86")
def schedule_depthwise_conv2d_canonical(cfg, outs):
    """Vectorized, register-blocked schedule; the vector width comes from the target."""
    lanes = get_simd_32bit_lanes()
    # AVX-512 has 32 vector registers, AVX2 and SSE 16
    return schedule_depthwise_conv2d_canonical_cpu(cfg, outs, lanes, 32 if lanes == 16 else 16)


def _largest_divisor(extent, limit):
    """The largest divisor of ``extent`` that is at most ``limit`` (at least 1)."""
    for factor in range(min(extent, max(limit, 1)), 0, -1):
        if extent % factor == 0:
            return factor
    return 1


def _vector_factor(extent, lanes):
    """Lanes to vectorize an axis of ``extent`` with: a divisor, whole vectors when possible."""
    if extent <= lanes:
        return extent
    if extent % lanes == 0:
        return lanes
    # half a register of whole lanes beats an odd-sized vector (56 wide: 8 lanes, not 14)
    half = lanes // 2
    if half > 1 and extent % half == 0:
        return half
    return _largest_divisor(extent, lanes)


def _register_block(extent, limit):
    """A divisor of ``extent`` near ``limit`` for the unrolled register block."""
    block = _largest_divisor(extent, limit)
    if 2 * block <= limit and extent <= 2 * limit:
        # prime-ish extents: one block over the whole axis beats blocks of 1
        block = extent
    return block


def _define_knobs(cfg, conv, lanes, accumulators, vector_registers, cropped=False):
    """Knobs of the template and, when nothing is tuned, the fallback chosen from the shape."""
    layout = tir.layout(conv.op.attrs["data_layout"])
    n_pos, c_pos, h_pos, w_pos = (layout.index_of(axis) for axis in "NCHW")
    shape = get_const_tuple(conv.shape)
    out_c, out_h, out_w = shape[c_pos], shape[h_pos], shape[w_pos]
    channels_last = vectorized_along_channels(layout)
    del n_pos
    taps = 1
    for axis in conv.op.reduce_axis:
        taps *= int(axis.dom.extent)
    cfg.define_split("tile_c", out_c, num_outputs=2)
    # unpacked layouts: rows of a task, blocks of rows within it, rows of a register block
    rows_split = 2 if is_packed(layout) else 3
    # every divisor: the fallback gives a task of a large plane all its rows (28 blocks of
    # 4 rows of 112), which tuning must be able to reach and log as well
    cfg.define_split("tile_h", out_h, num_outputs=rows_split)
    cfg.define_split("tile_w", out_w, num_outputs=3 if not channels_last else 2)
    cfg.define_knob("unroll_kernel", [1, 0])
    cfg.define_knob("parallel", [1, 0])
    staged = conv.op.input_tensors[0]
    # the input rows staged per task, for layouts with the width innermost
    staging = not channels_last and staged.op.tag == _PAD_TAG
    if channels_last and not is_packed(layout):
        # tasks of rows that loop over the channel blocks, or of rows and channel blocks
        cfg.define_knob("channels_inner", [0, 1])
    if staging:
        # the staged rows of a task at once, or block by block of its rows
        cfg.define_knob("stage_per_block", [0, 1])
    per_tap_upsample = staged.op.tag == _UPSAMPLE_TAG and not is_packed(layout)
    if per_tap_upsample:
        # the input upsampled along channels once per task, or at every kernel tap
        cfg.define_knob("upsample_per_tap", [0, 1])
    if not cfg.is_fallback:
        return
    work = taps
    for extent in shape:
        work *= extent
    at_tap = False
    if channels_last:
        # packed layouts vectorize their inner channel block, and split only the outer one
        vec = 1 if is_packed(layout) else _vector_factor(out_c, lanes)
        if per_tap_upsample:
            # An upsampled pixel pays off when several outputs read it. Read about once (a
            # 22x1 kernel over 22 rows), the input is upsampled at each tap instead, into
            # vectors of two input channels' m copies each (a two-element load and a
            # permute: 0.54-0.8x for m = 2, 4, 8 against vectors of m lanes or fewer, which
            # broadcast the input pixel and measured 1.3 to 0.8 us on that layer against an
            # upsampled copy per task; vectors of four channels gather, 3-11x slower).
            staged_shape = get_const_tuple(staged.shape)
            reads = out_h * out_w * taps / (staged_shape[h_pos] * staged_shape[w_pos])
            if reads < 2:
                multiplier = out_c // int(staged.op.input_tensors[0].shape[c_pos])
                at_tap = 2 * multiplier <= lanes and out_c % (2 * multiplier) == 0
                vec = 2 * multiplier if at_tap else _largest_divisor(multiplier, lanes)
            cfg["upsample_per_tap"] = OtherOptionEntity(int(at_tap))
        cfg["tile_c"] = SplitEntity([-1, vec])
        cfg["tile_w"] = SplitEntity([-1, _register_block(out_w, accumulators)])
        # Tasks over all channel blocks where that wins (see _channels_inner); a layer on one
        # thread keeps each channel block's weights over all its columns instead (channels
        # inner measured 1.05x slower on the 22x1 layer).
        inner = (
            not is_packed(layout)
            and work >= _PARALLEL_WORK
            and _channels_inner(conv, layout, vec, cfg["tile_w"].size[-1], at_tap)
        )
        if not is_packed(layout):
            cfg["channels_inner"] = OtherOptionEntity(int(inner))
        # An upsampled input is built per task: tall tasks rebuild fewer of its rows, while
        # a register block stays one row of columns. Tasks of rows over all channels (never
        # with an upsampled copy) are one row each, so that there are enough of them.
        upsampled = staged.op.tag == _UPSAMPLE_TAG
        rows = _register_block(out_h, 8) if upsampled and not inner else 1
        cfg["tile_h"] = SplitEntity([-1, rows] if is_packed(layout) else [-1, rows, 1])
    else:
        # Strided columns make TVM's vectors gathers. The staged input of a width-innermost
        # layout splits them by phase; in any other layout they are left scalar, and LLVM
        # vectorizes them with wide loads and shuffles.
        strided = int(conv.op.attrs["strides"][1]) > 1 and len(staged.shape) == len(shape)
        # Small planes give a task too little work to pay for its launch: give a task several
        # channels (measured 1.3-2x faster on 14x14 to 32x32 planes).
        plane = out_h * out_w
        channels_per_task = 8 if plane <= 64 else 4 if plane <= 1024 else 1
        in_c = int(staged.shape[c_pos])
        multiplier = out_c // in_c
        vec = 1 if strided else _vector_factor(out_w, lanes)
        registers = 1
        if not strided and lanes < out_w < 2 * lanes:
            # A row between one and two vectors wide (14 columns on AVX2) in one vector of
            # two registers, not two vectors of half the row: the first starts on the
            # staged row's cache line (m = 1: 0.74-0.85x; m > 1: 0.87-0.89x m8_64x14, in
            # tasks of two input channels, below).
            vec, registers = out_w, 2
        if cropped and out_w > lanes:
            # a row computed whole over padding (see _whole_vector_width): one vector of
            # as many registers
            vec, registers = out_w, out_w // lanes
        if strided:
            tile_c = 1
        elif multiplier > 1:
            # The m outputs of an input channel in one task, which stages that channel's
            # rows once rather than once per task of fewer. AVX2, whole layer against
            # tasks of 1 or 4 output channels: 0.73x m8_16x112, 0.80x m8_64x14, 0.83x
            # m16_32x28, 0.86x m16_8x32; 0.92-1.04x with m = 2 and 4.
            inputs = channels_per_task // multiplier
            if registers > 1:
                # A row in one vector of several registers: with one input channel a task,
                # the row loads of a block are the same for all the task's channels, and
                # LLVM hoists them out of the loop over those and spills them (48 of a
                # block's 72 multiply-adds then read the stack; 2.6-4.5x slower than
                # narrow vectors). With two input channels the loads vary with the channel.
                # AVX2, whole layer, one process, against one input channel (both in such
                # vectors): 0.50x on 32 channels of 28x28 under a 5x5 kernel with m = 4,
                # 0.72x m16_32x28, 0.33x m8_64x14.
                inputs = max(inputs, 2)
            tile_c = multiplier * _largest_divisor(in_c, inputs)
        else:
            tile_c = _largest_divisor(out_c, channels_per_task)
        # Strided rows of a layer whose input outgrows L2: tasks of more channels, each
        # staging its rows at once (see _streaming_channels)
        streaming = False
        if multiplier == 1 and _is_phase_split(staged):
            channels = _streaming_channels(staged.op.input_tensors[0], layout, tile_c)
            streaming, tile_c = channels > tile_c, channels
        cfg["tile_c"] = SplitEntity([-1, tile_c])
        # a block of rows of one column strip: the padded rows of a task are read
        # (rows + kernel - 1) / rows times, so blocks as tall as the registers allow
        sums = _block_sums(accumulators, taps, vector_registers, registers)
        rows = _register_block(out_h, sums // registers)
        # A task takes several blocks of rows when there are enough tasks: its padded rows
        # are then staged once, not again for every block, in one buffer per task, which
        # should stay in L1.
        channel_tasks = out_c // cfg["tile_c"].size[-1]
        blocks = 1
        if staging:
            cfg["stage_per_block"] = OtherOptionEntity(0)
        if channel_tasks >= _MIN_TASKS:
            staged_shape = get_const_tuple(staged.shape)
            phases = staged_shape[-2] if _is_phase_split(staged) else 1
            kernel_h = int(conv.op.reduce_axis[0].dom.extent)
            stride_h = int(conv.op.attrs["strides"][0])
            # each phase of a staged row starts on a cache line
            phase_bytes = staged_shape[-1] * tvm.DataType(staged.dtype).bits // 8
            row_bytes = phases * -(-phase_bytes // _LINE_BYTES) * _LINE_BYTES
            # the input channels the task's output channels read
            row_bytes *= -(-tile_c // multiplier)
            for count in range(out_h // rows, 0, -1):
                staged_rows = (count * rows - 1) * stride_h + kernel_h
                if (out_h // rows) % count == 0 and staged_rows * row_bytes <= _STAGE_BYTES:
                    blocks = count
                    break
            if staging and channel_tasks >= 2 * _MIN_TASKS and blocks < out_h // rows:
                # The rows of a whole channel outgrow that buffer: with channels enough for
                # tasks, a task still takes all of them, and stages its rows block by block
                # (overlapping rows twice). The task then reads its channel in order, where
                # tasks of a few blocks each jump between channels. AVX2, whole layer, one
                # process: 0.83x mnv2_96x112_s2, 0.88x mnv1_64x112_s2, 0.86x mnv1_128x56_s2,
                # 0.90x m2_64x112; with 16 tasks (m8_16x112), 1.08x, so not there.
                blocks = out_h // rows
                # Unless a block's rows would be staged 1.5 times or more (two rows of a 5x5
                # stride-2 kernel stage 7 rows for 4 new ones): the task then stages all its
                # rows at once, past that buffer (in L2). AVX2, whole layer, one process:
                # 0.85-0.88x effb0_144x56_k5_s2 against block by block.
                restaged = ((rows - 1) * stride_h + kernel_h) / (rows * stride_h)
                cfg["stage_per_block"] = OtherOptionEntity(int(restaged < 1.5))
        if _stages_whole_planes(staged) or streaming:
            # planes staged whole (see _stage_rows): a task takes all rows of its channels
            blocks = out_h // rows
            cfg["stage_per_block"] = OtherOptionEntity(0)
        cfg["tile_h"] = SplitEntity([-1, blocks, rows])
        cfg["tile_w"] = SplitEntity([-1, 1, vec])
    cfg["unroll_kernel"] = OtherOptionEntity(1)
    # Starting the thread pool costs about a microsecond: a layer with less work than that
    # (such as a 22x1 kernel over one output row) runs on one thread.
    cfg["parallel"] = OtherOptionEntity(int(work >= _PARALLEL_WORK))


def _streaming_channels(data, layout, channels):
    """Channels for a task of strided NCHW rows (fallback rule): at least ``channels``.

    A layer whose input is larger than a core's L2 (512 KiB on Zen 3) streams it from L3,
    and there tasks that stage their rows in longer sweeps win: a task then takes the fewest
    multiples of ``channels`` that stage ``_STREAM_BYTES`` of input or more at once, as long
    as there are ``2 * _MIN_TASKS`` tasks. AVX2, whole layer, one process, 3x3 stride 2,
    against tasks of 4 channels: 0.86-0.91x on ``mnv1_256x28_s2`` (784 KiB of input), 0.88x
    on 384 and 0.87-0.90x on 512 channels of 28x28. Tasks of 8 channels staging block by
    block of rows lost that gain (1.03-1.06x), so such tasks stage all their rows at once.
    On inputs that fit in L2 more channels were worth nothing: 0.99x on 128 channels of
    28x28, 0.97-1.04x on 512 and 576 channels of 14x14, 1.09x on 96 of 32x32 (the bound is
    cautious: 320 channels of 20x20, 500 KiB, gained 0.86x).
    """
    shape = get_const_tuple(data.shape)
    channel_bytes = tvm.DataType(data.dtype).bits // 8
    for axis in "HW":
        channel_bytes *= shape[layout.index_of(axis)]
    in_c = shape[layout.index_of("C")]
    if shape[layout.index_of("N")] * in_c * channel_bytes < _L2_BYTES:
        return channels
    best = channels
    for count in range(channels, in_c // (2 * _MIN_TASKS) + 1, channels):
        if in_c % count == 0:
            best = count
            if count * channel_bytes >= _STREAM_BYTES:
                break
    return best


def _block_sums(accumulators, taps, vector_registers, row_registers):
    """Vector sums of a width-innermost (NCHW) register block (fallback rule).

    ``accumulators``, or fewer where the kernel's ``taps`` broadcast weights would not fit
    in the registers beside them: the weights are the same for every block of a channel,
    and LLVM keeps them in registers over a task's blocks. Eight sums with a 3x3 kernel
    overfill AVX2's 16 registers (8 sums, 9 weights, a loaded row and a temporary), and
    LLVM spills the weights and the input rows that two rows of the block share. The sums
    are then cut to what the registers leave (5 on AVX2: blocks of 4 rows of one register
    where there were 8). AVX2, whole layer, one process: 0.75-0.97x on 11 of the 13
    benchmark workloads that changed so (0.75x ``m2_64x112``, 0.88x ``mnv2_144x56``, 0.93x
    ``mnv2_96x112_s2``), 1.00-1.02x ``m8_64x14`` and 1.03x ``m4_32x56_s2``. Never below
    two rows of ``row_registers`` registers each: rows of four registers in blocks of one
    row lose the rows they share, and measured 1.10-1.16x (``mnv1_256x28``,
    ``mnv2_192x28``, ``mnv1_128x56_s2``). Only kernels of up to ``_HELD_WEIGHTS`` taps
    qualify: the 25 weights of a 5x5 kernel would leave AVX-512 (32 registers) 5 sums, a
    trade not measured.
    """
    if taps <= _HELD_WEIGHTS and taps + accumulators + 2 > vector_registers:
        return max(vector_registers - taps - 2, 2 * row_registers)
    return accumulators


def _channels_inner(conv, layout, vec, block_w, upsample_per_tap=False):
    """Whether NHWC tasks should span all channel blocks of their rows (fallback rule).

    A task of rows that loops over every channel block inside each block of columns writes
    whole output pixels in turn, where a task of one channel block writes one vector per
    pixel, 64 bytes apart from the next at the pixel's pitch. That wins (0.8-0.95x on m = 1
    3x3 layers up to 256 channels, 0.3x on ``m16_32x28``, whose 512 output channels were
    written 16 at a time) as long as the input a block of columns reads across all channels
    stays in L1; it loses (1.1-1.4x) where that window is larger (5x5 kernels, 384 channels
    or more, 256 channels at stride 2), and where each task would upsample all channels
    (``m`` not a multiple of the vector and no upsampling at each tap: 1.1-1.3x).
    """
    staged = conv.op.input_tensors[0]
    c_pos = layout.index_of("C")
    out_c = int(conv.shape[c_pos])
    source = staged
    if staged.op.tag == _UPSAMPLE_TAG:
        source = staged.op.input_tensors[0]
        multiplier = out_c // int(source.shape[c_pos])
        if multiplier % vec and not upsample_per_tap:
            return False
    kernel_h, kernel_w = (int(axis.dom.extent) for axis in conv.op.reduce_axis)
    _, stride_w = (int(e) for e in conv.op.attrs["strides"])
    dilation_h, dilation_w = (int(e) for e in conv.op.attrs["dilation"])
    window_w = (block_w - 1) * stride_w + (kernel_w - 1) * dilation_w + 1
    window_h = (kernel_h - 1) * dilation_h + 1
    bytes_per_pixel = int(source.shape[c_pos]) * tvm.DataType(source.dtype).bits // 8
    return window_h * window_w * bytes_per_pixel <= _WINDOW_BYTES


def schedule_depthwise_conv2d_canonical_cpu(cfg, outs, lanes, registers, accumulators=8):
    """Schedule :func:`tvm.topi.nn.depthwise_conv2d_canonical` for a CPU with SIMD.

    Shared by the x86 and ARM templates. Channels-last data (NHWC) is vectorized along the
    output channels and register-blocked along the output width; channels-first data (NCHW)
    is vectorized along the output width and blocked along width and rows. The accumulators
    of a block stay in registers over the unrolled kernel window. Channels-last reads the
    padding through a guard (it never depends on the vector lanes); channels-first pads only
    the rows of one task into a small buffer. Injective consumers (bias, activation) are
    fused into the store of the block.

    Parameters
    ----------
    cfg : ConfigEntity
        Knobs ``tile_c``, ``tile_h``, ``tile_w`` (splits), ``unroll_kernel``, ``parallel``,
        ``stage_per_block`` (NCHW), ``channels_inner`` and ``upsample_per_tap`` (NHWC).
    outs : te.Tensor or list of te.Tensor
        The output of the (possibly fused) operator.
    lanes : int
        32-bit SIMD lanes of the target (16 for AVX-512, 8 for AVX2, 4 for NEON).
    registers : int
        Vector registers of the target (32 for AVX-512 and NEON, 16 for AVX2).
    accumulators : int
        Vector accumulators a register block may use, registers permitting.

    Returns
    -------
    sch : te.Schedule
    """
    outs = [outs] if isinstance(outs, te.tensor.Tensor) else outs
    sch = te.create_schedule([x.op for x in outs])

    def _callback(op):
        if op.tag != _TAG:
            return
        _schedule_block(sch, cfg, op.output(0), outs[0], lanes, registers, accumulators)

    traverse_inline(sch, outs[0].op, _callback)
    return sch


def _tensorize_phase_split(sch, cfg, conv, stage, h_pos, lanes, per_block):
    """Stage the rows split by phase with the vector shuffles of _phase_split_intrinsic."""
    attrs = stage.op.attrs
    split = (
        int(attrs["width"]), int(attrs["pad_left"]), int(stage.shape[-2]),
        int(stage.shape[-1]), lanes, stage.dtype,
    )
    if not _stages_whole_planes(stage):
        # row by row
        sch[stage].tensorize(sch[stage].op.axis[-2], _phase_split_intrinsic(*split))
        return
    # Whole planes, their padding rows zeroed: one intrinsic a plane, where a task stages all
    # the rows of its channels at once (as the fallback does); else the guarded copy is left
    # to LLVM (correct, slower).
    out_h = int(conv.shape[h_pos])
    if per_block or cfg["tile_h"].size[1] * cfg["tile_h"].size[2] < out_h:
        return
    stride_h, dilation_h = int(conv.op.attrs["strides"][0]), int(conv.op.attrs["dilation"][0])
    kernel_h = int(conv.op.reduce_axis[0].dom.extent)
    # the padded rows the convolution reads
    needed = (out_h - 1) * stride_h + (kernel_h - 1) * dilation_h + 1
    plane = (int(attrs["height"]), int(attrs["pad_top"]), int(attrs["pad_bottom"]), needed)
    sch[stage].tensorize(sch[stage].op.axis[h_pos], _phase_split_intrinsic(*split, plane=plane))


def _schedule_block(sch, cfg, conv, out, lanes, registers, accumulators):
    # an NCHW row computed wider than the output (see _whole_vector_width)
    cropped = int(out.shape[-1]) != int(conv.shape[-1])
    _define_knobs(cfg, conv, lanes, accumulators, registers, cropped)
    layout = tir.layout(conv.op.attrs["data_layout"])
    n_pos, c_pos, h_pos, w_pos = (layout.index_of(axis) for axis in "NCHW")
    channels_last = vectorized_along_channels(layout)
    # the vector axis along channels: the inner block of a packed layout, else C itself
    lane_pos = layout.index_of("c") if is_packed(layout) else c_pos
    data_pad = conv.op.input_tensors[0]
    upsampled = None
    if isinstance(data_pad.op, te.ComputeOp) and data_pad.op.tag == _UPSAMPLE_TAG:
        upsampled, data_pad = data_pad, data_pad.op.input_tensors[0]
    if not (isinstance(data_pad.op, te.ComputeOp) and data_pad.op.tag == _PAD_TAG):
        data_pad = None
    elif channels_last or upsampled is not None:
        # the guards depend on rows and columns, never on the vector lanes (channels)
        sch[data_pad].compute_inline()
        data_pad = None
    if conv.op == out.op:
        acc = sch.cache_write(conv, "global")
        out = conv
    else:
        acc = conv
        sch[conv].set_scope("global")

    axes = sch[out].op.axis
    n, c, h, w = (axes[p] for p in (n_pos, c_pos, h_pos, w_pos))
    c_outer, c_inner = cfg["tile_c"].apply(sch, out, c)
    h_outer, *h_inner = cfg["tile_h"].apply(sch, out, h)
    h_mid, h_inner = h_inner if len(h_inner) == 2 else (None, h_inner[0])
    if is_packed(layout):
        w_outer, w_inner = cfg["tile_w"].apply(sch, out, w)
        lanes_axis = axes[lane_pos]
        sch[out].reorder(n, c_outer, h_outer, w_outer, c_inner, h_inner, w_inner, lanes_axis)
        vector = lanes_axis
        block = [c_inner, h_inner, w_inner]
        parallel = sch[out].fuse(n, c_outer, h_outer)
        block_at = w_outer
    elif channels_last:
        w_outer, w_inner = cfg["tile_w"].apply(sch, out, w)
        vector = c_inner
        block = [h_inner, w_inner]
        if cfg["channels_inner"].val:
            # whole output pixels in turn; the block's sums are one channel block's
            sch[out].reorder(n, h_outer, h_mid, w_outer, c_outer, h_inner, w_inner, c_inner)
            parallel = sch[out].fuse(n, h_outer)
            block_at = c_outer
        else:
            sch[out].reorder(n, h_outer, c_outer, h_mid, w_outer, h_inner, w_inner, c_inner)
            parallel = sch[out].fuse(n, h_outer, c_outer)
            block_at = w_outer
    else:
        if not cropped:
            w_outer, w_block, w_inner = cfg["tile_w"].apply(sch, out, w)
        else:
            # a row computed wider than the output: one vector of the whole output row
            w_outer, w_inner = sch[out].split(w, nparts=1)
            w_block, w_inner = sch[out].split(w_inner, nparts=1)
        sch[out].reorder(
            n, c_outer, h_outer, h_mid, w_outer, c_inner, h_inner, w_block, w_inner
        )
        vector = w_inner
        # A block is one channel's: its sums stay on the stack (TVM 0.19 moves a buffer
        # over 1 KiB, such as the sums of several channels, to the workspace pool, where
        # every sum is stored and loaded again), and the loop over a task's channels stays a
        # loop. Measured against blocks of all the task's channels, unrolled: 0.7-0.9x on
        # planes up to 28x28, never slower.
        block = [h_inner, w_block]
        parallel = sch[out].fuse(n, c_outer, h_outer)
        block_at = c_inner
    if cfg["parallel"].val:
        sch[out].parallel(parallel)
    for axis in block:
        sch[out].unroll(axis)
    sch[out].vectorize(vector)
    sch[acc].compute_at(sch[out], block_at)
    if data_pad is not None:
        # a guard on the columns would scalarize the vectors along them: pad the rows of a
        # task into a small buffer instead
        # the rows of the whole task, or of one block of its rows (knob stage_per_block)
        per_block = h_mid is not None and cfg["stage_per_block"].val
        sch[data_pad].compute_at(sch[out], h_mid if per_block else parallel)
        # each staged row (or phase of a row) starts on a cache line, so that the vectors of
        # at least one kernel column are aligned loads (measured 10.3 to 7.3 us on a 256x28
        # stride-2 layer)
        line = _LINE_BYTES * 8 // tvm.DataType(data_pad.dtype).bits
        sch[data_pad].storage_align(sch[data_pad].op.axis[-2], line, 0)
        if _is_phase_split(data_pad):
            _tensorize_phase_split(sch, cfg, conv, data_pad, h_pos, lanes, per_block)
    if upsampled is not None:
        source = upsampled.op.input_tensors[0]
        multiplier = int(upsampled.shape[lane_pos]) // int(source.shape[lane_pos])
        if is_packed(layout):
            # the packed channel block indexes its source through the outer block too
            sch[upsampled].compute_at(sch[out], parallel)
            sch[upsampled].vectorize(sch[upsampled].op.axis[lane_pos])
        elif cfg["upsample_per_tap"].val:
            pass  # placed at the accumulator's kernel column, below
        elif multiplier % cfg["tile_c"].size[-1] == 0:
            # a vector of output channels reads one input channel: a broadcast, no copy
            sch[upsampled].compute_inline()
        else:
            sch[upsampled].compute_at(sch[out], parallel)
            # vectors of the m copies of one input channel are broadcasts of one scalar
            # load; a vector across several input channels would gather element by element
            _, copies = sch[upsampled].split(
                sch[upsampled].op.axis[lane_pos], factor=multiplier
            )
            sch[upsampled].vectorize(copies)

    acc_axes = sch[acc].op.axis
    a_n, a_c, a_h, a_w = (acc_axes[p] for p in (n_pos, c_pos, h_pos, w_pos))
    ry, rx = sch[acc].op.reduce_axis
    if is_packed(layout):
        a_vector = acc_axes[lane_pos]
        sch[acc].reorder(a_n, a_c, ry, rx, a_h, a_w, a_vector)
        sch[acc].unroll(a_c)
    elif channels_last:
        sch[acc].reorder(a_n, ry, rx, a_h, a_w, a_c)
        a_vector = a_c
    else:
        sch[acc].reorder(a_n, a_c, ry, rx, a_h, a_w)
        a_vector = a_w
        a_w_block, a_vector = sch[acc].split(a_w, nparts=cfg["tile_w"].size[1])
        sch[acc].unroll(a_w_block)
    sch[acc].unroll(a_h)
    if channels_last:
        sch[acc].unroll(a_w)
    per_tap = upsampled is not None and not is_packed(layout) and cfg["upsample_per_tap"].val
    if per_tap:
        # the pixels of a block of columns for this tap, upsampled into a few vectors; the
        # kernel loop stays rolled, as unrolled taps would share the lanes' channel pattern
        # as a vector variable, which LLVM 22 rejects in TVM's debug info
        sch[upsampled].compute_at(sch[acc], rx)
        sch[upsampled].vectorize(sch[upsampled].op.axis[lane_pos])
    elif cfg["unroll_kernel"].val:
        sch[acc].unroll(ry)
        sch[acc].unroll(rx)
    sch[acc].vectorize(a_vector)
