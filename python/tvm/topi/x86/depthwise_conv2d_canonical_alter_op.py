"""x86 alter-layout for canonical depthwise conv2d: NCHW to NCHW{b}c where packing wins."""
import numpy as np

import tvm
from tvm import autotvm, relay
from tvm.target.x86 import get_simd_32bit_lanes

from ..nn import conv2d_alter_layout
from ..nn.depthwise_form import CANONICAL, conv2d_form
from ..utils import get_const_tuple
from . import conv2d_alter_op as _stock
from .depthwise_conv2d_canonical import prefers_packed_channels


def _packed_workload(workload, lanes):
    """The workload of the same convolution packed into NCHW{lanes}c / OIHW1i{lanes}o."""
    name, (_, data_shape, data_dtype), (_, kernel_shape, kernel_dtype), *rest = workload
    strides, padding, dilation, _, kernel_layout, out_dtype = rest
    batch, channels, height, width = data_shape
    out_channels, _, kernel_h, kernel_w = get_const_tuple(
        tvm.tir.bijective_layout(kernel_layout, "OIHW").forward_shape(kernel_shape)
    )
    return (
        name,
        ("TENSOR", (batch, channels // lanes, height, width, lanes), data_dtype),
        ("TENSOR", (out_channels // lanes, 1, kernel_h, kernel_w, 1, lanes), kernel_dtype),
        strides,
        padding,
        dilation,
        f"NCHW{lanes}c",
        f"OIHW1i{lanes}o",
        out_dtype,
    )


def _tuned_choice(attrs, tinfos, out_type, lanes):
    """Whether the tuning log measured the packed convolution faster than the NCHW one.

    None unless a log (``autotvm.apply_history_best``) holds both workloads. The layout
    transforms are not in either measurement; a log with only one of them says nothing about
    the other, so the workload rule decides.
    """
    target = tvm.target.Target.current(allow_none=False)
    context = autotvm.task.DispatchContext.current
    best = getattr(context, "best_by_targetkey", None)
    if not best:
        return None
    _, outs = relay.backend.te_compiler.select_implementation(
        relay.op.get("nn.conv2d"), attrs, tinfos, out_type, target
    )
    workload = autotvm.task.get_workload(outs)
    if workload is None or workload[0] != "depthwise_conv2d_canonical.x86":
        return None
    costs = []
    for candidate in (workload, _packed_workload(workload, lanes)):
        record = next(
            (best[(key, candidate)] for key in target.keys if (key, candidate) in best), None
        )
        if record is None:
            return None
        costs.append(np.mean([float(c) for c in record[1].costs]))
    return costs[1] < costs[0]


def packed_depthwise_layouts(attrs, tinfos, out_type, lanes):
    """The (data, kernel) layouts to pack a canonical depthwise NCHW conv2d into, or None.

    A tuning log holding both the NCHW and the packed convolution decides by their measured
    times; otherwise the workload does (:func:`prefers_packed_channels`). Any multiplier
    packs as depthwise.
    """
    data_shape, kernel_shape = (get_const_tuple(t.shape) for t in tinfos)
    if attrs.data_layout != "NCHW":
        return None
    form = conv2d_form(data_shape, "NCHW", kernel_shape, attrs.kernel_layout, attrs.groups)
    if form.kind != CANONICAL or form.in_channels % lanes:
        return None
    pack = _tuned_choice(attrs, tinfos, out_type, lanes)
    if pack is None:
        pack = prefers_packed_channels(
            form.in_channels,
            form.multiplier,
            kernel_shape[tvm.tir.layout(attrs.kernel_layout).index_of("W")],
            get_const_tuple(out_type.shape)[3],
            lanes,
        )
    return (f"NCHW{lanes}c", f"OIHW1i{lanes}o") if pack else None


def alter_conv2d_layout(attrs, inputs, tinfos, out_type):
    """Pack canonical depthwise convolutions as depthwise (any multiplier); else stock x86."""
    layouts = packed_depthwise_layouts(attrs, tinfos, out_type, get_simd_32bit_lanes())
    if layouts is not None:
        new_attrs = {key: attrs[key] for key in attrs.keys()}
        new_attrs["data_layout"], new_attrs["kernel_layout"] = layouts
        new_attrs["out_layout"] = layouts[0]
        return relay.nn.contrib_depthwise_conv2d_nchwc(*inputs, **new_attrs)
    return _stock._alter_conv2d_layout(attrs, inputs, tinfos, out_type)


def register(gate=None):
    """Register :func:`alter_conv2d_layout` for x86 in place of the stock rule.

    Parameters
    ----------
    gate : callable, optional
        Asked at every call; where it returns False the stock x86 rule serves the call. None
        applies the depthwise rule always.
    """

    def _alter(attrs, inputs, tinfos, out_type):
        rule = alter_conv2d_layout if gate is None or gate() else _stock._alter_conv2d_layout
        return rule(attrs, inputs, tinfos, out_type)

    conv2d_alter_layout.register("cpu", _alter, override=True)
