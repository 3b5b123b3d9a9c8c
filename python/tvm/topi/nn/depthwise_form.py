# Licensed to the Apache Software Foundation (ASF) under one
# or more contributor license agreements.  See the NOTICE file
# distributed with this work for additional information
# regarding copyright ownership.  The ASF licenses this file
# to you under the Apache License, Version 2.0 (the
# "License"); you may not use this file except in compliance
# with the License.  You may obtain a copy of the License at
#
#   http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing,
# software distributed under the License is distributed on an
# "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
# KIND, either express or implied.  See the License for the
# specific language governing permissions and limitations
# under the License.
"""Which form a convolution's weight is in: the one place that answers "is this depthwise".

2-D and 3-D convolutions alike; the forms are stated in OIHW terms, with ``kD`` in front of
``kH, kW`` for 3-D (OIDHW).
"""

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
class ConvForm:
    """What a convolution is, in OI+spatial terms (OIHW, OIDHW).

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
        """Whether the convolution is depthwise, in either form."""
        return self.kind != OTHER


Conv2DForm = ConvForm
"""The name this class had when only 2-D convolutions were asked about."""


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


def _primal_axes(layout):
    return [layout[i] for i in range(len(layout)) if layout[i].isupper()]


def conv_form(data_shape, data_layout, kernel_shape, kernel_layout, groups, spatial_dims=None):
    """Classify a convolution of any dimension (``nn.conv2d``, ``nn.conv3d``) by its shapes.

    The question is asked in NC+spatial / OI+spatial terms (``NCHW``/``OIHW`` for 2-D,
    ``NCDHW``/``OIDHW`` for 3-D): the spatial axes are the data layout's primal axes other
    than ``N`` and ``C``, and the kernel layout must hold ``O``, ``I`` and the same ones.

    Parameters
    ----------
    data_shape, kernel_shape : sequence of int or PrimExpr
        Shapes in ``data_layout`` and ``kernel_layout``.
    data_layout, kernel_layout : str
        Any layouts convertible to ``NC``/``OI`` followed by the spatial axes (packed layouts
        such as ``NCHW16c`` included).
    groups : int
        The convolution's ``groups`` attribute.
    spatial_dims : int, optional
        Answer :data:`OTHER` unless the convolution has this many spatial axes.

    Returns
    -------
    form : ConvForm
    """
    groups = int(groups)
    if groups <= 1:
        return ConvForm(OTHER, "groups == 1: an ordinary convolution")
    data_axes = _primal_axes(tir.layout(data_layout))
    kernel_axes = _primal_axes(tir.layout(kernel_layout))
    spatial = [axis for axis in data_axes if axis not in "NC"]
    wanted = f"{spatial_dims}-D " if spatial_dims is not None else ""
    if (
        sorted(data_axes) != sorted(["N", "C"] + spatial)
        or sorted(kernel_axes) != sorted(["O", "I"] + spatial)
        or (spatial_dims is not None and len(spatial) != spatial_dims)
    ):
        return ConvForm(
            OTHER, f"layouts {data_layout}/{kernel_layout} are not {wanted}NC.../OI... layouts"
        )
    spatial = "".join(spatial)
    try:
        channels = tir.bijective_layout(data_layout, "NC" + spatial).forward_shape(data_shape)[1]
        kernel_o, kernel_i = tir.bijective_layout(kernel_layout, "OI" + spatial).forward_shape(
            kernel_shape
        )[:2]
    except tvm.TVMError:
        return ConvForm(OTHER, f"shapes do not match layouts {data_layout}/{kernel_layout}")
    channels, kernel_o, kernel_i = (_static(e) for e in (channels, kernel_o, kernel_i))
    if None in (channels, kernel_o, kernel_i):
        return ConvForm(OTHER, "symbolic channel extent")
    if channels != groups:
        return ConvForm(OTHER, f"grouped convolution: groups {groups} != in_channels {channels}")
    window = ", ".join(f"k{axis}" for axis in spatial)
    if kernel_i == 1 and kernel_o % groups == 0:
        return ConvForm(
            CANONICAL, f"weight already [C*m, 1, {window}]", channels, kernel_o // groups
        )
    if kernel_o == groups and kernel_i > 1:
        return ConvForm(
            MULTIPLIER, f"weight [C, m, {window}] with m={kernel_i}", channels, kernel_i
        )
    return ConvForm(
        OTHER, f"weight O={kernel_o}, I={kernel_i} fits neither depthwise form for C={channels}"
    )


def conv2d_form(data_shape, data_layout, kernel_shape, kernel_layout, groups):
    """:func:`conv_form` for 2-D convolutions (layouts convertible to ``NCHW``/``OIHW``)."""
    return conv_form(data_shape, data_layout, kernel_shape, kernel_layout, groups, spatial_dims=2)


def is_depthwise(data_shape, data_layout, kernel_shape, kernel_layout, groups):
    """True for a depthwise 2-D convolution with its weight in the canonical grouped form.

    Every depthwise dispatch of this patch asks this; the multiplier form answers False, since
    :func:`tvm.relay.transform.CanonicalizeDepthwise` rewrites it before dispatch.
    """
    return conv2d_form(data_shape, data_layout, kernel_shape, kernel_layout, groups).kind == (
        CANONICAL
    )
