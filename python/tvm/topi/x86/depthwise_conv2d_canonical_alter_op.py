"""x86 alter-layout for canonical depthwise conv2d: NCHW to NCHW{b}c where packing wins."""
from tvm import relay
from tvm.target.x86 import get_simd_32bit_lanes

from tvm_canonicalize_depthwise import enabled
from ..nn import conv2d_alter_layout
from ..nn.depthwise_form import CANONICAL, conv2d_form
from ..utils import get_const_tuple
from . import conv2d_alter_op as _stock


def packed_depthwise_layouts(attrs, data_shape, kernel_shape, out_shape, lanes):
    """The (data, kernel) layouts to pack a canonical depthwise NCHW conv2d into, or None.

    The NCHW schedule vectorizes along output width; it loses to vectorizing along a packed
    channel block when each vector row is short (narrow outputs) or strided (stride > 1), and
    packing then pays for its layout transforms. Channels must fill whole blocks.
    """
    if attrs.data_layout != "NCHW":
        return None
    form = conv2d_form(data_shape, "NCHW", kernel_shape, attrs.kernel_layout, attrs.groups)
    if form.kind != CANONICAL or form.in_channels % lanes:
        return None
    strided = any(stride > 1 for stride in get_const_tuple(attrs.strides))
    narrow = out_shape[3] < 2 * lanes
    if not (strided or narrow):
        return None
    return f"NCHW{lanes}c", f"OIHW1i{lanes}o"


@conv2d_alter_layout.register("cpu", override=True)
def _alter_conv2d_layout(attrs, inputs, tinfos, out_type):
    """Pack canonical depthwise convolutions as depthwise (any multiplier); else stock x86."""
    if enabled():
        layouts = packed_depthwise_layouts(
            attrs,
            get_const_tuple(tinfos[0].shape),
            get_const_tuple(tinfos[1].shape),
            get_const_tuple(out_type.shape),
            get_simd_32bit_lanes(),
        )
        if layouts is not None:
            new_attrs = {key: attrs[key] for key in attrs.keys()}
            new_attrs["data_layout"], new_attrs["kernel_layout"] = layouts
            new_attrs["out_layout"] = layouts[0]
            return relay.nn.contrib_depthwise_conv2d_nchwc(*inputs, **new_attrs)
    return _stock._alter_conv2d_layout(attrs, inputs, tinfos, out_type)
