"""x86 alter-layout for canonical depthwise conv2d: NCHW to NCHW{b}c, with its neighbours' block."""
from tvm import relay
from tvm.target.x86 import get_simd_32bit_lanes

from ..nn import conv2d_alter_layout
from ..nn.depthwise_form import CANONICAL, conv2d_form
from ..utils import get_const_tuple
from . import conv2d_alter_op as _stock


def channel_block(channels, lanes):
    """The channel block of a packed layer of ``channels``: their largest divisor up to ``lanes``.

    It is the block x86's untuned rules give every packed conv2d (``tile_ic``/``tile_oc`` of
    conv2d_NCHWc and depthwise_conv2d_NCHWc), so a depthwise convolution packed with it meets
    its neighbours in the layout they produce and read.
    """
    for block in range(min(channels, lanes), 0, -1):
        if channels % block == 0:
            return block
    return 1


def packed_depthwise_layouts(attrs, tinfos, lanes):
    """The (data, kernel) layouts to pack a canonical depthwise NCHW conv2d into, or None.

    A layer's layout follows its network's, not its own speed alone: where x86 packs a network
    into NCHW{b}c, every layout change between two convolutions costs a ``layout_transform``
    of the whole tensor, often as long as a depthwise convolution itself. So the rule is stock
    TVM's, which is consistent along a chain: ``m = 1`` packs with :func:`channel_block` (as
    stock packs depthwise_conv2d_NCHWc); ``m > 1`` stays NCHW (stock packs no such convolution)
    and so costs no transform that stock TVM does not have either. The kernel may be in any
    layout: AlterOpLayout transforms it (once, at build time, for a constant).
    """
    data_shape, kernel_shape = (get_const_tuple(t.shape) for t in tinfos)
    if attrs.data_layout != "NCHW":
        return None
    form = conv2d_form(data_shape, "NCHW", kernel_shape, attrs.kernel_layout, attrs.groups)
    if form.kind != CANONICAL or form.multiplier != 1:
        return None
    block = channel_block(form.in_channels, lanes)
    return f"NCHW{block}c", f"OIHW1i{block}o"


def alter_conv2d_layout(attrs, inputs, tinfos, out_type):
    """Pack canonical depthwise convolutions as stock TVM packs depthwise ones; else stock x86."""
    layouts = packed_depthwise_layouts(attrs, tinfos, get_simd_32bit_lanes())
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
