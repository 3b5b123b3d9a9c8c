"""Makes the patch part of TVM once ``tvm.relay`` is imported.

Upstream, the pass would sit in the C++ pass pipelines of ``relay.build`` and the VM compiler
(see docs/upstream.md); installed onto a released TVM, it runs at the Python entry points that
every build goes through, before TVM's own pipeline and inside the caller's ``PassContext``.
"""

# The patch's modules are imported when it activates, once tvm.relay is complete.
# pylint: disable=import-outside-toplevel

import functools

import tvm
from tvm import relay
from tvm.relay import build_module
from tvm.relay.backend import interpreter, vm

from tvm_canonicalize_depthwise import enabled, llvm_compat

_MARK = "_canonicalize_depthwise_wrapped"
_LEGALIZE_LEVEL = 11  # in place of TVM's own registrations (level 10), which it then calls
# The legalize attribute each op's stock registration lives under: qnn.conv2d is legalized by
# qnn.transform.Legalize (FTVMQnnLegalize), before it is lowered to nn ops.
_LEGALIZED_OPS = (("nn.conv2d", "FTVMLegalize"), ("qnn.conv2d", "FTVMQnnLegalize"))
_STOCK = {}  # (op name, attribute): TVM's own registration, kept at first activation


def canonicalize_for_build(mod):
    """``canonicalize_prelu.canonicalize_for_build``, where the patch is on."""
    from tvm.relay.transform import canonicalize_prelu

    return canonicalize_prelu.canonicalize_for_build(mod) if enabled() else mod


def _prelu_gate():
    """Whether PReLU is rewritten now: the switch, and the PassContext's rule for the pass."""
    from tvm.relay.transform import canonicalize_prelu

    return enabled() and canonicalize_prelu.pass_enabled()


def _frontend_prelu_gate():
    """At import there is no optimization level: the switch, and not ``disabled_pass``."""
    from tvm.relay.transform import canonicalize_prelu

    ctx = tvm.transform.PassContext.current()
    return enabled() and canonicalize_prelu.PASS_NAME not in ctx.disabled_pass


def _per_channel_tflite_prelu(convert_prelu):
    """The TFLite converter's PReLU, emitted per-channel where its alpha allows, so that
    ``ConvertLayout`` (run on the imported module, before any build) can move it."""
    if getattr(convert_prelu, _MARK, False):
        return convert_prelu

    @functools.wraps(convert_prelu)
    def wrapper(self, op):
        from tvm.relay.frontend.common import infer_type
        from tvm.relay.transform.canonicalize_prelu import per_channel_prelu

        out = convert_prelu(self, op)
        if not _frontend_prelu_gate():
            return out
        new = per_channel_prelu(infer_type(out), channel_axis=-1, source=out)
        return out if new is None else new

    setattr(wrapper, _MARK, True)
    return wrapper


def _stock_attr(op, attr):
    """TVM's own registration of ``attr`` for ``op`` (None if it has none), kept once."""
    if (op.name, attr) not in _STOCK:
        _STOCK[(op.name, attr)] = op.get_attr(attr)
    return _STOCK[(op.name, attr)]


def _register_layout_following():
    """The layout functions of ``follow_layout.FOLLOWERS`` over TVM's, where the patch is on;
    ``nn.prelu`` legalized to broadcast arithmetic so that packed layouts pass through it."""
    from tvm.relay.op.nn import follow_layout

    def gated(follow):
        def infer(*args):
            return follow(*args) if enabled() else None

        return infer

    for name, follow in follow_layout.FOLLOWERS.items():
        op = tvm.ir.Op.get(name)
        infer = follow_layout.layout_function(_stock_attr(op, "FInferCorrectLayout"), gated(follow))
        op.reset_attr("FInferCorrectLayout")
        op.set_attr("FInferCorrectLayout", infer, _LEGALIZE_LEVEL)

    prelu = tvm.ir.Op.get("nn.prelu")
    stock_legalize = _stock_attr(prelu, "FTVMLegalize")

    def legalize(attrs, inputs, types):
        if _prelu_gate():
            return follow_layout.legalize_prelu(attrs, inputs, types)
        return stock_legalize(attrs, inputs, types) if stock_legalize is not None else None

    prelu.reset_attr("FTVMLegalize")
    prelu.set_attr("FTVMLegalize", legalize, _LEGALIZE_LEVEL)


def _dispatching(stock_strategy):
    """``stock_strategy`` with canonical depthwise convolutions sent to the depthwise strategy
    first, where the patch is on (upstream: a branch at the top of the target's strategy)."""
    from tvm.relay.op.strategy.depthwise_canonical import (
        depthwise_conv2d_canonical_strategy,
        is_depthwise_call,
    )

    def conv2d_strategy_with_depthwise(attrs, inputs, out_type, target):
        if enabled() and is_depthwise_call(attrs, inputs):
            return depthwise_conv2d_canonical_strategy(attrs, inputs, out_type, target)
        return stock_strategy(attrs, inputs, out_type, target)

    conv2d_strategy_with_depthwise.__doc__ = f"Depthwise dispatch, else {stock_strategy.__name__}."
    return conv2d_strategy_with_depthwise


def _register_dispatch():
    """The depthwise strategy in front of the stock conv2d strategies of x86 and ARM (and the
    default), and of x86's ``nn.contrib_depthwise_conv2d_NCHWc`` (what x86 alter-layout packs
    depthwise convolutions into); x86's alter-layout rule in place of the stock one. With the
    switch off, TVM's own serve every call, as if the patch were absent."""
    from tvm.relay.op.strategy import arm_cpu, x86
    from tvm.relay.op.strategy.generic import conv2d_strategy, depthwise_conv2d_NCHWc_strategy
    from tvm.topi.nn import conv2d_alter_layout
    from tvm.topi.x86 import conv2d_alter_op, depthwise_conv2d_canonical_alter_op

    for key, stock in (
        ("cpu", x86.conv2d_strategy_cpu),
        ("arm_cpu", arm_cpu.conv2d_strategy_arm_cpu),
    ):
        conv2d_strategy.register(key, _dispatching(stock), override=True)
    depthwise_conv2d_NCHWc_strategy.register(
        "cpu", _dispatching(x86.depthwise_conv2d_NCHWc_strategy_cpu), override=True
    )
    default = _STOCK.setdefault(("conv2d_strategy", "default"), conv2d_strategy.fdefault)
    conv2d_strategy.generic_func_node.set_default(_dispatching(default), allow_override=True)

    def alter(attrs, inputs, tinfos, out_type):
        rule = (
            depthwise_conv2d_canonical_alter_op.alter_conv2d_layout
            if enabled()
            else conv2d_alter_op._alter_conv2d_layout
        )
        return rule(attrs, inputs, tinfos, out_type)

    conv2d_alter_layout.register("cpu", alter, override=True)


def _register_layout_transform():
    """The packed-layout schedule of ``layout_transform`` on CPUs, where the patch is on (TVM
    0.19 registers only a GPU one; the others get the generic injective schedule)."""
    from tvm.relay.op.strategy.generic import layout_transform_strategy
    from tvm.relay.op.strategy.layout_transform_cpu import layout_transform_strategy_cpu

    generic = _STOCK.setdefault(
        ("layout_transform_strategy", "default"), layout_transform_strategy.fdefault
    )

    def strategy(attrs, inputs, out_type, target):
        chosen = layout_transform_strategy_cpu if enabled() else generic
        return chosen(attrs, inputs, out_type, target)

    layout_transform_strategy.register("cpu", strategy, override=True)


def _register_conv3d_legalize():
    """``nn.conv3d``'s legalize (TVM 0.19 registers none): the depthwise one where the patch is
    on."""
    from tvm.topi.nn.depthwise_conv3d_legalize import legalize_depthwise_conv3d

    def legalize(attrs, inputs, types):
        return legalize_depthwise_conv3d(attrs, inputs, types) if enabled() else None

    op = tvm.ir.Op.get("nn.conv3d")
    op.reset_attr("FTVMLegalize")
    op.set_attr("FTVMLegalize", legalize, _LEGALIZE_LEVEL)


def _canonicalizing_legalize(op, stock):
    """An op's legalize function that first puts a multiplier-form call in the canonical form.

    Gated like the pass: by the switch, and by the current PassContext's ``opt_level``,
    ``required_pass`` and ``disabled_pass`` for ``CanonicalizeDepthwise``. The stock legalize
    function then sees the canonical call, as it would after the pass.
    """
    from tvm.relay.transform import canonicalize_depthwise

    def legalize(attrs, inputs, types):
        if enabled() and canonicalize_depthwise.pass_enabled():
            rewritten = canonicalize_depthwise.legalize_multiplier_form(op, attrs, inputs, types)
            if rewritten is not None:
                call, new_types = rewritten
                legal = stock(call.attrs, call.args, new_types) if stock is not None else None
                return call if legal is None else legal
        return stock(attrs, inputs, types) if stock is not None else None

    return legalize


def _register_legalize():
    for name, attr in _LEGALIZED_OPS:
        op = tvm.ir.Op.get(name)
        stock = _stock_attr(op, attr)
        # reset first: a second activation replaces its own registration
        op.reset_attr(attr)
        op.set_attr(attr, _canonicalizing_legalize(op, stock), _LEGALIZE_LEVEL)


def _canonicalizing(method):
    """Wrap ``method(self, mod, ...)`` so that ``mod`` is canonicalized first."""
    if getattr(method, _MARK, False):
        return method

    @functools.wraps(method)
    def wrapper(self, mod, *args, **kwargs):
        return method(self, canonicalize_for_build(mod), *args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper


def activate():
    """Attach the pass, register dispatch, alter-layout and conv3d legalize, hook the builders.

    Runs once per process, when ``tvm.relay`` has been imported (see :mod:`.bootstrap`).
    """
    from tvm.relay.frontend import tflite as tflite_frontend
    from tvm.relay.transform import canonicalize_depthwise, canonicalize_prelu

    relay.transform.CanonicalizeDepthwise = canonicalize_depthwise.CanonicalizeDepthwise
    relay.transform.CanonicalizePReLU = canonicalize_prelu.CanonicalizePReLU
    # The switch is read at every dispatch: with it off, TVM's own strategies and alter-layout
    # rule serve every call, as if the patch were absent.
    _register_dispatch()
    _register_layout_transform()
    for owner, name in (
        (build_module.BuildModule, "build"),
        (build_module.BuildModule, "optimize"),
        (vm.VMCompiler, "lower"),
        (vm.VMCompiler, "optimize"),
        (interpreter.Interpreter, "__init__"),
    ):
        setattr(owner, name, _canonicalizing(getattr(owner, name)))
    # Every pipeline, the C++ ones included (MetaSchedule's task extraction), runs Legalize:
    # there the pass's rewrite catches what the entry points above do not see.
    _register_legalize()
    _register_layout_following()
    converter = tflite_frontend.OperatorConverter
    converter.convert_prelu = _per_channel_tflite_prelu(converter.convert_prelu)
    llvm_compat.register_llvm_build(gate=enabled)
    # Last, so that the pass and dispatch stay whatever happens here; gated like the others.
    _register_conv3d_legalize()
