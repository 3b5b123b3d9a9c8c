"""Makes the patch part of TVM once ``tvm.relay`` is imported.

Upstream, the pass would sit in the C++ pass pipelines of ``relay.build`` and the VM compiler
(see docs/upstream.md); installed onto a released TVM, it runs at the Python entry points that
every build goes through, before TVM's own pipeline and inside the caller's ``PassContext``.
"""
import functools

import tvm
from tvm import relay
from tvm.relay import build_module
from tvm.relay.backend import interpreter, vm

from tvm_canonicalize_depthwise import enabled

_MARK = "_canonicalize_depthwise_wrapped"
_LEGALIZE_LEVEL = 11  # in place of TVM's own registrations (level 10), which it then calls
# The legalize attribute each op's stock registration lives under: qnn.conv2d is legalized by
# qnn.transform.Legalize (FTVMQnnLegalize), before it is lowered to nn ops.
_LEGALIZED_OPS = (("nn.conv2d", "FTVMLegalize"), ("qnn.conv2d", "FTVMQnnLegalize"))
_STOCK_LEGALIZE = {}


def canonicalize_for_build(mod):
    """Run ``CanonicalizeDepthwise`` on ``mod`` if the patch and the current PassContext allow.

    ``Sequential`` applies the context's ``opt_level``, ``required_pass`` and
    ``disabled_pass`` to the pass exactly as to TVM's own passes, and instruments see it run.
    """
    from tvm.relay.transform.canonicalize_depthwise import CanonicalizeDepthwise

    if not enabled() or not isinstance(mod, tvm.IRModule):
        return mod
    return tvm.transform.Sequential([CanonicalizeDepthwise()], name="CanonicalizeDepthwiseAtBuild")(
        mod
    )


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
        if name not in _STOCK_LEGALIZE:
            _STOCK_LEGALIZE[name] = op.get_attr(attr)
        # reset first: a second activation replaces its own registration
        op.reset_attr(attr)
        op.set_attr(attr, _canonicalizing_legalize(op, _STOCK_LEGALIZE[name]), _LEGALIZE_LEVEL)


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
    from tvm.relay.op.strategy import depthwise_canonical
    from tvm.relay.transform import canonicalize_depthwise
    from tvm.topi.nn import depthwise_conv3d_legalize
    from tvm.topi.x86 import depthwise_conv2d_canonical_alter_op

    relay.transform.CanonicalizeDepthwise = canonicalize_depthwise.CanonicalizeDepthwise
    # The switch is read at every dispatch: with it off, TVM's own strategies and alter-layout
    # rule serve every call, as if the patch were absent.
    depthwise_canonical.register(gate=enabled)
    depthwise_conv2d_canonical_alter_op.register(gate=enabled)
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
    # Last, so that the pass and dispatch stay whatever happens here; gated like the others.
    depthwise_conv3d_legalize.register(gate=enabled)
