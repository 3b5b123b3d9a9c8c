"""Which form a 2-D convolution's weight is in: the one place that answers "is this depthwise"."""
from dataclasses import dataclass

import tvm
from tvm import tir

MULTIPLIER = "multiplier"
"""Depthwise, weight in the channel-multiplier form: OIHW ``[C, m, kH, kW]``, ``m > 1``."""
CANONICAL = "canonical"
"""Depthwise, weight in the canonical grouped form: OIHW ``[C*m, 1, kH, kW]``, any ``m``."""
OTHER = "other"
"""Not depthwise (ordinary or grouped convolution), or not decidable from static shapes."""


@dataclass(frozen=True)
class Conv2DForm:
    """What a 2-D convolution is, in OIHW terms.

    Attributes
    ----------
    kind : str
        :data:`MULTIPLIER`, :data:`CANONICAL` or :data:`OTHER`.
    reason : str
        Why ``kind`` was chosen, for logs and reports.
    in_channels, multiplier : int or None
        ``C`` and ``m`` of a depthwise convolution; None otherwise.
    """

    kind: str
    reason: str
    in_channels: int = None
    multiplier: int = None

    @property
    def is_depthwise(self):
        return self.kind != OTHER


def _static(extent):
    if isinstance(extent, int):
        return extent
    if isinstance(extent, tir.IntImm):
        return int(extent.value)
    return None


def is_primal_layout(layout):
    """True for a layout without split (packed) axes, such as ``NHWC`` or ``HWOI``."""
    layout = tir.layout(layout) if isinstance(layout, str) else layout
    return all(layout[i].isupper() for i in range(len(layout)))


def conv2d_form(data_shape, data_layout, kernel_shape, kernel_layout, groups):
    """Classify a 2-D convolution by its data and weight shapes.

    Parameters
    ----------
    data_shape, kernel_shape : sequence of int or PrimExpr
        Shapes in ``data_layout`` and ``kernel_layout``.
    data_layout, kernel_layout : str
        Any layout convertible to ``NCHW`` / ``OIHW`` (packed layouts included).
    groups : int
        The convolution's ``groups`` attribute.

    Returns
    -------
    form : Conv2DForm
    """
    groups = int(groups)
    if groups <= 1:
        return Conv2DForm(OTHER, "groups == 1: an ordinary convolution")
    try:
        _, channels, _, _ = tir.bijective_layout(data_layout, "NCHW").forward_shape(data_shape)
        kernel_o, kernel_i, _, _ = tir.bijective_layout(kernel_layout, "OIHW").forward_shape(
            kernel_shape
        )
    except tvm.TVMError:
        return Conv2DForm(OTHER, f"layouts {data_layout}/{kernel_layout} are not 2-D NCHW/OIHW")
    channels, kernel_o, kernel_i = (_static(e) for e in (channels, kernel_o, kernel_i))
    if None in (channels, kernel_o, kernel_i):
        return Conv2DForm(OTHER, "symbolic channel extent")
    if channels != groups:
        return Conv2DForm(OTHER, f"grouped convolution: groups {groups} != in_channels {channels}")
    if kernel_i == 1 and kernel_o % groups == 0:
        return Conv2DForm(
            CANONICAL, "weight already [C*m, 1, kH, kW]", channels, kernel_o // groups
        )
    if kernel_o == groups and kernel_i > 1:
        return Conv2DForm(MULTIPLIER, f"weight [C, m, kH, kW] with m={kernel_i}", channels, kernel_i)
    return Conv2DForm(
        OTHER, f"weight O={kernel_o}, I={kernel_i} fits neither depthwise form for C={channels}"
    )


def is_depthwise(data_shape, data_layout, kernel_shape, kernel_layout, groups):
    """True for a depthwise convolution with its weight in the canonical grouped form.

    Every depthwise dispatch of this patch asks this; the multiplier form answers False, since
    :func:`tvm.relay.transform.CanonicalizeDepthwise` rewrites it before dispatch.
    """
    return conv2d_form(data_shape, data_layout, kernel_shape, kernel_layout, groups).kind == (
        CANONICAL
    )

