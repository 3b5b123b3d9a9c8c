"""x86 alter-layout for canonical depthwise conv2d: NCHW to NCHW{b}c where packing wins."""
import tvm
from tvm import autotvm, relay
from tvm.target.x86 import get_simd_32bit_lanes

from tvm_canonicalize_depthwise import enabled
from ..nn import conv2d_alter_layout
from ..nn.depthwise_form import CANONICAL, conv2d_form
from ..utils import get_const_tuple
from . import conv2d_alter_op as _stock
from .depthwise_conv2d_canonical import prefers_packed_channels


def _tuned_choice(attrs, tinfos, out_type):
    """``pack_channels`` of a tuned config for this convolution, or None when untuned."""
    target = tvm.target.Target.current(allow_none=False)
    _, outs = relay.backend.te_compiler.select_implementation(
        relay.op.get("nn.conv2d"), attrs, tinfos, out_type, target
    )
    workload = autotvm.task.get_workload(outs)
    if workload is None or workload[0] != "depthwise_conv2d_canonical.x86":
        return None
    cfg = autotvm.task.DispatchContext.current.query(target, workload)
    if cfg.is_fallback:
        return None
    try:
        return bool(cfg["pack_channels"].val)
    except KeyError:  # a config from before the knob existed
        return None


def packed_depthwise_layouts(attrs, tinfos, out_type, lanes):
    """The (data, kernel) layouts to pack a canonical depthwise NCHW conv2d into, or None.

    A tuned config decides through its ``pack_channels`` knob; untuned, the workload does
    (:func:`prefers_packed_channels`). Any multiplier packs as depthwise.
    """
    data_shape, kernel_shape = (get_const_tuple(t.shape) for t in tinfos)
    if attrs.data_layout != "NCHW":
        return None
    form = conv2d_form(data_shape, "NCHW", kernel_shape, attrs.kernel_layout, attrs.groups)
    if form.kind != CANONICAL or form.in_channels % lanes:
        return None
    pack = _tuned_choice(attrs, tinfos, out_type)
    if pack is None:
        pack = prefers_packed_channels(
            form.in_channels,
            form.multiplier,
            get_const_tuple(attrs.strides),
            kernel_shape[tvm.tir.layout(attrs.kernel_layout).index_of("W")],
            get_const_tuple(out_type.shape)[3],
            lanes,
        )
    return (f"NCHW{lanes}c", f"OIHW1i{lanes}o") if pack else None


@conv2d_alter_layout.register("cpu", override=True)
def _alter_conv2d_layout(attrs, inputs, tinfos, out_type):
    """Pack canonical depthwise convolutions as depthwise (any multiplier); else stock x86."""
    if enabled():
        layouts = packed_depthwise_layouts(attrs, tinfos, out_type, get_simd_32bit_lanes())
        if layouts is not None:
            new_attrs = {key: attrs[key] for key in attrs.keys()}
            new_attrs["data_layout"], new_attrs["kernel_layout"] = layouts
            new_attrs["out_layout"] = layouts[0]
            return relay.nn.contrib_depthwise_conv2d_nchwc(*inputs, **new_attrs)
    return _stock._alter_conv2d_layout(attrs, inputs, tinfos, out_type)
