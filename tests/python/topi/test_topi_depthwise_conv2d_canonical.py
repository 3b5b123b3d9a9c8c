"""The CPU templates of depthwise conv2d on canonical weights: numerics, fallback, tuning, ARM."""
import os

os.environ["TOPHUB_LOCATION"] = "NONE"

# pylint: disable=wrong-import-position
import numpy as np
import pytest

import tvm
import tvm.relay  # activates the patch's import hook before the project's topi modules load
from tvm import autotvm, relay, te
from tvm.contrib import graph_executor
from tvm_canonicalize_depthwise import reference as ref

from tvm.target.x86 import get_simd_32bit_lanes
from tvm.topi.nn.utils import get_pad_tuple
from tvm.topi.x86 import depthwise_conv2d_canonical as x86_dw

TARGET = tvm.target.Target(f"llvm -mcpu={tvm.target.codegen.llvm_get_system_cpu()}")
AVX2_TARGET = tvm.target.Target("llvm -mcpu=haswell")
# decisions that depend on the vector width are checked for both widths on any host (they
# lower without running); numerics always run on the host
AVX512_TARGET = tvm.target.Target("llvm -mcpu=skylake-avx512")
ARM_TARGET = tvm.target.Target("llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon")


def _inputs(channels, height, width, multiplier, kernel, dtype):
    rng = np.random.default_rng(channels * 131 + multiplier * 7 + height)
    kernel_h, kernel_w = kernel
    if dtype == "int8":
        data = rng.integers(-128, 128, (1, channels, height, width)).astype(dtype)
        weight = rng.integers(-128, 128, (channels * multiplier, 1, kernel_h, kernel_w))
        return data, weight.astype(dtype)
    data = rng.uniform(-1, 1, (1, channels, height, width)).astype(dtype)
    weight = rng.uniform(-1, 1, (channels * multiplier, 1, kernel_h, kernel_w)).astype(dtype)
    return data, weight


def _check(
    data_layout,
    kernel_layout,
    channels,
    size,
    multiplier,
    kernel=(3, 3),
    strides=(1, 1),
    padding=(1, 1, 1, 1),
    dilation=(1, 1),
    dtype="float32",
    out_dtype=None,
    target=TARGET,
):
    """Build the x86 template (fallback config) with te and compare it with NumPy."""
    out_dtype = out_dtype or dtype
    data_nchw, weight_oihw = _inputs(channels, *size, multiplier, kernel, dtype)
    data_np = ref.to_layout(data_nchw, "NCHW", data_layout)
    weight_np = ref.to_layout(weight_oihw, "OIHW", kernel_layout)
    data = te.placeholder(data_np.shape, dtype, name="data")
    weight = te.placeholder(weight_np.shape, dtype, name="weight")
    with target:
        out = x86_dw.depthwise_conv2d_canonical(
            data, weight, strides, padding, dilation, data_layout, kernel_layout, out_dtype
        )
        sch = x86_dw.schedule_depthwise_conv2d_canonical([out])
        func = tvm.build(sch, [data, weight, out], target)
    dev = tvm.cpu()
    result = tvm.nd.empty(tuple(int(e) for e in out.shape), out_dtype, dev)
    func(tvm.nd.array(data_np, dev), tvm.nd.array(weight_np, dev), result)
    if isinstance(padding, str):
        padding = tuple(
            int(e) for e in get_pad_tuple(padding, tuple(int(e) for e in weight_oihw.shape[2:]))
        )
    expected = ref.depthwise_conv2d_nchw(
        data_nchw, weight_oihw, strides, padding, dilation, out_dtype=out_dtype
    )
    tolerance = {"float16": 2e-2, "float32": 1e-5}.get(out_dtype, 0)
    np.testing.assert_allclose(
        ref.to_layout(result.numpy(), data_layout, "NCHW"),
        expected,
        rtol=tolerance,
        atol=tolerance,
    )


LAYOUTS = [
    ("NCHW", "OIHW"),
    ("NCHW", "OHWI"),
    ("NCHW", "IOHW"),
    ("NHWC", "HWOI"),
    ("NHWC", "HWIO"),
    ("NHWC", "OHWI"),
]


@pytest.mark.parametrize("data_layout,kernel_layout", LAYOUTS)
@pytest.mark.parametrize("multiplier", [1, 2, 3, 8])
def test_layouts_and_multipliers(data_layout, kernel_layout, multiplier):
    _check(data_layout, kernel_layout, 5, (9, 10), multiplier)


@pytest.mark.parametrize("data_layout,kernel_layout", [("NCHW", "OIHW"), ("NHWC", "HWOI")])
@pytest.mark.parametrize(
    "strides,padding,dilation,kernel",
    [
        ((2, 2), (1, 1, 1, 1), (1, 1), (3, 3)),
        ((1, 2), (0, 1, 2, 0), (1, 1), (3, 3)),
        ((1, 1), (2, 2, 2, 2), (2, 2), (3, 3)),
        ((2, 2), (2, 2, 2, 2), (1, 1), (5, 5)),
        ((1, 1), (0, 0, 0, 0), (1, 1), (11, 1)),
        ((1, 1), "SAME", (1, 1), (3, 3)),
        ((2, 3), (1, 2, 0, 1), (2, 2), (3, 3)),
        ((2, 2), (0, 0, 0, 0), (1, 1), (3, 3)),
    ],
)
@pytest.mark.parametrize("multiplier", [1, 3])
def test_strides_padding_dilation(data_layout, kernel_layout, strides, padding, dilation, kernel,
                                  multiplier):
    _check(data_layout, kernel_layout, 4, (11, 12), multiplier, kernel, strides, padding, dilation)


@pytest.mark.parametrize("data_layout,kernel_layout", [("NCHW", "OIHW"), ("NHWC", "HWOI")])
@pytest.mark.parametrize("dtype,out_dtype", [("float16", None), ("int8", "int32")])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_dtypes(data_layout, kernel_layout, dtype, out_dtype, multiplier):
    _check(data_layout, kernel_layout, 6, (7, 8), multiplier, dtype=dtype, out_dtype=out_dtype)


@pytest.mark.parametrize("data_layout,kernel_layout", [("NCHW", "OIHW"), ("NHWC", "HWOI")])
@pytest.mark.parametrize("channels", [3, 5, 7])
@pytest.mark.parametrize("size", [(1, 1), (2, 3)])
@pytest.mark.parametrize("multiplier", [1, 2, 16])
def test_fallback_odd_channels_tiny_sizes(data_layout, kernel_layout, channels, size, multiplier):
    _check(data_layout, kernel_layout, channels, size, multiplier)


@pytest.mark.parametrize("data_layout,kernel_layout", [("NCHW", "OIHW"), ("NHWC", "HWOI")])
def test_avx2_vector_width(data_layout, kernel_layout):
    _check(data_layout, kernel_layout, 12, (9, 9), 2, target=AVX2_TARGET)


def _task(data_layout="NHWC", kernel_layout="HWOI", channels=16, size=8, multiplier=1):
    data_shape = (1, size, size, channels) if data_layout == "NHWC" else (1, channels, size, size)
    weight_shape = (3, 3, channels * multiplier, 1) if kernel_layout == "HWOI" else None
    data = te.placeholder(data_shape, "float32", name="data")
    weight = te.placeholder(weight_shape, "float32", name="weight")
    args = (data, weight, (1, 1), (1, 1, 1, 1), (1, 1), data_layout, kernel_layout, "float32")
    return autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=TARGET)


def _lowered(task):
    with task.target:
        sch, args = task.func(*task.args)
    return tvm.lower(sch, args, simple_mode=True).script()


def _fallback(task):
    """The analytic fallback configuration the template picks for ``task`` on its target."""
    fallback = autotvm.task.space.FallbackConfigEntity()
    with task.target, autotvm.task.ApplyConfig(fallback):
        task.func(*task.args)
    return fallback


def _built_with(task, matches):
    """The task built with the first configuration of its space for which ``matches`` holds."""
    space = task.config_space
    config = next(space.get(i) for i in range(len(space)) if matches(space.get(i)))
    with task.target, autotvm.task.ApplyConfig(config):
        sch, args = task.func(*task.args)
        return tvm.build(sch, args, task.target)


def _parallel_extent(task):
    """Tasks of the parallel loop; 1 when the layer runs on one thread."""
    text = _lowered(task)
    marker = "T.parallel("
    if marker not in text:
        return 1
    start = text.index(marker) + len(marker)
    return int(text[start: text.index(")", start)])


def test_fallback_config_is_chosen_from_workload():
    task = _task(size=32)
    assert task.config_space.space_map.keys() >= {"tile_c", "tile_h", "tile_w", "parallel"}
    # 16 channels are one AVX-512 vector, one task per row
    assert _parallel_extent(task) == 32


def test_fallback_runs_tiny_layers_on_one_thread():
    # 16 x 8 x 8 outputs x 9 taps: less work than starting the thread pool is worth
    assert _parallel_extent(_task(size=8)) == 1
    assert _parallel_extent(_task(size=8, multiplier=16)) > 1


@pytest.mark.parametrize("target,lanes", [(AVX512_TARGET, 16), (AVX2_TARGET, 8)])
def test_strided_nchw_reads_columns_at_unit_stride(target, lanes):
    data = te.placeholder((1, 32, 64, 64), "float32", name="data")
    weight = te.placeholder((32, 1, 3, 3), "float32", name="weight")
    args = (data, weight, (2, 2), (1, 1, 1, 1), (1, 1), "NCHW", "OIHW", "float32")
    text = _lowered(autotvm.task.create("depthwise_conv2d_canonical.x86", args=args,
                                        target=target))
    assert f"float32x{lanes}" in text  # 32 output columns in vectors
    assert "T.Ramp(" not in text  # every vector load a plain slice, no stride-2 gather


def _strided_nchw_task(channels, size, padding=(1, 1, 1, 1), stride=2, kernel=3):
    data = te.placeholder((1, channels, size, size), "float32", name="data")
    weight = te.placeholder((channels, 1, kernel, kernel), "float32", name="weight")
    args = (data, weight, (stride, stride), padding, (1, 1), "NCHW", "OIHW", "float32")
    return autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=TARGET)


@pytest.mark.parametrize("size,stride", [(14, 2), (28, 2), (112, 2), (28, 1)])
def test_staged_rows_start_on_cache_lines(size, stride):
    task = _strided_nchw_task(64, size, stride=stride)
    with TARGET:
        sch, args = task.func(*task.args)
    # without common subexpressions, so that every store index is a sum over the loops
    with tvm.transform.PassContext(config={"tir.disable_cse_tir": True}):
        func = tvm.lower(sch, args)["main"]
    loops, stores = [], []

    def _visit(node):
        if isinstance(node, tvm.tir.For):
            loops.append(node.loop_var)
        elif isinstance(node, tvm.tir.BufferStore) and node.buffer.name.startswith("data_pad"):
            index = node.indices[0]
            stores.append(index.base if isinstance(index, tvm.tir.Ramp) else index)

    tvm.tir.stmt_functor.post_order_visit(func.body, _visit)
    assert stores
    line = 64 // 4  # float32 elements of a cache line
    with TARGET:
        lanes = get_simd_32bit_lanes()
    for index in stores:
        *coefficients, offset = (int(e) for e in tvm.arith.detect_linear_equation(index, loops))
        # rows, channels and phases step by whole cache lines; within a row only the column
        # loop steps by 1 (stride 1), or the vectors of the split start a line or whole
        # vectors after its start (stride 2)
        assert all(c % line == 0 for c in coefficients if c not in (0, 1)), index
        if stride == 1:
            assert coefficients.count(1) == 1 and offset % line == 0, index
        else:
            assert 1 not in coefficients and offset % line % lanes == 0, index
    assert any(int(tvm.arith.detect_linear_equation(i, loops)[-1]) % line == 0 for i in stores)


@pytest.mark.parametrize("channels,size,stride,multiplier", [
    (512, 14, 1, 1), (256, 28, 2, 1), (32, 28, 1, 16), (32, 112, 1, 1),
])
def test_nchw_block_sums_stay_on_the_stack(channels, size, stride, multiplier):
    data = te.placeholder((1, channels, size, size), "float32", name="data")
    weight = te.placeholder((channels * multiplier, 1, 3, 3), "float32", name="weight")
    args = (data, weight, (stride, stride), (1, 1, 1, 1), (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=TARGET)
    with TARGET:
        sch, args = task.func(*task.args)
    sums = []

    def _visit(node):
        if isinstance(node, tvm.tir.Allocate) and node.buffer_var.name.startswith(
            "depthwise_conv2d_canonical"
        ):
            dtype = tvm.DataType(node.dtype)
            sums.append(int(np.prod([int(e) for e in node.extents])) * dtype.bits // 8
                        * dtype.lanes)

    tvm.tir.stmt_functor.post_order_visit(tvm.lower(sch, args)["main"].body, _visit)
    # TVM 0.19 keeps a buffer on the stack up to 1 KiB, else allocates it from the pool
    assert sums and max(sums) <= 1024, sums


@pytest.mark.parametrize("target", [AVX512_TARGET, AVX2_TARGET, ARM_TARGET])
@pytest.mark.parametrize("size,padding,kernel,stride", [
    (14, (0, 0, 1, 1), 3, 2), (56, (1, 1, 2, 2), 5, 2), (57, (1, 1, 1, 1), 3, 2),
    (20, (3, 3, 3, 3), 7, 3), (3, (1, 1, 1, 1), 3, 2),
])
def test_phase_split_is_vector_shuffles(target, size, padding, kernel, stride):
    data = te.placeholder((1, 8, size, size), "float32", name="data")
    weight = te.placeholder((8, 1, kernel, kernel), "float32", name="weight")
    args = (data, weight, (stride, stride), padding, (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)
    stores = []

    def _visit(node):
        if isinstance(node, tvm.tir.BufferStore) and node.buffer.name.startswith("data_pad"):
            stores.append(node)

    with target:
        sch, built_args = task.func(*task.args)
    tvm.tir.stmt_functor.post_order_visit(tvm.lower(sch, built_args)["main"].body, _visit)
    # every staged row is whole-vector loads split by shuffles, with no loop left over it
    assert stores and all(isinstance(node.value, tvm.tir.Shuffle) for node in stores)
    with target:
        lanes = 4 if target is ARM_TARGET else get_simd_32bit_lanes()
        conv = x86_dw.depthwise_conv2d_canonical(*args)
    while conv.op.tag != "depthwise_conv2d_canonical":
        conv = conv.op.input_tensors[0]
    columns = int(conv.op.input_tensors[0].shape[-1])  # staged columns a phase
    # chunks of whole vectors while the row has them
    widest = max(tvm.DataType(node.value.dtype).lanes for node in stores)
    assert widest == min(lanes, columns)
    # compiles (for aarch64 too: it cannot run here)
    tvm.build(sch, built_args, target)


@pytest.mark.parametrize("target", [AVX512_TARGET, AVX2_TARGET, ARM_TARGET])
@pytest.mark.parametrize("size,padding,stride", [
    (56, (1, 1, 2, 2), 2), (14, (2, 2, 2, 2), 2), (20, (0, 0, 3, 3), 3),
])
def test_tall_kernels_stage_whole_planes_with_zero_rows(target, size, padding, stride):
    # 64 channels or more: a task stages the whole planes of its channels, padding rows
    # included as zeros, so that the 5x5 kernel reads them without masks
    data = te.placeholder((1, 64, size, size), "float32", name="data")
    weight = te.placeholder((64, 1, 5, 5), "float32", name="weight")
    args = (data, weight, (stride, stride), padding, (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)
    stores, masked = [], []

    def _visit(node):
        if isinstance(node, tvm.tir.BufferStore) and node.buffer.name.startswith("data_pad"):
            stores.append(node.value)
        if isinstance(node, tvm.tir.Select) and isinstance(node.true_value, tvm.tir.BufferLoad):
            masked.append(node.true_value.buffer.name.startswith("data_pad"))

    with target:
        sch, built_args = task.func(*task.args)
    tvm.tir.stmt_functor.post_order_visit(tvm.lower(sch, built_args)["main"].body, _visit)
    assert not any(masked)
    zeros = [v for v in stores if not isinstance(v, tvm.tir.Shuffle)]
    assert zeros and len(zeros) < len(stores)  # the padding rows, and shuffled input rows
    zeros = [v.value if isinstance(v, tvm.tir.Broadcast) else v for v in zeros]
    assert all(isinstance(v, tvm.tir.FloatImm) and v.value == 0 for v in zeros)
    tvm.build(sch, built_args, target)
    if target is ARM_TARGET:
        return  # compiles only: it cannot run here
    # numerics of the fallback, and of a configuration staging block by block, which
    # leaves the guarded copy of the planes to LLVM
    data_nchw, weight_oihw = _inputs(64, size, size, 1, (5, 5), "float32")
    expected = ref.depthwise_conv2d_nchw(
        data_nchw, weight_oihw, (stride, stride), padding, (1, 1)
    )
    target = AVX2_TARGET  # runs on any AVX-512 machine too
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)
    with target:
        sch, built_args = task.func(*task.args)
    for built in (
        tvm.build(sch, built_args, target),
        _built_with(task, lambda cfg: cfg["stage_per_block"].val == 1
                    and cfg["tile_h"].size[1] > 1),
    ):
        dev = tvm.cpu()
        result = tvm.nd.empty(expected.shape, "float32", dev)
        built(result, tvm.nd.array(weight_oihw, dev), tvm.nd.array(data_nchw, dev))
        np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size,padding,kernel,stride,dilation", [
    (14, (0, 0, 1, 1), 3, 2, 1), (56, (1, 1, 2, 2), 5, 2, 1), (57, (1, 1, 1, 1), 3, 2, 1),
    (20, (3, 3, 3, 3), 7, 3, 1), (3, (1, 1, 1, 1), 3, 2, 1), (2, (1, 1, 1, 1), 3, 2, 1),
    (23, (2, 0, 1, 3), 3, 2, 2), (16, (0, 0, 0, 0), 3, 2, 1), (9, (0, 4, 0, 0), 3, 2, 1),
])
def test_phase_split_numerics(size, padding, kernel, stride, dilation):
    # rows shorter than a vector, rows ending inside one, padding wider than the input
    _check("NCHW", "OIHW", 8, (size, size + 1), 1, (kernel, kernel), (stride, stride),
           padding, (dilation, dilation))


def _check_nhwc_build(func, data_nchw, weight_oihw, expected):
    """Run a built NHWC / HWOI template (arguments: output, weight, data) against NumPy."""
    dev = tvm.cpu()
    result = tvm.nd.empty(ref.to_layout(expected, "NCHW", "NHWC").shape, "float32", dev)
    weight = ref.to_layout(weight_oihw, "OIHW", "HWOI")
    data = ref.to_layout(data_nchw, "NCHW", "NHWC")
    func(result, tvm.nd.array(weight, dev), tvm.nd.array(data, dev))
    np.testing.assert_allclose(
        ref.to_layout(result.numpy(), "NHWC", "NCHW"), expected, rtol=1e-5, atol=1e-5
    )


def _nhwc_task(channels, size, multiplier, kernel=3):
    data = te.placeholder((1, size, size, channels), "float32", name="data")
    weight = te.placeholder((kernel, kernel, channels * multiplier, 1), "float32", name="weight")
    pad = kernel // 2
    args = (data, weight, (1, 1), (pad, pad, pad, pad), (1, 1), "NHWC", "HWOI", "float32")
    return autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=TARGET)


@pytest.mark.parametrize("channels,size,multiplier,kernel,inner", [
    (32, 28, 16, 3, True),  # 512 output channels were written 16 at a time per pixel
    (128, 56, 1, 3, True),
    (240, 28, 1, 5, False),  # a 5x5 window across 240 channels outgrows L1
    (512, 14, 1, 3, False),
    (32, 28, 2, 3, False),  # every task would upsample all channels
])
def test_nhwc_tasks_loop_over_channel_blocks(channels, size, multiplier, kernel, inner):
    task = _nhwc_task(channels, size, multiplier, kernel)
    fallback = _fallback(task)
    assert fallback["channels_inner"].val == inner
    rows = size // (fallback["tile_h"].size[1] * fallback["tile_h"].size[2])
    blocks = channels * multiplier // fallback["tile_c"].size[-1]
    # tasks of rows only, or of rows and channel blocks
    assert _parallel_extent(task) == (rows if inner else rows * blocks)


@pytest.mark.parametrize("multiplier", [1, 2, 16])
def test_nhwc_channels_inner_knob_numerics(multiplier):
    task = _nhwc_task(16, 9, multiplier)
    data_nchw, weight_oihw = _inputs(16, 9, 9, multiplier, (3, 3), "float32")
    expected = ref.depthwise_conv2d_nchw(data_nchw, weight_oihw, (1, 1), (1, 1, 1, 1), (1, 1))
    for inner in (0, 1):
        func = _built_with(task, lambda cfg: cfg["channels_inner"].val == inner)
        _check_nhwc_build(func, data_nchw, weight_oihw, expected)


@pytest.mark.parametrize("target,size,stride,multiplier,lanes", [
    (AVX512_TARGET, 28, 1, 1, 28), (AVX512_TARGET, 56, 2, 1, 28), (AVX512_TARGET, 20, 1, 1, 20),
    (AVX512_TARGET, 28, 1, 16, 28), (AVX512_TARGET, 32, 1, 1, 16), (AVX2_TARGET, 14, 1, 1, 14),
    (AVX2_TARGET, 16, 1, 1, 8), (AVX2_TARGET, 14, 1, 8, 14),
])
def test_nchw_rows_up_to_two_vectors_are_one_vector(target, size, stride, multiplier, lanes):
    data = te.placeholder((1, 16, size, size), "float32", name="data")
    weight = te.placeholder((16 * multiplier, 1, 3, 3), "float32", name="weight")
    args = (data, weight, (stride, stride), (1, 1, 1, 1), (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)
    fallback = _fallback(task)
    with target:
        register_lanes = get_simd_32bit_lanes()
    assert fallback["tile_w"].size[-1] == lanes
    if lanes > register_lanes:
        # two registers a vector: half the rows a register block
        assert fallback["tile_h"].size[-1] <= 4
        # with m > 1, tasks of two input channels (see the test below)
        assert fallback["tile_c"].size[-1] == multiplier * (2 if multiplier > 1 else 4)
    _check("NCHW", "OIHW", 16, (size, size), multiplier, strides=(stride, stride))


@pytest.mark.parametrize("target,size,stride,multiplier,wide", [
    (AVX2_TARGET, 14, 2, 1, 8), (AVX2_TARGET, 7, 1, 1, 8), (AVX2_TARGET, 5, 1, 1, 8),
    (AVX512_TARGET, 14, 2, 1, 8), (AVX512_TARGET, 14, 1, 1, 16), (AVX2_TARGET, 16, 2, 1, None),
    (AVX2_TARGET, 7, 1, 2, 8),
    # rows between two and four vectors, in whole ones (any m); none for rows between one
    # and two vectors
    (AVX2_TARGET, 28, 1, 1, 32), (AVX2_TARGET, 56, 2, 1, 32), (AVX2_TARGET, 20, 1, 1, 24),
    (AVX512_TARGET, 56, 1, 1, 64), (AVX2_TARGET, 28, 1, 2, 32), (AVX2_TARGET, 14, 1, 1, None),
    (AVX512_TARGET, 28, 1, 1, None),
])
def test_nchw_rows_are_computed_in_whole_vectors(target, size, stride, multiplier, wide):
    data = te.placeholder((1, 16, size, size), "float32", name="data")
    weight = te.placeholder((16 * multiplier, 1, 3, 3), "float32", name="weight")
    args = (data, weight, (stride, stride), (1, 1, 1, 1), (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)
    out_w = (size + 2 - 3) // stride + 1
    with target:
        outs = x86_dw.depthwise_conv2d_canonical(*args)
    conv = outs.op.input_tensors[0] if wide else outs
    assert int(outs.shape[-1]) == out_w
    # the sums of a row are computed in a whole vector, the output keeps its own width
    assert conv.op.tag == "depthwise_conv2d_canonical"
    assert int(conv.shape[-1]) == (wide or out_w)
    if wide:
        # the block's sums are one vector of the whole row (in as many registers)
        assert f"T.Broadcast(T.float32(0.0), {wide})" in _lowered(task)
    _check("NCHW", "OIHW", 16, (size, size), multiplier, strides=(stride, stride))


@pytest.mark.parametrize("channels,multiplier,kernel,size,width", [
    (32, 16, 3, 28, 32), (16, 4, 5, 28, 32), (16, 2, 3, 28, 32), (64, 8, 3, 14, 14),
])
def test_nchw_wide_vector_rows_give_tasks_two_input_channels(
    channels, multiplier, kernel, size, width
):
    # on AVX2 28 columns are computed 32 wide, 14 in one vector of two registers; tasks of
    # one input channel would read the same rows for all their output channels, which LLVM
    # hoists out of that loop and spills
    data = te.placeholder((1, channels, size, size), "float32", name="data")
    weight = te.placeholder((channels * multiplier, 1, kernel, kernel), "float32", name="weight")
    pad = kernel // 2
    args = (data, weight, (1, 1), (pad,) * 4, (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=AVX2_TARGET)
    fallback = autotvm.task.space.FallbackConfigEntity()
    with AVX2_TARGET, autotvm.task.ApplyConfig(fallback):
        sch, tensors = task.func(*task.args)
        conv = sch.outputs[0].output(0)
        if width != size:
            conv = conv.op.input_tensors[0]  # the crop's input
        assert int(conv.shape[-1]) == width
        assembly = tvm.build(sch, tensors, AVX2_TARGET).get_source("asm")
    assert fallback["tile_c"].size[-1] == 2 * multiplier
    assert fallback["tile_w"].size[-1] == width  # one vector a row
    fmas = [line for line in assembly.splitlines() if "vfmadd" in line]
    assert fmas and not [line for line in fmas if "(%rsp)" in line]
    _check("NCHW", "OIHW", channels, (size, size), multiplier, (kernel, kernel), (1, 1),
           (pad,) * 4, target=AVX2_TARGET)


@pytest.mark.parametrize("channels,size,stride,per_block", [
    (48, 112, 2, True),  # a channel's rows outgrow the stage buffer, 48 channel tasks
    (16, 112, 2, False),  # too few channels for tasks of whole channels
    (128, 28, 2, False),  # the rows of a task of 4 channels fit
])
def test_nchw_tasks_of_whole_channels_stage_block_by_block(channels, size, stride, per_block):
    task = _strided_nchw_task(channels, size, stride=stride)
    assert "stage_per_block" in task.config_space.space_map
    fallback = _fallback(task)
    assert fallback["stage_per_block"].val == per_block
    if per_block:
        # one task a channel: all its blocks of rows
        assert _parallel_extent(task) == channels
    data_nchw, weight_oihw = _inputs(channels, size, size, 1, (3, 3), "float32")
    expected = ref.depthwise_conv2d_nchw(
        data_nchw, weight_oihw, (stride, stride), (1, 1, 1, 1), (1, 1)
    )
    for value in (0, 1):
        func = _built_with(task, lambda cfg: cfg["stage_per_block"].val == value
                           and cfg["tile_h"].size[1] > 1)
        dev = tvm.cpu()
        result = tvm.nd.empty(expected.shape, "float32", dev)
        func(result, tvm.nd.array(weight_oihw, dev), tvm.nd.array(data_nchw, dev))
        np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,padding,per_block", [
    (5, (1, 1, 2, 2), False),  # blocks of two rows would stage 7 rows for 4 new ones
    (3, (0, 0, 1, 1), True),  # 5 rows for 4 new ones
])
def test_nchw_tasks_stage_whole_where_blocks_restage_much(kernel, padding, per_block):
    # AVX2: rows 32 columns wide, blocks of two of them; 36 tasks of 4 channels
    data = te.placeholder((1, 144, 56, 56), "float32", name="data")
    weight = te.placeholder((144, 1, kernel, kernel), "float32", name="weight")
    args = (data, weight, (2, 2), padding, (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=AVX2_TARGET)
    fallback = _fallback(task)
    assert fallback["tile_h"].size[1:] == [14, 2]  # a task: all blocks of its channels
    assert fallback["stage_per_block"].val == per_block
    _check("NCHW", "OIHW", 144, (56, 56), 1, (kernel, kernel), (2, 2), padding,
           target=AVX2_TARGET)


@pytest.mark.parametrize("size,stride", [(56, 1), (112, 2)])
def test_nchw_blocks_leave_registers_for_3x3_weights(size, stride):
    # rows of one AVX2 register: 8 sums and 9 weights overfill its 16 registers, so blocks
    # of 4 rows; AVX-512 (32 registers) keeps blocks of 8 sums (2 rows of 4 registers)
    data = te.placeholder((1, 32, size, size), "float32", name="data")
    weight = te.placeholder((32, 1, 3, 3), "float32", name="weight")
    args = (data, weight, (stride, stride), (1, 1, 1, 1), (1, 1), "NCHW", "OIHW", "float32")
    tasks = {
        target: autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)
        for target in (AVX2_TARGET, AVX512_TARGET)
    }
    assert _fallback(tasks[AVX2_TARGET])["tile_w"].size[-1] == 8  # one register a row
    assert _fallback(tasks[AVX2_TARGET])["tile_h"].size[-1] == 4
    wide = _fallback(tasks[AVX512_TARGET])
    assert wide["tile_h"].size[-1] * wide["tile_w"].size[-1] // 16 == 8
    # no multiply-add reads a spilled weight or row from the stack
    fallback = autotvm.task.space.FallbackConfigEntity()
    with AVX2_TARGET, autotvm.task.ApplyConfig(fallback):
        sch, tensors = tasks[AVX2_TARGET].func(*tasks[AVX2_TARGET].args)
        assembly = tvm.build(sch, tensors, AVX2_TARGET).get_source("asm")
    fmas = [line for line in assembly.splitlines() if "vfmadd" in line]
    assert fmas and not [line for line in fmas if "(%rsp)" in line]
    _check("NCHW", "OIHW", 32, (size, size), 1, strides=(stride, stride), target=AVX2_TARGET)


@pytest.mark.parametrize("target", [AVX2_TARGET, AVX512_TARGET], ids=["avx2", "avx512"])
@pytest.mark.parametrize("channels,size,tile_c", [
    (256, 28, 8),  # 784 KiB of input: tasks of 8 channels stage 24.5 KiB each
    (512, 28, 8),
    (320, 40, 4),  # 50 KiB a channel: 4 channels stage that already
    (128, 28, 4),  # 392 KiB of input, within L2: tasks of 4 channels as before
])
def test_strided_nchw_tasks_stream_where_input_outgrows_l2(target, channels, size, tile_c):
    data = te.placeholder((1, channels, size, size), "float32", name="data")
    weight = te.placeholder((channels, 1, 3, 3), "float32", name="weight")
    args = (data, weight, (2, 2), (0, 0, 1, 1), (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)
    fallback = _fallback(task)
    assert fallback["tile_c"].size[-1] == tile_c
    out_h = size // 2
    if tile_c == 8:
        # such a task stages all its rows at once
        tile_h = fallback["tile_h"].size
        assert tile_h[1] * tile_h[2] == out_h and fallback["stage_per_block"].val == 0
    assert channels // tile_c >= 32  # tasks enough for more cores than two
    if target is AVX2_TARGET and channels in (256, 128):
        _check("NCHW", "OIHW", channels, (size, size), 1, (3, 3), (2, 2), (0, 0, 1, 1),
               target=AVX2_TARGET)


@pytest.mark.parametrize("channels,size,stride,multiplier", [
    (16, 40, 1, 8), (8, 32, 1, 16), (64, 14, 1, 8), (6, 20, 1, 3), (8, 28, 2, 4),
])
def test_nchw_task_holds_every_output_of_its_input_channels(channels, size, stride, multiplier):
    # a task stages whole input channels, so it computes all m outputs of each (the
    # staged rows are then built once per input channel, not once per output channel)
    data = te.placeholder((1, channels, size, size), "float32", name="data")
    weight = te.placeholder((channels * multiplier, 1, 3, 3), "float32", name="weight")
    args = (data, weight, (stride, stride), (1, 1, 1, 1), (1, 1), "NCHW", "OIHW", "float32")
    task = autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=TARGET)
    fallback = _fallback(task)
    assert fallback["tile_c"].size[-1] % multiplier == 0
    _check("NCHW", "OIHW", channels, (size, size), multiplier, strides=(stride, stride))


def test_phase_split_only_where_columns_are_strided():
    assert "T.Shuffle(" in _lowered(_strided_nchw_task(16, 28, stride=2))
    assert "T.Shuffle(" not in _lowered(_strided_nchw_task(16, 28, stride=1))


@pytest.mark.parametrize("multiplier,upsample_lanes", [(2, 2), (4, 4), (16, None)])
def test_nhwc_multiplier_upsample_is_broadcasts(multiplier, upsample_lanes):
    text = _lowered(_task(size=32, channels=64 // multiplier, multiplier=multiplier))
    if upsample_lanes is None:
        # a vector of 16 output channels reads one input channel: no upsampled copy at all
        assert "data_upsampled" not in text
    else:
        # the copies of one input channel are stored as one broadcast vector
        assert f"] = T.Broadcast(T.if_then_else(" in text
        assert f", {upsample_lanes})\n" in text
        assert "T.Ramp(0, 1, 16) //" not in text  # no element-by-element gather


def _tall_kernel_task(multiplier, target=TARGET):
    # a 22x1 kernel over 22 rows reads each input pixel once
    data = te.placeholder((1, 22, 32, 8), "float32", name="data")
    weight = te.placeholder((22, 1, 8 * multiplier, 1), "float32", name="weight")
    args = (data, weight, (1, 1), (0, 0, 0, 0), (1, 1), "NHWC", "HWOI", "float32")
    return autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)


@pytest.mark.parametrize("multiplier", [2, 4, 8])
def test_nhwc_multiplier_without_reuse_upsamples_at_each_tap(multiplier):
    task = _tall_kernel_task(multiplier, AVX512_TARGET)
    fallback = _fallback(task)
    # vectors of two input channels' m copies, made at each tap
    assert fallback["upsample_per_tap"].val == 1
    assert fallback["tile_c"].size[-1] == 2 * multiplier
    text = _lowered(task)
    block = fallback["tile_w"].size[-1]
    assert f'data_upsampled = T.allocate([{block}], "float32x{2 * multiplier}"' in text
    assert text.index("for ry in") < text.index("data_upsampled_1[")
    _check("NHWC", "HWOI", 8, (22, 32), multiplier, kernel=(22, 1), padding=(0, 0, 0, 0))


def test_upsample_at_each_tap_only_for_two_channels_a_vector():
    # AVX2: two input channels' 8 copies are 16 lanes, two registers; broadcast instead
    task = _tall_kernel_task(8, AVX2_TARGET)
    fallback = _fallback(task)
    assert fallback["upsample_per_tap"].val == 0
    assert fallback["tile_c"].size[-1] == 8
    # an upsampled input with reuse (3x3 kernel) is made once per task
    task = _nhwc_task(16, 14, 4)
    fallback = _fallback(task)
    assert fallback["upsample_per_tap"].val == 0


@pytest.mark.parametrize("multiplier", [2, 3])
def test_upsample_per_tap_knob_numerics(multiplier):
    task = _nhwc_task(8, 9, multiplier)
    data_nchw, weight_oihw = _inputs(8, 9, 9, multiplier, (3, 3), "float32")
    expected = ref.depthwise_conv2d_nchw(data_nchw, weight_oihw, (1, 1), (1, 1, 1, 1), (1, 1))
    for per_tap, unroll, block in ((0, 1, 9), (1, 0, 3), (1, 1, 1), (1, 1, 9)):
        func = _built_with(
            task,
            lambda cfg: cfg["upsample_per_tap"].val == per_tap
            and cfg["unroll_kernel"].val == unroll
            and cfg["tile_c"].size[-1] == 2 * multiplier
            and cfg["tile_w"].size[-1] == block,
        )
        _check_nhwc_build(func, data_nchw, weight_oihw, expected)


def test_tuned_config_from_log_is_used(tmp_path):
    task = _task(size=32)
    space = task.config_space
    wanted = next(
        index
        for index in range(len(space))
        if space.get(index)["tile_h"].size[1:] == [8, 1]
        and space.get(index)["tile_c"].size[-1] == 8
        and space.get(index)["parallel"].val == 1
    )
    config = space.get(wanted)
    log = tmp_path / "tuned.log"
    result = autotvm.MeasureResult((1e-5,), 0, 0.1, 0)
    with open(log, "w") as stream:
        stream.write(autotvm.record.encode(autotvm.MeasureInput(TARGET, task, config), result))
        stream.write("\n")
    with autotvm.apply_history_best(str(log)):
        # 32 rows in 4 tasks, 16 channels in vectors of 8: 4 * 2 tasks
        assert _parallel_extent(task) == 8
    assert _parallel_extent(task) == 32


def _conv_module(data_layout, kernel_layout, channels, multiplier, dtype="float32"):
    data_shape = (1, 8, 8, channels) if data_layout == "NHWC" else (1, channels, 8, 8)
    weight_oihw = np.random.default_rng(0).uniform(-1, 1, (channels, multiplier, 3, 3))
    weight = ref.to_layout(weight_oihw.astype(dtype), "OIHW", kernel_layout)
    data = relay.var("data", shape=data_shape, dtype=dtype)
    conv = relay.nn.conv2d(
        data,
        relay.const(weight),
        padding=(1, 1),
        groups=channels,
        channels=channels * multiplier,
        kernel_size=(3, 3),
        data_layout=data_layout,
        kernel_layout=kernel_layout,
    )
    return tvm.IRModule.from_expr(relay.Function([data], relay.nn.relu(conv)))


def test_relay_extracts_the_template_and_fuses_relu():
    mod = _conv_module("NHWC", "HWOI", 4, 2)
    tasks = autotvm.task.extract_from_program(mod, params={}, target=TARGET)
    assert [task.name for task in tasks] == ["depthwise_conv2d_canonical.x86"]
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=TARGET)
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    data = np.random.default_rng(1).uniform(-1, 1, (1, 8, 8, 4)).astype("float32")
    module.set_input("data", data)
    module.run()
    weight = mod["main"].body.args[0].args[1].data.numpy()  # HWOI [3, 3, C, m]
    canonical = ref.multiplier_to_canonical(ref.to_layout(weight, "HWOI", "OIHW"))
    expected = ref.depthwise_conv2d_nchw(
        ref.to_layout(data, "NHWC", "NCHW"), canonical, padding=(1, 1, 1, 1)
    )
    np.testing.assert_allclose(
        ref.to_layout(module.get_output(0).numpy(), "NHWC", "NCHW"),
        np.maximum(expected, 0),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "data_layout,kernel_layout,multiplier",
    [("NCHW", "OIHW", 1), ("NCHW", "OIHW", 3), ("NHWC", "HWOI", 1), ("NHWC", "HWOI", 4)],
)
def test_arm_cpu_compiles(data_layout, kernel_layout, multiplier):
    mod = _conv_module(data_layout, kernel_layout, 6, multiplier)
    tasks = autotvm.task.extract_from_program(mod, params={}, target=ARM_TARGET)
    assert [task.name for task in tasks] == ["depthwise_conv2d_canonical.arm_cpu"]
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=ARM_TARGET)
    assert "fmla" in lib.get_lib().get_source("asm")
