"""Differential fuzzing of depthwise conv2d: random convolutions, patch on against NumPy and stock.

Shared by ``test_canonicalize_depthwise_fuzz.py`` (a bounded, reproducible run in CI) and
``tests/scripts/fuzz_depthwise.py`` (the extended campaign). One example is a
:class:`Case`, drawn by :func:`cases`; :func:`check_case` runs every check on it.
"""

import functools
import math
import os
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

import tvm
from tvm import relay
from tvm.contrib import graph_executor
from tvm.relay.transform.canonicalize_depthwise import CanonicalizeDepthwise, conv2d_call_form
from tvm.topi.nn.depthwise_form import MULTIPLIER
from tvm.relay.backend import te_compiler
from tvm.topi.testing import depthwise_conv2d_canonical_python as ref
from tvm_canonicalize_depthwise import ENV_VAR
from host_isa import PORTABLE_TARGETS, runs_on_host

# TVM 0.19 reads the library's build flags anew for every dimension of every lowered tensor
# (te_compiler.get_shape): a sixth of a small build's time. They never change in a process.
te_compiler.libinfo = functools.lru_cache(maxsize=None)(te_compiler.libinfo)

# Every data layout and unpacked kernel layout pair Relay type-checks is fair game: where stock
# TVM cannot build one (most kernel layouts with NCHW data, HWCN data, ...), the patch may
# build it or not, but must compute it right when it does.
DATA_LAYOUTS = ("NCHW", "NHWC", "HWCN", "NHCW", "CNHW")
KERNEL_LAYOUTS = ("OIHW", "HWOI", "HWIO", "OHWI", "IOHW", "IHWO", "OIWH", "HOWI", "WHIO")
# the pairs the frontends produce, drawn more often
COMMON_PAIRS = (("NCHW", "OIHW"), ("NHWC", "HWOI"), ("NHWC", "HWIO"), ("NCHW", "OHWI"))
DTYPES = ("float32", "float16", "int8")
# int8 through qnn.conv2d (TFLite's quantized convs): nonzero input zero point, per-channel
# kernel scales, int32 out
QNN = "qnn-int8"
EPILOGUES = ("none", "bias", "relu", "add", "bias_relu")
# constant: a relay.const; param: a variable bound through relay.build's params; input: a
# variable fed at run time (the pass then reshapes it in the graph)
WEIGHT_KINDS = ("constant", "param", "input")

# The baseline CPU of each vector class (see host_isa): Zen -mcpu builds would not run on
# Intel hosts, these run on every AVX2 (resp. AVX-512) machine, so the numerics are checked
# wherever the class matches.
AVX2_TARGET = PORTABLE_TARGETS["avx2"]
AVX512_TARGET = PORTABLE_TARGETS["avx512"]
ARM_TARGET = tvm.target.Target(
    "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon -num-cores=2"
)
TARGETS = {"avx2": AVX2_TARGET, "avx512": AVX512_TARGET, "aarch64": ARM_TARGET}
# CI's x86 share: its aarch64 builds are made, and run, by the fuzzing on the emulated board
# (test_canonicalize_depthwise_arm.py); the campaign builds all three
X86_TARGETS = {"avx2": AVX2_TARGET, "avx512": AVX512_TARGET}
# a cap on output elements times taps, to keep one example's build, run and NumPy reference
# to about a second
_WORK = 1 << 21


# what this host can run, of the targets every example is compiled for
RUNNABLE = tuple(name for name, target in TARGETS.items() if runs_on_host(target))


@dataclass(frozen=True)
class Case:
    """One depthwise conv2d with its surroundings, in OIHW / NCHW terms."""

    batch: int
    channels: int
    multiplier: int
    height: int
    width: int
    kernel: tuple
    strides: tuple
    dilation: tuple
    padding: tuple  # top, left, bottom, right
    data_layout: str
    kernel_layout: str
    dtype: str
    form: str  # "multiplier" or "canonical"
    weight_kind: str
    epilogue: str
    sets_attrs: bool  # canonical form only: channels and kernel_size given

    @property
    def element_dtype(self):
        """The dtype of the data and the weight."""
        return "int8" if self.dtype == QNN else self.dtype

    @property
    def out_dtype(self):
        """The dtype of the convolution's output: int32 sums for int8."""
        return "int32" if self.element_dtype == "int8" else self.dtype

    @property
    def out_size(self):
        """(out_h, out_w)."""
        return tuple(
            (size + before + after - (k - 1) * d - 1) // s + 1
            for size, before, after, k, d, s in zip(
                (self.height, self.width),
                self.padding[:2],
                self.padding[2:],
                self.kernel,
                self.dilation,
                self.strides,
            )
        )


def _min_size(kernel, dilation, before, after):
    return max(1, (kernel - 1) * dilation + 1 - before - after)


@st.composite
def cases(draw, dtypes=DTYPES):
    """A random depthwise conv2d (see the issue's list: every knob Relay has) of one of
    ``dtypes``."""
    channels = draw(st.integers(1, 64))
    multiplier = draw(st.integers(1, 16))
    batch = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, 3)) for _ in range(4))
    sizes = []
    for axis in (0, 1):
        smallest = _min_size(kernel[axis], dilation[axis], padding[axis], padding[axis + 2])
        sizes.append(smallest)
    taps = kernel[0] * kernel[1]
    # the largest plane that keeps the work bounded, never below the smallest valid one
    side = math.isqrt(max(1, _WORK // (batch * channels * multiplier * taps)))
    height, width = (
        draw(st.one_of(st.just(smallest), st.integers(smallest, max(smallest, min(40, side)))))
        for smallest in sizes
    )
    if draw(st.booleans()):
        data_layout, kernel_layout = draw(st.sampled_from(COMMON_PAIRS))
    else:
        data_layout = draw(st.sampled_from(DATA_LAYOUTS))
        kernel_layout = draw(st.sampled_from(KERNEL_LAYOUTS))
    # With one channel, groups is 1 and Relay reads the weight as an ordinary convolution's:
    # there the multiplier form is not a depthwise convolution at all.
    form = draw(st.sampled_from(("multiplier", "canonical"))) if channels > 1 else "canonical"
    dtype = draw(st.sampled_from(dtypes))
    return Case(
        batch,
        channels,
        multiplier,
        height,
        width,
        kernel,
        strides,
        dilation,
        padding,
        data_layout,
        kernel_layout,
        dtype,
        form,
        draw(st.sampled_from(WEIGHT_KINDS)),
        draw(st.sampled_from(EPILOGUES)),
        # qnn.conv2d asks for both
        form == "multiplier" or dtype == QNN or draw(st.booleans()),
    )


def _values(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, shape).astype("int8")
    return rng.uniform(-1, 1, shape).astype(dtype)


def make_model(case, seed=0):
    """The Relay module of ``case``, its params, its run-time inputs and the NumPy result."""
    rng = np.random.default_rng(seed)
    c, m = case.channels, case.multiplier
    kh, kw = case.kernel
    dtype = case.element_dtype
    data = _values(rng, (case.batch, c, case.height, case.width), dtype)
    canonical = _values(rng, (c * m, 1, kh, kw), dtype)
    # the multiplier form holds the same numbers in the same order
    weight = canonical.reshape(c, m, kh, kw) if case.form == "multiplier" else canonical
    weight = ref.to_layout(weight, "OIHW", case.kernel_layout)
    # qnn pads with the input zero point: the sums are of (x - zero point) * w
    zero_point = int(rng.integers(-8, 8)) if case.dtype == QNN else 0
    expected = ref.depthwise_conv2d_nchw(
        data.astype("float64") - zero_point,
        canonical,
        case.strides,
        case.padding,
        case.dilation,
        out_dtype="float64",
    )
    x = relay.var("x", shape=ref.to_layout(data, "NCHW", case.data_layout).shape, dtype=dtype)
    inputs = {"x": ref.to_layout(data, "NCHW", case.data_layout)}
    params = {}
    if case.weight_kind == "constant":
        w = relay.const(weight)
    else:
        w = relay.var("w", shape=weight.shape, dtype=dtype)
        (params if case.weight_kind == "param" else inputs)["w"] = weight
    attrs = {"channels": c * m, "kernel_size": case.kernel} if case.sets_attrs else {}
    conv = dict(
        strides=case.strides,
        padding=case.padding,
        dilation=case.dilation,
        groups=c,
        data_layout=case.data_layout,
        kernel_layout=case.kernel_layout,
        out_dtype=case.out_dtype,
        **attrs,
    )
    if case.dtype == QNN:
        scales = rng.uniform(0.002, 0.02, c * m).astype("float32")
        y = relay.qnn.op.conv2d(
            x,
            w,
            relay.const(zero_point, "int32"),
            relay.const(0, "int32"),
            relay.const(0.05, "float32"),
            relay.const(scales),
            **conv,
        )
    else:
        y = relay.nn.conv2d(x, w, **conv)
    out_shape = (case.batch, c * m) + case.out_size
    if "bias" in case.epilogue:
        bias = _values(rng, (c * m,), dtype).astype(case.out_dtype)
        y = relay.nn.bias_add(y, relay.const(bias), axis=case.data_layout.index("C"))
        expected = expected + bias.astype("float64")[None, :, None, None]
    if case.epilogue == "add":
        other = _values(rng, out_shape, dtype).astype(case.out_dtype)
        y = relay.add(
            y,
            relay.var(
                "other",
                shape=ref.to_layout(other, "NCHW", case.data_layout).shape,
                dtype=case.out_dtype,
            ),
        )
        inputs["other"] = ref.to_layout(other, "NCHW", case.data_layout)
        expected = expected + other.astype("float64")
    if "relu" in case.epilogue:
        y = relay.nn.relu(y)
        expected = np.maximum(expected, 0)
    free = list(relay.analysis.free_vars(y))
    mod = tvm.IRModule.from_expr(relay.Function(free, y))
    return mod, params, inputs, ref.to_layout(expected, "NCHW", case.data_layout)


def check_pass(mod):
    """The pass's output type-checks, holds no multiplier form, and a second run keeps it."""
    mod = relay.transform.InferType()(mod)
    once = relay.transform.InferType()(CanonicalizeDepthwise()(mod))
    left = []

    def visit(node):
        if isinstance(node, relay.Call) and getattr(node.op, "name", None) == "nn.conv2d":
            if conv2d_call_form(node).kind == MULTIPLIER:
                left.append(node)

    relay.analysis.post_order_visit(once["main"], visit)
    assert not left, f"multiplier form left after the pass: {left[0].attrs}"
    twice = CanonicalizeDepthwise()(once)
    tvm.ir.assert_structural_equal(twice, once)
    return once


def build(mod, target, params, patch_on):
    """``relay.build`` at opt_level 3 with the patch on or off (the environment restored)."""
    previous = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = "1" if patch_on else "0"
    try:
        with tvm.transform.PassContext(opt_level=3):
            return relay.build(mod, target=target, params=params)
    finally:
        if previous is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous


def build_and_export(case, target, patch_on, library, cross_compiler, seed=0):
    """Build ``case`` for ``target`` (a string) and export it to ``library``, linked by
    ``cross_compiler``; returns None, or the last line of the build's error. Meant for a child
    process (``tests/python/relay/test_canonicalize_depthwise_arm.py``): some builds abort the
    process in LLVM, stock's among them."""
    from tvm.contrib import cc  # pylint: disable=import-outside-toplevel

    mod, params, _, _ = make_model(case, seed)
    try:
        lib = build(mod, tvm.target.Target(target), params, patch_on)
    except Exception as error:  # pylint: disable=broad-except
        return last_line(error)
    lib.export_library(str(library), fcompile=cc.cross_compiler(cross_compiler))
    return None


def tolerance(case):
    """(rtol, atol) against the float64 reference: exact for int8 (int32 sums)."""
    if case.element_dtype == "int8":
        return 0, 0
    taps = case.kernel[0] * case.kernel[1] + 2  # the epilogue adds up to two terms
    eps = 1e-3 if case.dtype == "float16" else 1e-6
    return 4 * eps, 4 * eps * taps


@dataclass
class Outcome:
    """What one example did on each target: ``built``, ``both_failed`` (stock cannot build
    it either; the error is kept) and which builds ran."""

    built: list
    both_failed: dict
    ran: list


def check_case(case, targets=None, seed=0):
    """Every check of the differential fuzzer on one ``case``; raises AssertionError on a bug.

    * the pass's output type-checks, holds no multiplier form and is a fixed point;
    * for each target: where the patch-on build fails, the patch-off (stock) build must fail
      too;
    * every patch-on build that this host can run matches NumPy.

    ``targets`` maps names to targets; default :data:`TARGETS`.
    """
    targets = TARGETS if targets is None else targets
    mod, params, inputs, expected = make_model(case, seed)
    check_pass(mod)
    outcome = Outcome([], {}, [])
    rtol, atol = tolerance(case)
    for name, target in targets.items():
        try:
            lib = build(mod, target, params, patch_on=True)
        except Exception as on_error:  # pylint: disable=broad-except
            try:
                build(mod, target, params, patch_on=False)
            except Exception as off_error:  # pylint: disable=broad-except
                outcome.both_failed[name] = last_line(off_error)
                continue
            raise AssertionError(
                f"{name}: stock TVM builds {case} but the patch fails: {last_line(on_error)}"
            ) from on_error
        outcome.built.append(name)
        if name not in RUNNABLE:
            continue
        module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
        module.set_input(**inputs)
        module.run()
        actual = module.get_output(0).numpy()
        assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
        np.testing.assert_allclose(
            actual.astype("float64"),
            expected,
            rtol=rtol,
            atol=atol,
            err_msg=f"{name}: {case}",
        )
        outcome.ran.append(name)
    return outcome


def last_line(error):
    """The last line of the error's message, else its type's name."""
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__
