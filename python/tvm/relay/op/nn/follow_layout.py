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
"""Ops around convolutions that follow the layout of the convolution they come after.

TVM 0.19 gives ``nn.prelu`` a layout function that keeps the layout the op was written in,
``nn.bias_add`` none, and ``nn.pad`` one that refuses a packed layout whenever the padded axis
is split; ``ConvertLayout`` and ``AlterOpLayout`` then put layout transforms around each of
them wherever the convolution before them changes layout.

* ``nn.prelu`` and ``nn.bias_add`` are per-channel: in any layout that keeps the channel axis
  whole they compute the same with ``axis`` moved to where the channel went
  (:func:`follow_channel_axis`). A packed layout splits the channel axis, which a 1-D ``alpha``
  cannot follow: :func:`legalize_prelu` writes ``nn.prelu`` as broadcast arithmetic, which
  every layout pass carries into packed layouts like the bias ``add``.
* ``nn.pad`` with constant padding along a split axis (the channel padding of residual blocks
  that widen) follows a packed layout where each pad width is whole blocks
  (:func:`follow_packed_pad`).
* ``add`` of two tensors of one shape (a residual add) takes the layout of its first argument
  where both changed; where one arrives packed and the other in a primal layout (after an op
  that cannot follow a packing, such as a channel pad whose width is not whole blocks), it
  follows the packed one (:func:`follow_packed_operand`): the primal one is packed where it
  is made, and the sum stays packed for the convolution after it.
* ``image.resize2d`` keeps TVM's rule where the new layout has as many axes as the old one,
  which refuses the packed ``NCHW[x]c`` of the x86 convolutions; TOPI's resize computes in
  that layout, so the resize follows it (:func:`follow_packed_resize`).
"""

import re

import tvm
from tvm import relay
from tvm.relay.transform.infer_layout_utils import InferCorrectLayoutOutput


def _whole_channel_layout(layout, rank):
    """``layout`` if it is a primal layout (no split axis) of ``rank`` axes, else None."""
    if layout is None or not layout.name or len(layout) != rank:
        return None
    if any(not str(layout[i]).isalpha() or not str(layout[i]).isupper() for i in range(rank)):
        return None
    return layout


def follow_channel_axis(attrs, new_in_layouts, old_in_layouts, old_in_types, attrs_type):
    """The layouts of a per-channel op (data, then a 1-D per-channel tensor) whose data arrives
    in ``new_in_layouts[0]`` (or, before any change, in its old layout): that layout, with
    ``attrs.axis`` moved to the same axis in it. None where the data's layout is unknown or
    splits an axis."""
    if old_in_layouts is None or len(old_in_layouts) != 2:
        return None
    rank = len(old_in_types[0].shape)
    old = _whole_channel_layout(old_in_layouts[0], rank)
    new = old
    if new_in_layouts is not None and new_in_layouts[0] is not None:
        new = _whole_channel_layout(new_in_layouts[0], rank)
    if old is None or new is None:
        return None
    axis_name = str(old[int(attrs.axis) % rank])
    if new.index_of(axis_name) < 0:
        return None
    fields = {str(key): attrs[key] for key in attrs.keys() if key != "axis"}
    new_attrs = tvm.ir.make_node(attrs_type, **fields, axis=new.index_of(axis_name))
    return InferCorrectLayoutOutput([new, tvm.tir.layout(axis_name)], [new], new_attrs)


def follow_packed_pad(attrs, new_in_layouts, old_in_layouts, old_in_types, stock_out):
    """The layouts of a constant ``nn.pad`` whose data arrives in a packed layout that splits
    a padded axis, where every pad width of that axis is a multiple of its block: the pad moves
    to the outer axis in blocks. None where that does not hold, or ``stock_out`` (TVM's answer)
    already follows the new layout."""
    if new_in_layouts is None or old_in_layouts is None or str(attrs.pad_mode) != "constant":
        return None
    rank = len(old_in_types[0].shape)
    old, new = _whole_channel_layout(old_in_layouts[0], rank), new_in_layouts[0]
    if old is None or new is None or not new.name or stock_out.output_layouts[0] == new:
        return None
    widths = {str(old[i]): [int(w) for w in attrs.pad_width[i]] for i in range(rank)}
    new_widths = []
    for i in range(len(new)):
        axis = str(new[i])
        if axis.isupper():
            if axis not in widths:
                return None
            factor = new.factor_of(axis)
            factor = 1 if factor < 0 else factor
            if any(width % factor for width in widths[axis]):
                return None
            new_widths.append([width // factor for width in widths[axis]])
        else:
            new_widths.append([0, 0])
    new_attrs = tvm.ir.make_node(
        "relay.attrs.PadAttrs", pad_width=new_widths, pad_mode=attrs.pad_mode
    )
    return InferCorrectLayoutOutput([new, stock_out.input_layouts[1]], [new], new_attrs)


def _packed_nchw(layout):
    """Whether ``layout`` is the ``NCHW{b}c`` that x86 convolutions compute in."""
    return layout is not None and re.fullmatch(r"NCHW\d+c", layout.name or "") is not None


def follow_packed_operand(attrs, new_in_layouts, old_in_layouts, old_in_types, stock_out):
    """The layouts of an elementwise binary op over two tensors of one shape where one arrives
    in a packed ``NCHW[x]c`` and the other in a primal layout of the same axes: the packed
    layout for both and the result. None otherwise."""
    del old_in_layouts  # the shapes decide, whatever layouts the operands were written in
    if new_in_layouts is None or len(new_in_layouts) != 2 or None in list(new_in_layouts):
        return None
    if not tvm.ir.structural_equal(old_in_types[0].shape, old_in_types[1].shape):
        return None
    packed = [i for i, layout in enumerate(new_in_layouts) if _packed_nchw(layout)]
    if len(packed) != 1 or sorted(new_in_layouts[1 - packed[0]].name) != sorted("NCHW"):
        return None
    layout = new_in_layouts[packed[0]]
    if stock_out is not None and stock_out.output_layouts[0] == layout:
        return None
    return InferCorrectLayoutOutput([layout, layout], [layout], attrs)


def follow_packed_resize(attrs, new_in_layouts, old_in_layouts, old_in_types, stock_out):
    """The layouts of an ``image.resize2d`` written in NCHW or NHWC whose data arrives in a
    packed ``NCHW[x]c``: that layout in and out (H and W stay whole, so ``size`` and ``roi``
    mean the same). None otherwise, or where ``stock_out`` already follows it."""
    del old_in_types  # one input, whose layout alone decides
    if new_in_layouts is None or old_in_layouts is None or new_in_layouts[0] is None:
        return None
    new, old = new_in_layouts[0], old_in_layouts[0]
    if not _packed_nchw(new) or old is None:
        return None
    if str(attrs.layout) not in ("NCHW", "NHWC") or old.name != str(attrs.layout):
        return None
    if stock_out is not None and stock_out.output_layouts[0] == new:
        return None
    fields = {str(key): attrs[key] for key in attrs.keys() if key != "layout"}
    new_attrs = tvm.ir.make_node("relay.attrs.Resize2DAttrs", **fields, layout=new.name)
    return InferCorrectLayoutOutput([new], [new], new_attrs)


def legalize_prelu(attrs, inputs, types):
    """``nn.prelu(x, alpha, axis)`` as broadcast arithmetic, which every layout pass carries
    into packed layouts: ``maximum(0, x) + alpha * minimum(0, x)``.

    For every ``x`` it is what ``x > 0 ? x : alpha * x`` gives: one term is an exact zero, the
    other ``x`` or ``alpha * x``; with ``0`` first, ``maximum`` and ``minimum`` return ``x``
    where ``x`` is NaN, as the select does.
    """
    data_type = types[0]
    rank = len(data_type.shape)
    axis = int(attrs.axis) % rank
    data, alpha = inputs
    # alpha [C] -> [C, 1, ..., 1]: broadcasts along `axis` of the data
    alpha = relay.reshape(alpha, [-1] + [1] * (rank - 1 - axis))
    zero = relay.const(0, data_type.dtype)
    return relay.add(relay.maximum(zero, data), relay.multiply(alpha, relay.minimum(zero, data)))


def _channel_axis(attrs_type):
    def follow(attrs, new_in_layouts, old_in_layouts, old_in_types, stock_out):
        del stock_out  # TVM's answer: replaced wherever the channel axis can follow
        return follow_channel_axis(attrs, new_in_layouts, old_in_layouts, old_in_types, attrs_type)

    return follow


FOLLOWERS = {
    "nn.prelu": _channel_axis("relay.attrs.PReluAttrs"),
    "nn.bias_add": _channel_axis("relay.attrs.BiasAddAttrs"),
    "nn.pad": follow_packed_pad,
    "image.resize2d": follow_packed_resize,
    "add": follow_packed_operand,
}
"""Each op whose layout follows its convolution's, and its rule: ``follow(attrs, new_in,
old_in, types, stock_out)`` gives the layouts, or None to keep TVM's answer ``stock_out``."""


def layout_function(stock, follow):
    """An op's ``FInferCorrectLayout``: ``follow``'s answer where it has one, else ``stock``'s
    (TVM's own function, or None for an op without one: the layouts it was written in)."""

    def infer(attrs, new_in_layouts, old_in_layouts, old_in_types):
        stock_out = (
            None if stock is None else stock(attrs, new_in_layouts, old_in_layouts, old_in_types)
        )
        followed = follow(attrs, new_in_layouts, old_in_layouts, old_in_types, stock_out)
        if followed is not None:
            return followed
        if stock_out is not None:
            return stock_out
        return InferCorrectLayoutOutput(list(old_in_layouts), [old_in_layouts[0]], attrs)

    return infer
