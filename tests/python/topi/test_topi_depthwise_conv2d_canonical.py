"""The CPU templates of depthwise conv2d on canonical weights: numerics, fallback, tuning, ARM.

Every test of a schedule decision names its target, never the host's: the AVX2 one (``znver3``:
8 lanes, 16 vector registers) or the AVX-512 one (``znver5``: 16 lanes, 32 registers), and
takes both where the decision depends on the vector width, so that it holds on either kind of
host. They assert properties any good configuration has on that target (outputs match NumPy,
vectors of whole lanes, multiply-adds fed from registers, tasks for both threads, a point of
the tuning space, a tuned configuration honoured), not the untuned fallback's tile sizes.
Built code runs only where the host executes the target's instructions (``host_isa``): Zen
builds run on AMD hosts only (LLVM uses SSE4A there), so elsewhere the numerics run on the
portable target of the same vector class (``haswell``, ``skylake-avx512``), or on the AVX2 one
where the host has no AVX-512 (``_runnable``).
"""

import os

os.environ["TOPHUB_LOCATION"] = "NONE"

# pylint: disable=wrong-import-position
import numpy as np
import pytest

import tvm
import tvm.testing
from tvm import relay  # activates the patch's import hook before the project's topi modules load
from tvm import autotvm, te
from tvm.contrib import graph_executor
from tvm.topi.testing import depthwise_conv2d_canonical_python as ref
from tvm.target.x86 import get_simd_32bit_lanes
from tvm.topi.nn.utils import get_pad_tuple
from tvm.topi.x86 import depthwise_conv2d_canonical as x86_dw
from tvm.topi.arm_cpu import depthwise_conv2d_canonical as arm_dw
from host_isa import PORTABLE_TARGETS, runs_on_host

# the project's two kinds of machine (see test_targets_have_the_vector_widths_assumed)
AVX2_TARGET = tvm.target.Target("llvm -mcpu=znver3 -num-cores=2")
AVX512_TARGET = tvm.target.Target("llvm -mcpu=znver5 -num-cores=2")
ARM_TARGET = tvm.target.Target(
    "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon -num-cores=2"
)
X86_TARGETS = {"avx2": AVX2_TARGET, "avx512": AVX512_TARGET}
BOTH = [pytest.param(target, id=name) for name, target in X86_TARGETS.items()]

# the level-1 data cache of a core, the smaller of the two (32 KiB on Zen 3 and Zen 4)
_L1_BYTES = 32 * 1024


def _runnable(target):
    """``target`` where the host runs its code, else the portable target of its vector class
    (same lanes and registers), else the portable AVX2 one (runs on every x86 host here)."""
    if runs_on_host(target):
        return target
    wide = "avx512f" in tvm.target.codegen.llvm_get_cpu_features(target)
    twin = PORTABLE_TARGETS["avx512" if wide else "avx2"]
    return twin if runs_on_host(twin) else PORTABLE_TARGETS["avx2"]


# numerics-only tests: the wider of the two targets that this host runs
RUN_TARGET = _runnable(AVX512_TARGET)


def _lanes(target):
    with target:
        return get_simd_32bit_lanes()


def _registers(target):
    """Vector registers of the target: 32 with AVX-512, 16 with AVX2."""
    return 32 if "avx512f" in set(tvm.target.codegen.llvm_get_cpu_features(target)) else 16


def _on_both(cases, known=None):
    """Each case on both x86 targets (first argument), as ``pytest.param``.

    ``known`` maps ``(target name,) + case`` to the reason of a known failure of the fallback:
    such a case is a strict xfail, which turns red once the fallback is fixed.
    """
    known = known or {}
    params = []
    for case in cases:
        case = case if isinstance(case, tuple) else (case,)
        for name, target in X86_TARGETS.items():
            reason = known.get((name,) + case)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            ident = "-".join([name] + [str(value).replace(" ", "") for value in case])
            params.append(pytest.param(target, *case, marks=marks, id=ident))
    return params


# known failures of the untuned fallback (to be fixed by its rework, not by these tests)
SPILLS_ON_AVX512 = (
    "the untuned fallback spills on AVX-512: multiply-adds read the stack (its rules were "
    "measured on AVX2)"
)


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


# the _check calls done this session
_CHECKED = set()


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
    target=RUN_TARGET,
):
    """Build the x86 template (fallback config) for ``target`` and compare it with NumPy
    (once a session: several tests check the numerics of the same build)."""
    assert runs_on_host(target), f"this host cannot run code built for {target}"
    key = (
        data_layout,
        kernel_layout,
        channels,
        size,
        multiplier,
        kernel,
        strides,
        padding,
        dilation,
        dtype,
        out_dtype,
        str(target),
    )
    if key in _CHECKED:
        return
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
    _CHECKED.add(key)


@pytest.mark.parametrize(
    "target,lanes", [(AVX2_TARGET, 8), (AVX512_TARGET, 16)], ids=["avx2", "avx512"]
)
def test_targets_have_the_vector_widths_assumed(target, lanes):
    # an -mcpu this LLVM does not know would have no features, and 4 lanes
    assert _lanes(target) == lanes
    assert _registers(target) == 2 * lanes
    # numerics run on a portable twin of the same class where the host cannot run the target
    twin = _runnable(target)
    assert runs_on_host(twin)
    assert _lanes(twin) in (8, lanes)


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
def test_strides_padding_dilation(
    data_layout, kernel_layout, strides, padding, dilation, kernel, multiplier
):
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
    # the numerics of the 8-lane schedule, which runs on every x86 host here
    _check(data_layout, kernel_layout, 12, (9, 9), 2, target=PORTABLE_TARGETS["avx2"])


def _create(args, target):
    return autotvm.task.create("depthwise_conv2d_canonical.x86", args=args, target=target)


def _nchw_args(channels, size, multiplier=1, kernel=3, stride=1, padding=None):
    data = te.placeholder((1, channels, size, size), "float32", name="data")
    weight = te.placeholder((channels * multiplier, 1, kernel, kernel), "float32", name="weight")
    padding = (kernel // 2,) * 4 if padding is None else padding
    return (data, weight, (stride, stride), padding, (1, 1), "NCHW", "OIHW", "float32")


def _task(target, data_layout="NHWC", kernel_layout="HWOI", channels=16, size=8, multiplier=1):
    data_shape = (1, size, size, channels) if data_layout == "NHWC" else (1, channels, size, size)
    weight_shape = (3, 3, channels * multiplier, 1) if kernel_layout == "HWOI" else None
    data = te.placeholder(data_shape, "float32", name="data")
    weight = te.placeholder(weight_shape, "float32", name="weight")
    args = (data, weight, (1, 1), (1, 1, 1, 1), (1, 1), data_layout, kernel_layout, "float32")
    return _create(args, target)


def _schedule(task, config=None):
    """The schedule of ``task`` under ``config``, or under the current dispatch context (the
    fallback, or a tuning log applied) when None."""
    with task.target:
        if config is None:
            return task.func(*task.args)
        with autotvm.task.ApplyConfig(config):
            return task.func(*task.args)


def _fallback(task):
    """The analytic fallback configuration the template picks for ``task`` on its target."""
    fallback = autotvm.task.space.FallbackConfigEntity()
    _schedule(task, fallback)
    return fallback


def _lowered(task, config=None):
    sch, args = _schedule(task, config)
    return tvm.lower(sch, args, simple_mode=True).script()


def _lower(task, config=None, **pass_config):
    """The lowered ``task`` (an IRModule, which ``tvm.build`` takes as it is)."""
    sch, args = _schedule(task, config)
    with tvm.transform.PassContext(config=pass_config):
        return tvm.lower(sch, args)


def _nodes(mod):
    """The nodes of the lowered function, in post order."""
    nodes = []
    tvm.tir.stmt_functor.post_order_visit(mod["main"].body, nodes.append)
    return nodes


def _visit(task, config=None, **pass_config):
    return _nodes(_lower(task, config, **pass_config))


def _parallel_extent(task, config=None, nodes=None):
    """Tasks of the parallel loop; 1 when the layer runs on one thread."""
    nodes = _visit(task, config) if nodes is None else nodes
    extents = [
        int(node.extent)
        for node in nodes
        if isinstance(node, tvm.tir.For) and node.kind == tvm.tir.ForKind.PARALLEL
    ]
    assert len(extents) <= 1, extents
    return extents[0] if extents else 1


def _allocated_bytes(nodes, prefix):
    """Bytes of each buffer allocated in ``nodes`` whose name starts with ``prefix``."""
    sizes = []
    for node in nodes:
        if isinstance(node, tvm.tir.Allocate) and node.buffer_var.name.startswith(prefix):
            dtype = tvm.DataType(node.dtype)
            elements = int(np.prod([int(e) for e in node.extents]))
            sizes.append(elements * dtype.bits // 8 * dtype.lanes)
    return sizes


def _first_config(task, **wanted):
    """The first configuration of the task's space whose knobs satisfy ``wanted``, predicates
    on a knob's ``size`` (splits) or ``val`` by its name (found knob by knob: the space
    numbers its first knob fastest)."""
    index, stride = 0, 1
    for name, space in task.config_space.space_map.items():
        holds = wanted.get(name, lambda _: True)
        index += stride * next(
            position
            for position, entity in enumerate(space.entities)
            if holds(entity.size if hasattr(entity, "size") else entity.val)
        )
        stride *= len(space)
    return task.config_space.get(index)


def _built_with(task, **wanted):
    """The task built with the first configuration of its space that ``wanted`` holds for."""
    return tvm.build(_lower(task, _first_config(task, **wanted)), target=task.target)


def _stack_fmas(module):
    """The multiply-adds of the built ``module`` that read an operand from the stack (a
    spilled weight or input row, or sums that never reached registers)."""
    fmas = [line for line in module.get_source("asm").splitlines() if "vfmadd" in line]
    assert fmas, "no multiply-add in the code"
    return [line for line in fmas if "(%rsp)" in line]


def _outside_space(task, config):
    """The knobs of ``config`` whose value the task's tuning space does not hold."""
    outside = []
    for name, space in task.config_space.space_map.items():
        value = config[name]
        key = (lambda e: list(e.size)) if hasattr(value, "size") else (lambda e: e.val)
        if key(value) not in [key(entity) for entity in space.entities]:
            outside.append((name, key(value)))
    return outside


def _conv(args, target):
    """The convolution stage of the compute for ``target`` (it may be cropped after)."""
    with target:
        conv = x86_dw.depthwise_conv2d_canonical(*args)
    while conv.op.tag != "depthwise_conv2d_canonical":
        conv = conv.op.input_tensors[0]
    return conv


def _vector(config, data_layout):
    """The vector of a register block: output channels (NHWC) or columns (NCHW)."""
    return config["tile_c" if data_layout == "NHWC" else "tile_w"].size[-1]


def _run_nchw(func, data_nchw, weight_oihw, expected):
    """Run a built NCHW / OIHW template (arguments: output, weight, data) against NumPy."""
    dev = tvm.cpu()
    result = tvm.nd.empty(expected.shape, "float32", dev)
    func(result, tvm.nd.array(weight_oihw, dev), tvm.nd.array(data_nchw, dev))
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-5)


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


def _nhwc_args(channels, size, multiplier=1, kernel=3, stride=1):
    data = te.placeholder((1, size, size, channels), "float32", name="data")
    weight = te.placeholder((kernel, kernel, channels * multiplier, 1), "float32", name="weight")
    pad = kernel // 2
    return (data, weight, (stride, stride), (pad,) * 4, (1, 1), "NHWC", "HWOI", "float32")


def _nhwc_task(channels, size, multiplier, target, kernel=3):
    return _create(_nhwc_args(channels, size, multiplier, kernel), target)


def _strided_nchw_task(channels, size, target, padding=(1, 1, 1, 1), stride=2, kernel=3):
    return _create(_nchw_args(channels, size, 1, kernel, stride, padding), target)


def _check_task(task, module, channels, size, multiplier, kernel, stride, padding):
    """Compare ``module``, the NCHW ``task`` built for its target, with NumPy where this host
    runs that target's code; elsewhere the fallback built for AVX2."""
    if not runs_on_host(task.target):
        _check(
            "NCHW",
            "OIHW",
            channels,
            (size, size),
            multiplier,
            (kernel, kernel),
            (stride, stride),
            padding,
            target=_runnable(task.target),
        )
        return
    data_nchw, weight_oihw = _inputs(channels, size, size, multiplier, (kernel, kernel), "float32")
    expected = ref.depthwise_conv2d_nchw(data_nchw, weight_oihw, (stride, stride), padding, (1, 1))
    _run_nchw(module, data_nchw, weight_oihw, expected)


# layout, channels, size, multiplier, kernel, stride
_WORKLOADS = [
    ("NHWC", 16, 8, 1, 3, 1),  # 9 K multiply-adds
    ("NHWC", 16, 32, 1, 3, 1),  # 147 K
    ("NHWC", 32, 28, 2, 3, 1),  # 452 K
    ("NCHW", 16, 14, 1, 3, 1),  # 28 K
    ("NCHW", 32, 64, 1, 3, 2),  # 295 K
    ("NCHW", 16, 40, 8, 3, 1),  # 1.8 M
    ("NCHW", 144, 56, 1, 5, 2),  # 2.8 M
    ("NCHW", 32, 112, 1, 3, 1),  # 3.6 M
    ("NCHW", 32, 112, 1, 3, 2),  # 0.9 M
]


@pytest.mark.parametrize(
    "target,layout,channels,size,multiplier,kernel,stride",
    _on_both(_WORKLOADS),
)
def test_fallback_config_is_chosen_from_workload(
    target, layout, channels, size, multiplier, kernel, stride
):
    """The fallback, chosen from the workload and the target, vectorizes whole registers (or a
    whole row or channel axis), runs a large layer (256 K multiply-adds or more) in two tasks
    a thread or more and a tiny one (under 16 K) on one thread, and is a point of the space."""
    make_args = _nhwc_args if layout == "NHWC" else _nchw_args
    args = make_args(channels, size, multiplier, kernel, stride)
    task = _create(args, target)
    assert task.config_space.space_map.keys() >= {"tile_c", "tile_h", "tile_w", "parallel"}
    fallback = autotvm.task.space.FallbackConfigEntity()
    nodes = _visit(task, fallback)
    lanes = _lanes(target)
    conv = _conv(args, target)
    whole = int(conv.shape[-1 if layout == "NCHW" else 3])
    vector = _vector(fallback, layout)
    assert vector % lanes == 0 or vector == whole, (vector, whole)
    tasks = _parallel_extent(task, nodes=nodes)
    work = int(np.prod([int(e) for e in conv.shape])) * kernel * kernel
    if work >= 1 << 18:
        assert tasks >= 4
    if work < 1 << 14:
        assert tasks == 1
    assert not _outside_space(task, fallback)


@pytest.mark.parametrize("target", BOTH)
def test_fallback_runs_tiny_layers_on_one_thread(target):
    # 16 x 8 x 8 outputs x 9 taps: less work than starting the thread pool is worth
    assert _parallel_extent(_task(target, size=8)) == 1
    assert _parallel_extent(_task(target, size=8, multiplier=16)) >= 2


@pytest.mark.parametrize("target", BOTH)
def test_strided_nchw_reads_columns_at_unit_stride(target):
    text = _lowered(_create(_nchw_args(32, 64, stride=2), target))
    assert f"float32x{_lanes(target)}" in text  # 32 output columns in whole vectors
    assert "T.Ramp(" not in text  # every vector load a plain slice, no stride-2 gather


@pytest.mark.parametrize("target", BOTH)
@pytest.mark.parametrize("size,stride", [(14, 2), (28, 2), (112, 2), (28, 1)])
def test_staged_rows_start_on_cache_lines(target, size, stride):
    task = _strided_nchw_task(64, size, target, stride=stride)
    sch, args = _schedule(task)
    # without common subexpressions, so that every store index is a sum over the loops
    with tvm.transform.PassContext(config={"tir.disable_cse_tir": True}):
        func = tvm.lower(sch, args)["main"]
    loops, stores = [], []

    def _visit_node(node):
        if isinstance(node, tvm.tir.For):
            loops.append(node.loop_var)
        elif isinstance(node, tvm.tir.BufferStore) and node.buffer.name.startswith("data_pad"):
            index = node.indices[0]
            stores.append(index.base if isinstance(index, tvm.tir.Ramp) else index)

    tvm.tir.stmt_functor.post_order_visit(func.body, _visit_node)
    assert stores
    line = 64 // 4  # float32 elements of a cache line
    lanes = _lanes(target)
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


@pytest.mark.parametrize("target", BOTH)
@pytest.mark.parametrize(
    "channels,size,stride,multiplier",
    [
        (512, 14, 1, 1),
        (256, 28, 2, 1),
        (32, 28, 1, 16),
        (32, 112, 1, 1),
    ],
)
def test_nchw_block_sums_stay_on_the_stack(target, channels, size, stride, multiplier):
    task = _create(_nchw_args(channels, size, multiplier, stride=stride), target)
    sums = _allocated_bytes(_visit(task), "depthwise_conv2d_canonical")
    # TVM 0.19 keeps a buffer on the stack up to 1 KiB, else allocates it from the pool
    assert sums and max(sums) <= 1024, sums


@pytest.mark.parametrize(
    "target", [AVX512_TARGET, AVX2_TARGET, ARM_TARGET], ids=["avx512", "avx2", "arm"]
)
@pytest.mark.parametrize(
    "size,padding,kernel,stride",
    [
        (14, (0, 0, 1, 1), 3, 2),
        (56, (1, 1, 2, 2), 5, 2),
        (57, (1, 1, 1, 1), 3, 2),
        (20, (3, 3, 3, 3), 7, 3),
        (3, (1, 1, 1, 1), 3, 2),
    ],
)
def test_phase_split_is_vector_shuffles(target, size, padding, kernel, stride):
    args = _nchw_args(8, size, 1, kernel, stride, padding)
    mod = _lower(_create(args, target))
    stores = [
        node
        for node in _nodes(mod)
        if isinstance(node, tvm.tir.BufferStore) and node.buffer.name.startswith("data_pad")
    ]
    # every staged row is whole-vector loads split by shuffles, with no loop left over it
    assert stores and all(isinstance(node.value, tvm.tir.Shuffle) for node in stores)
    lanes = 4 if target is ARM_TARGET else _lanes(target)
    columns = int(_conv(args, target).op.input_tensors[0].shape[-1])  # staged columns a phase
    # chunks of whole vectors while the row has them
    widest = max(tvm.DataType(node.value.dtype).lanes for node in stores)
    assert widest == min(lanes, columns)
    # compiles (for aarch64 too: it cannot run here)
    tvm.build(mod, target=target)


@pytest.mark.parametrize(
    "target", [AVX512_TARGET, AVX2_TARGET, ARM_TARGET], ids=["avx512", "avx2", "arm"]
)
@pytest.mark.parametrize(
    "size,padding,stride",
    [
        (56, (1, 1, 2, 2), 2),
        (14, (2, 2, 2, 2), 2),
        (20, (0, 0, 3, 3), 3),
    ],
)
def test_tall_kernels_stage_whole_planes_with_zero_rows(target, size, padding, stride):
    # 64 channels or more: a task stages the whole planes of its channels, padding rows
    # included as zeros, so that the 5x5 kernel reads them without masks
    args = _nchw_args(64, size, 1, 5, stride, padding)
    task = _create(args, target)
    mod = _lower(task)
    stores, masked = [], []
    for node in _nodes(mod):
        if isinstance(node, tvm.tir.BufferStore) and node.buffer.name.startswith("data_pad"):
            stores.append(node.value)
        if isinstance(node, tvm.tir.Select) and isinstance(node.true_value, tvm.tir.BufferLoad):
            masked.append(node.true_value.buffer.name.startswith("data_pad"))
    assert not any(masked)
    zeros = [v for v in stores if not isinstance(v, tvm.tir.Shuffle)]
    assert zeros and len(zeros) < len(stores)  # the padding rows, and shuffled input rows
    zeros = [v.value if isinstance(v, tvm.tir.Broadcast) else v for v in zeros]
    assert all(isinstance(v, tvm.tir.FloatImm) and v.value == 0 for v in zeros)
    module = tvm.build(mod, target=target)
    if target is ARM_TARGET:
        return  # compiles only: it cannot run here
    # numerics of the fallback, and of a configuration staging block by block, which
    # leaves the guarded copy of the planes to LLVM
    data_nchw, weight_oihw = _inputs(64, size, size, 1, (5, 5), "float32")
    expected = ref.depthwise_conv2d_nchw(data_nchw, weight_oihw, (stride, stride), padding, (1, 1))
    if not runs_on_host(target):
        task = _create(args, _runnable(target))
        module = tvm.build(_lower(task), target=_runnable(target))
    for built in (
        module,
        _built_with(task, stage_per_block=lambda val: val == 1, tile_h=lambda size: size[1] > 1),
    ):
        _run_nchw(built, data_nchw, weight_oihw, expected)


@pytest.mark.parametrize(
    "size,padding,kernel,stride,dilation",
    [
        (14, (0, 0, 1, 1), 3, 2, 1),
        (56, (1, 1, 2, 2), 5, 2, 1),
        (57, (1, 1, 1, 1), 3, 2, 1),
        (20, (3, 3, 3, 3), 7, 3, 1),
        (3, (1, 1, 1, 1), 3, 2, 1),
        (2, (1, 1, 1, 1), 3, 2, 1),
        (23, (2, 0, 1, 3), 3, 2, 2),
        (16, (0, 0, 0, 0), 3, 2, 1),
        (9, (0, 4, 0, 0), 3, 2, 1),
    ],
)
def test_phase_split_numerics(size, padding, kernel, stride, dilation):
    # rows shorter than a vector, rows ending inside one, padding wider than the input
    _check(
        "NCHW",
        "OIHW",
        8,
        (size, size + 1),
        1,
        (kernel, kernel),
        (stride, stride),
        padding,
        (dilation, dilation),
    )


@pytest.mark.parametrize(
    "target,channels,size,multiplier,kernel",
    _on_both(
        [
            (32, 28, 16, 3),  # 512 output channels
            (128, 56, 1, 3),
            (240, 28, 1, 5),  # a 5x5 window across 240 channels: 52 KiB for blocks of 7 columns
            (512, 14, 1, 3),  # a 3x3 window across 512 channels: 54 KiB
            (32, 28, 2, 3),
        ]
    ),
)
def test_nhwc_tasks_loop_over_channel_blocks(target, channels, size, multiplier, kernel):
    """NHWC tasks span all channel blocks of their rows only where the input that a block of
    columns reads across all channels stays in L1; the parallel loop follows the knob, in two
    tasks a thread or more."""
    task = _nhwc_task(channels, size, multiplier, target, kernel)
    fallback = _fallback(task)
    inner = fallback["channels_inner"].val
    if inner:
        window = kernel * (fallback["tile_w"].size[-1] + kernel - 1) * channels * 4
        assert window <= _L1_BYTES, window
    rows = size // (fallback["tile_h"].size[1] * fallback["tile_h"].size[2])
    blocks = channels * multiplier // fallback["tile_c"].size[-1]
    # tasks of rows only, or of rows and channel blocks
    tasks = _parallel_extent(task, fallback)
    assert tasks == (rows if inner else rows * blocks)
    assert tasks >= 4


@pytest.mark.parametrize("multiplier", [1, 2, 16])
def test_nhwc_channels_inner_knob_numerics(multiplier):
    task = _nhwc_task(16, 9, multiplier, RUN_TARGET)
    data_nchw, weight_oihw = _inputs(16, 9, 9, multiplier, (3, 3), "float32")
    expected = ref.depthwise_conv2d_nchw(data_nchw, weight_oihw, (1, 1), (1, 1, 1, 1), (1, 1))
    for inner in (0, 1):
        func = _built_with(task, channels_inner=lambda val, inner=inner: val == inner)
        _check_nhwc_build(func, data_nchw, weight_oihw, expected)


# 16 channels of size x size, stride, multiplier: rows narrower than a vector (7 on both,
# 14 on AVX-512), of one or two vectors (16, and 32 on AVX-512), between one and two (14 on
# AVX2, 20 and 28 on AVX-512), between two and four (20 and 28 on AVX2, 56 on AVX-512), of
# four or more (32 and 56 on AVX2); both tests below compare the same builds with NumPy
_NCHW_ROWS = [
    (14, 2, 1),
    (7, 1, 2),
    (14, 1, 1),
    (14, 1, 8),
    (16, 1, 1),
    (20, 1, 1),
    (28, 1, 1),
    (28, 1, 16),
    (32, 1, 1),
    (56, 1, 1),
]


@pytest.mark.parametrize("target,size,stride,multiplier", _on_both(_NCHW_ROWS))
def test_nchw_rows_up_to_two_vectors_are_one_vector(target, size, stride, multiplier):
    """A row between one and two vectors wide is one vector of two registers, not two
    vectors of half the row; any other row is vectorized in whole registers, or as a whole. The
    sums of a register block take at most half the registers (a row of two registers: half
    the rows)."""
    args = _nchw_args(16, size, multiplier, stride=stride)
    fallback = _fallback(_create(args, target))
    lanes = _lanes(target)
    out_w = (size - 1) // stride + 1
    row = int(_conv(args, target).shape[-1])  # computed width (see the test below)
    vector = fallback["tile_w"].size[-1]
    if lanes < out_w < 2 * lanes:
        assert vector == row == out_w
    else:
        assert vector % lanes == 0 or vector == row, (vector, row)
    sums = fallback["tile_h"].size[-1] * -(-vector // lanes)
    assert sums <= _registers(target) // 2
    _check(
        "NCHW",
        "OIHW",
        16,
        (size, size),
        multiplier,
        strides=(stride, stride),
        target=_runnable(target),
    )


@pytest.mark.parametrize("target,size,stride,multiplier", _on_both(_NCHW_ROWS))
def test_nchw_rows_are_computed_in_whole_vectors(target, size, stride, multiplier):
    """The sums of a row narrower than a vector are one whole vector of a power of two lanes
    (one load each, where 7 lanes take 4 + 2 + 1), of a row between two and four vectors
    whole vectors; never more than a vector wider than the row, whose output keeps its
    width. A row between one and two vectors may stay as it is (16 wide measured slower
    than 14 on AVX2)."""
    args = _nchw_args(16, size, multiplier, stride=stride)
    task = _create(args, target)
    lanes = _lanes(target)
    out_w = (size + 2 - 3) // stride + 1
    with target:
        outs = x86_dw.depthwise_conv2d_canonical(*args)
    assert int(outs.shape[-1]) == out_w
    row = int(_conv(args, target).shape[-1])
    assert out_w <= row < out_w + lanes
    if out_w < lanes:
        assert row & (row - 1) == 0, row
    elif 2 * lanes < out_w < 4 * lanes:
        assert row % lanes == 0, row
    if row != out_w:
        # the block's sums are one vector of the whole row (in as many registers)
        assert f"T.Broadcast(T.float32(0.0), {row})" in _lowered(task)
    _check(
        "NCHW",
        "OIHW",
        16,
        (size, size),
        multiplier,
        strides=(stride, stride),
        target=_runnable(target),
    )


@pytest.mark.parametrize(
    "target,channels,multiplier,kernel,size",
    _on_both(
        [(32, 16, 3, 28), (16, 4, 5, 28), (16, 2, 3, 28), (64, 8, 3, 14)],
        known={
            ("avx512", 16, 4, 5, 28): SPILLS_ON_AVX512,  # 22 of 200 multiply-adds
            ("avx512", 64, 8, 3, 14): SPILLS_ON_AVX512,  # 12 of 126
        },
    ),
)
def test_nchw_wide_vector_rows_keep_multiply_adds_off_the_stack(
    target, channels, multiplier, kernel, size
):
    """Rows in one vector of several registers (28 columns computed 32 wide on AVX2, 14 in
    one vector of two registers) with m > 1: no multiply-add reads a row or weight from the
    stack. (Tasks of one input channel read the same rows for all their output channels,
    which LLVM hoisted out of that loop and spilled.)"""
    pad = kernel // 2
    args = _nchw_args(channels, size, multiplier, kernel)
    task = _create(args, target)
    fallback = _fallback(task)
    row = int(_conv(args, target).shape[-1])
    vector = fallback["tile_w"].size[-1]
    assert vector % _lanes(target) == 0 or vector == row
    sch, tensors = _schedule(task, fallback)
    module = tvm.build(sch, tensors, target)
    _check_task(task, module, channels, size, multiplier, kernel, 1, (pad,) * 4)
    assert not _stack_fmas(module)


@pytest.mark.parametrize("target,channels,size", _on_both([(48, 112), (16, 112), (128, 28)]))
def test_nchw_tasks_of_whole_channels_stage_block_by_block(target, channels, size):
    """Strided 3x3 rows: the rows a task stages at once stay in L1 however many rows its
    channels have (a task of whole 112x112 channels stages them block by block), in two
    tasks a thread or more; the stage_per_block knob is honoured (one block's rows staged at
    a time), and both of its values compute the convolution."""
    task = _strided_nchw_task(channels, size, target)
    assert "stage_per_block" in task.config_space.space_map
    nodes = _visit(task, autotvm.task.space.FallbackConfigEntity())
    staged = _allocated_bytes(nodes, "data_pad")
    assert staged and max(staged) <= _L1_BYTES, staged
    assert _parallel_extent(task, nodes=nodes) >= 4
    data_nchw, weight_oihw = _inputs(channels, size, size, 1, (3, 3), "float32")
    expected = ref.depthwise_conv2d_nchw(data_nchw, weight_oihw, (2, 2), (1, 1, 1, 1), (1, 1))
    task = _strided_nchw_task(channels, size, _runnable(target))
    staged = []
    for value in (0, 1):
        # the same configuration but for the knob (the last of the space)
        config = _first_config(
            task,
            stage_per_block=lambda val, value=value: val == value,
            tile_h=lambda size: size[1] > 1,
        )
        mod = _lower(task, config)
        staged.append(max(_allocated_bytes(_nodes(mod), "data_pad")))
        _run_nchw(tvm.build(mod, target=task.target), data_nchw, weight_oihw, expected)
    assert staged[1] < staged[0]


@pytest.mark.parametrize("target,kernel,padding", _on_both([(5, (1, 1, 2, 2)), (3, (0, 0, 1, 1))]))
def test_nchw_tasks_stage_whole_where_blocks_restage_much(target, kernel, padding):
    """A task stages its rows block by block only where a block restages less than half again
    its new rows (two rows of a 5x5 stride-2 kernel would stage 7 rows for 4 new ones; a 3x3
    one 5 for 4)."""
    args = _nchw_args(144, 56, 1, kernel, 2, padding)
    task = _create(args, target)
    fallback = _fallback(task)
    rows = fallback["tile_h"].size[-1]
    if fallback["stage_per_block"].val and fallback["tile_h"].size[1] > 1:
        assert ((rows - 1) * 2 + kernel) / (rows * 2) < 1.5
    assert _parallel_extent(task, fallback) >= 4
    _check(
        "NCHW",
        "OIHW",
        144,
        (56, 56),
        1,
        (kernel, kernel),
        (2, 2),
        padding,
        target=_runnable(target),
    )


@pytest.mark.parametrize(
    "target,size,stride",
    _on_both(
        [(56, 1), (112, 2)],
        known={
            ("avx512", 56, 1): SPILLS_ON_AVX512,  # 43 of 72 multiply-adds
            ("avx512", 112, 2): SPILLS_ON_AVX512,  # 36 of 72
        },
    ),
)
def test_nchw_blocks_leave_registers_for_3x3_weights(target, size, stride):
    """The sums of a register block leave registers for the 9 weights of a 3x3 kernel, a
    loaded row and a temporary, and no multiply-add reads a spilled weight or row from the
    stack."""
    args = _nchw_args(32, size, stride=stride)
    task = _create(args, target)
    fallback = _fallback(task)
    sums = fallback["tile_h"].size[-1] * -(-fallback["tile_w"].size[-1] // _lanes(target))
    assert sums + 9 + 2 <= _registers(target)
    sch, tensors = _schedule(task, fallback)
    module = tvm.build(sch, tensors, target)
    _check_task(task, module, 32, size, 1, 3, stride, (1, 1, 1, 1))
    assert not _stack_fmas(module)


@pytest.mark.parametrize(
    "target,channels,size",
    _on_both(
        [
            (256, 28),  # 784 KiB of input
            (512, 28),
            (320, 40),  # 2000 KiB, 6.25 KiB a channel
            (128, 28),  # 392 KiB of input, within L2
        ]
    ),
)
def test_strided_nchw_tasks_stream_where_input_outgrows_l2(target, channels, size):
    """Where the input outgrows a core's L2 (512 KiB on Zen 3), the channels of a task hold
    16 KiB of input or more (staged in long sweeps: tasks of 4 channels of 28x28 hold
    12 KiB); 32 tasks or more either way, for more cores than two."""
    args = _nchw_args(channels, size, stride=2, padding=(0, 0, 1, 1))
    task = _create(args, target)
    fallback = _fallback(task)
    channel_bytes = size * size * 4
    if channels * channel_bytes > 512 * 1024:
        assert fallback["tile_c"].size[-1] * channel_bytes >= 16 * 1024
    assert _parallel_extent(task, fallback) >= 32
    if channels in (256, 128):
        _check(
            "NCHW",
            "OIHW",
            channels,
            (size, size),
            1,
            (3, 3),
            (2, 2),
            (0, 0, 1, 1),
            target=_runnable(target),
        )


@pytest.mark.parametrize(
    "target,channels,size,stride,multiplier",
    _on_both(
        [
            (16, 40, 1, 8),
            (8, 32, 1, 16),
            (64, 14, 1, 8),
            (6, 20, 1, 3),
            (8, 28, 2, 4),
        ]
    ),
)
def test_nchw_task_holds_every_output_of_its_input_channels(
    target, channels, size, stride, multiplier
):
    # a task stages whole input channels, so it computes all m outputs of each (the
    # staged rows are then built once per input channel, not once per output channel)
    task = _create(_nchw_args(channels, size, multiplier, stride=stride), target)
    assert _fallback(task)["tile_c"].size[-1] % multiplier == 0
    _check(
        "NCHW",
        "OIHW",
        channels,
        (size, size),
        multiplier,
        strides=(stride, stride),
        target=_runnable(target),
    )


@pytest.mark.parametrize("target", BOTH)
def test_phase_split_only_where_columns_are_strided(target):
    assert "T.Shuffle(" in _lowered(_strided_nchw_task(16, 28, target, stride=2))
    assert "T.Shuffle(" not in _lowered(_strided_nchw_task(16, 28, target, stride=1))


@pytest.mark.parametrize("target", BOTH)
@pytest.mark.parametrize("multiplier", [2, 4, 16])
def test_nhwc_multiplier_upsample_is_broadcasts(target, multiplier):
    text = _lowered(_task(target, size=32, channels=64 // multiplier, multiplier=multiplier))
    lanes = _lanes(target)
    if multiplier % lanes == 0:
        # a vector of output channels reads one input channel: no upsampled copy at all
        assert "data_upsampled" not in text
    else:
        # the copies of one input channel are stored as one broadcast vector
        assert "] = T.Broadcast(T.if_then_else(" in text
        assert f", {multiplier})\n" in text
        assert f"T.Ramp(0, 1, {lanes}) //" not in text  # no element-by-element gather


def _tall_kernel_task(multiplier, target):
    # a 22x1 kernel over 22 rows reads each input pixel once
    data = te.placeholder((1, 22, 32, 8), "float32", name="data")
    weight = te.placeholder((22, 1, 8 * multiplier, 1), "float32", name="weight")
    args = (data, weight, (1, 1), (0, 0, 0, 0), (1, 1), "NHWC", "HWOI", "float32")
    return _create(args, target)


def _upsampled_at_each_tap(nodes):
    """Stores of the upsampled input inside the kernel loop, and outside it."""
    inside = set()
    for node in nodes:
        if isinstance(node, tvm.tir.For) and node.loop_var.name == "ry":
            tvm.tir.stmt_functor.post_order_visit(
                node.body,
                lambda n: inside.add(n) if isinstance(n, tvm.tir.BufferStore) else None,
            )
    stores = [
        node
        for node in nodes
        if isinstance(node, tvm.tir.BufferStore) and node.buffer.name.startswith("data_upsampled")
    ]
    at_tap = [store for store in stores if store in inside]
    return at_tap, [store for store in stores if store not in inside]


@pytest.mark.parametrize("target,multiplier", _on_both([2, 4, 8]))
def test_nhwc_multiplier_without_reuse_upsamples_at_each_tap(target, multiplier):
    """Where each input pixel is read once, no task upsamples its input ahead: the upsampled
    pixels are made at each tap for one block of columns, in vectors of one register of two
    input channels' copies at most (four channels gather element by element), or the input
    is read as broadcasts."""
    task = _tall_kernel_task(multiplier, target)
    fallback = _fallback(task)
    nodes = _visit(task, fallback)
    at_tap, ahead = _upsampled_at_each_tap(nodes)
    assert not ahead
    vector = fallback["tile_c"].size[-1]
    if at_tap:
        assert vector <= min(2 * multiplier, _lanes(target))
        block = fallback["tile_w"].size[-1] * vector * 4
        assert _allocated_bytes(nodes, "data_upsampled") == [block]
    _check(
        "NHWC",
        "HWOI",
        8,
        (22, 32),
        multiplier,
        kernel=(22, 1),
        padding=(0, 0, 0, 0),
        target=_runnable(target),
    )


@pytest.mark.parametrize("target", BOTH)
def test_upsample_with_reuse_is_made_once_per_task(target):
    # a 3x3 kernel reads each upsampled pixel 9 times: the copy is made once per task
    at_tap, ahead = _upsampled_at_each_tap(_visit(_nhwc_task(16, 14, 4, target)))
    assert ahead and not at_tap


@pytest.mark.parametrize("multiplier", [2, 3])
def test_upsample_per_tap_knob_numerics(multiplier):
    task = _nhwc_task(8, 9, multiplier, RUN_TARGET)
    data_nchw, weight_oihw = _inputs(8, 9, 9, multiplier, (3, 3), "float32")
    expected = ref.depthwise_conv2d_nchw(data_nchw, weight_oihw, (1, 1), (1, 1, 1, 1), (1, 1))
    for per_tap, unroll, block in ((0, 1, 9), (1, 0, 3), (1, 1, 1), (1, 1, 9)):
        func = _built_with(
            task,
            upsample_per_tap=lambda val, per_tap=per_tap: val == per_tap,
            unroll_kernel=lambda val, unroll=unroll: val == unroll,
            tile_c=lambda size: size[-1] == 2 * multiplier,
            tile_w=lambda size, block=block: size[-1] == block,
        )
        _check_nhwc_build(func, data_nchw, weight_oihw, expected)


@pytest.mark.parametrize("target", BOTH)
def test_tuned_config_from_log_is_used(target, tmp_path):
    task = _task(target, size=32)
    config = _first_config(
        task,
        tile_h=lambda size: list(size[1:]) == [8, 1],
        tile_c=lambda size: size[-1] == 8,
        parallel=lambda val: val == 1,
    )
    log = tmp_path / "tuned.log"
    result = autotvm.MeasureResult((1e-5,), 0, 0.1, 0)
    with open(log, "w", encoding="utf-8") as stream:
        stream.write(autotvm.record.encode(autotvm.MeasureInput(target, task, config), result))
        stream.write("\n")
    with autotvm.apply_history_best(str(log)):
        # 32 rows in tasks of 8, times 2 blocks of 8 of the 16 channels unless a task spans
        # them; vectors of 8 channels, whatever the target's width
        tasks = 32 // 8 * (1 if config["channels_inner"].val else 2)
        assert _parallel_extent(task) == tasks
        text = _lowered(task)
        assert "float32x8" in text and "float32x16" not in text
    # without the log: the fallback
    assert _lowered(task) == _lowered(task, _fallback(task))


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
    tasks = autotvm.task.extract_from_program(mod, params={}, target=RUN_TARGET)
    assert [task.name for task in tasks] == ["depthwise_conv2d_canonical.x86"]
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=RUN_TARGET)
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


def _arm_fallback(args):
    task = autotvm.task.create("depthwise_conv2d_canonical.arm_cpu", args=args, target=ARM_TARGET)
    return task, _fallback(task)


def _int8_args(data_layout, channels, height, width, multiplier=1, kernel=(3, 3), padding=1):
    nchw = data_layout == "NCHW"
    shape = (1, channels, height, width) if nchw else (1, height, width, channels)
    weight_shape = (
        (channels * multiplier, 1) + kernel if nchw else kernel + (channels * multiplier, 1)
    )
    data = te.placeholder(shape, "int8", name="data")
    weight = te.placeholder(weight_shape, "int8", name="weight")
    return (
        data,
        weight,
        (1, 1),
        (padding,) * 4,
        (1, 1),
        data_layout,
        "OIHW" if nchw else "HWOI",
        "int32",
    )


@pytest.mark.parametrize("data_layout", ["NHWC", "NCHW"])
def test_neon_int8_vectors_fill_a_register(data_layout):
    """8-bit data with 32-bit sums on NEON: vectors of 16 elements (one register, widened in
    halves by sshll/sshll2 and multiplied by smlal/smlal2), their sums counted as four registers
    each against the block's budget; x86 keeps vectors of its 32-bit lanes."""
    args = _int8_args(data_layout, 32, 16, 64)
    task, fallback = _arm_fallback(args)
    if data_layout == "NHWC":
        vector = fallback["tile_c"].size[-1]
        sums = fallback["tile_w"].size[-1] * vector // 4
    else:
        vector = fallback["tile_w"].size[-1]
        sums = fallback["tile_h"].size[-1] * fallback["tile_w"].size[1] * vector // 4
    assert vector % 16 == 0, fallback
    assert sums <= arm_dw.ACCUMULATORS, fallback
    sch, tensors = _schedule(task, fallback)
    # the high half of a register of 8-bit data widened: whole registers loaded
    assert "sshll2" in tvm.build(sch, tensors, ARM_TARGET).get_source("asm")
    x86 = _fallback(_create(args, AVX2_TARGET))
    assert x86["tile_c" if data_layout == "NHWC" else "tile_w"].size[-1] == 8, x86


@pytest.mark.parametrize(
    "target", [AVX512_TARGET, AVX2_TARGET, ARM_TARGET], ids=["avx512", "avx2", "arm"]
)
def test_a_block_of_every_row_takes_several_vectors_of_it(target):
    """A 22x1 kernel over 22 rows (VALID) leaves one output row: the register block, which
    holds every row there is, takes as many vectors along that row as its sums allow (here the
    whole row of 32), so each broadcast weight serves them all."""
    data = te.placeholder((1, 8, 22, 32), "float32", name="data")
    weight = te.placeholder((32, 1, 22, 1), "float32", name="weight")
    args = (data, weight, (1, 1), (0, 0, 0, 0), (1, 1), "NCHW", "OIHW", "float32")
    if target is ARM_TARGET:
        _, fallback = _arm_fallback(args)
    else:
        fallback = _fallback(_create(args, target))
    assert fallback["tile_h"].size[-1] == 1, fallback
    assert fallback["tile_w"].size[1] * fallback["tile_w"].size[2] == 32, fallback
    if target is not ARM_TARGET:
        _check(
            "NCHW",
            "OIHW",
            8,
            (22, 32),
            4,
            kernel=(22, 1),
            padding=(0, 0, 0, 0),
            target=_runnable(target),
        )


if __name__ == "__main__":
    tvm.testing.main()
