"""What the command compiles: the model in Relay, what it holds, the paths to build it by and
the target to build them for."""

# TVM is imported where needed: the command checks its arguments and the model first.
# pylint: disable=import-outside-toplevel
import dataclasses
from typing import Optional

from tvm_canonicalize_depthwise import models
from tvm_canonicalize_depthwise.llvm_compat import VNNI_OFF, llvm_major, without_broken_vnni
from tvm_canonicalize_depthwise.models import ModelError, one_line

CONV_OPS = ("nn.conv2d", "qnn.conv2d")


@dataclasses.dataclass(frozen=True)
class Path:
    """One way through TVM: the module as imported, or converted to NCHW; ``error`` where the
    module could not be made."""

    id: str
    label: str
    mod: object = None
    error: Optional[str] = None


def import_model(model, shapes):
    """The model in Relay as the command compiles it: imported by TVM's frontend, its weights
    bound as constants, typed. Raises :class:`ModelError` where TVM cannot import or type it."""
    from tvm import relay

    mod, params = models.to_relay(model, shapes)
    try:
        if params:
            mod["main"] = relay.build_module.bind_params_by_name(mod["main"], params)
        return relay.transform.InferType()(mod)
    except Exception as err:  # pylint: disable=broad-except
        raise ModelError(
            f"{model.path}: TVM cannot type the imported model: " f"{one_line(err)}"
        ) from None


def to_nchw(mod):
    """``mod`` converted to NCHW convolutions by tvmc's ``--desired-layout NCHW``."""
    import tvm
    from tvm.driver.tvmc.transform import convert_graph_layout

    with tvm.transform.PassContext(opt_level=3):
        return convert_graph_layout(mod, "NCHW")


def conv_calls(func):
    """The ``nn.conv2d``/``qnn.conv2d`` calls of a typed function, in post order."""
    import tvm
    from tvm import relay

    calls = []

    def visit(node):
        if (
            isinstance(node, relay.Call)
            and isinstance(node.op, tvm.ir.Op)
            and node.op.name in CONV_OPS
        ):
            calls.append(node)

    relay.analysis.post_order_visit(func, visit)
    return calls


def plan_paths(mod, progress):
    """The paths to build: as imported, and converted to NCHW where the model has NHWC
    convolutions."""
    layouts = sorted({str(call.attrs.data_layout) for call in conv_calls(mod["main"])})
    paths = [Path("as_imported", f"{'/'.join(layouts) or 'no conv'} as imported", mod)]
    if "NHWC" in layouts:
        progress("converting the layout to NCHW (ConvertLayout)...")
        try:
            paths.append(Path("nchw", "converted to NCHW", to_nchw(mod)))
        except Exception as err:  # pylint: disable=broad-except
            paths.append(
                Path("nchw", "converted to NCHW", error=f"ConvertLayout failed: {one_line(err)}")
            )
    return paths


def host_target():
    """The LLVM target of this machine's CPU."""
    import tvm

    return f"llvm -mcpu={tvm.target.codegen.llvm_get_system_cpu()}"


def build_target(mod, target):
    """``(target, note)``: the target the model is built for, and why it is not ``target``
    (None where it is)."""
    import tvm

    if _quantized(mod):
        safe = without_broken_vnni(str(target))
        if safe != str(target):
            return tvm.target.Target(safe), (
                f"VNNI off ({VNNI_OFF}): TVM 0.19's int8 VNNI code does not compile with LLVM "
                f"{llvm_major()}"
            )
    return target, None


def _quantized(mod):
    """Whether the module holds a QNN operator (a quantized model)."""
    from tvm import relay

    found = []

    def visit(node):
        if isinstance(node, relay.Call) and getattr(node.op, "name", "").startswith("qnn."):
            found.append(node.op.name)

    relay.analysis.post_order_visit(mod["main"], visit)
    return bool(found)


def _shape(ty):
    return [int(e) if hasattr(e, "value") else str(e) for e in ty.shape]


def _source_name(call):
    """The frontend's name for a call (its span), or None. TFLite names an op by its output
    tensor, whose name lists the TensorFlow ops fused into it, separated by ';'."""
    span = call.span
    if span is None or span.source_name is None:
        return None
    name = str(span.source_name.name)
    return name or None


def _short_name(name):
    if name is None:
        return "(unnamed)"
    parts = name.split(";")
    for word in ("depthwise", "conv"):
        for part in parts:
            if word in part.lower():
                return part
    return parts[0]


def describe_depthwise(mod):
    """Every depthwise conv of ``mod`` (params bound) and what the pass makes of it.

    Returns ``(convs, depthwise, rewrites)``: the number of convolutions, one dict per
    depthwise convolution and the pass's own records of its rewrites. The pass is run here on
    the module as imported; the conv calls before and after it are paired in post order (the
    rewrite swaps weights, never adds or drops a conv).
    """
    from tvm import relay
    from tvm.relay.transform.canonicalize_depthwise import (
        CanonicalizeDepthwise,
        conv_call_form,
        recording_rewrites,
    )

    typed = relay.transform.InferType()(mod)
    before = conv_calls(typed["main"])
    with recording_rewrites() as rewrites:
        after_mod = CanonicalizeDepthwise()(typed)
    after = conv_calls(after_mod["main"])
    paired = len(after) == len(before)
    found = []
    for index, call in enumerate(before):
        form = conv_call_form(call)
        if not form.is_depthwise:
            continue
        weight = _shape(call.args[1].checked_type)
        new_weight = _shape(after[index].args[1].checked_type) if paired else None
        if form.kind == "canonical":
            rewrite = "none needed"
        elif new_weight is not None and new_weight != weight:
            rewrite = f"weight {weight} -> {new_weight}"
        else:
            rewrite = "left as is"
        attrs = call.attrs
        found.append(
            {
                "name": _source_name(call),
                "short_name": _short_name(_source_name(call)),
                "op": call.op.name,
                "layout": f"{attrs.data_layout}/{attrs.kernel_layout}",
                "input_shape": _shape(call.args[0].checked_type),
                "weight_shape": weight,
                "output_shape": _shape(call.checked_type),
                "strides": [int(s) for s in attrs.strides],
                "in_channels": form.in_channels,
                "multiplier": form.multiplier,
                "form": form.kind,
                "why": form.reason,
                "rewritten": rewrite.startswith("weight"),
                "rewrite": rewrite,
                "canonical_weight_shape": new_weight,
            }
        )
    return len(before), found, [dataclasses.asdict(r) for r in rewrites]
