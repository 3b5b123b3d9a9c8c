"""ARM CPU schedule for depthwise convolution on canonical weights (any multiplier and layout)."""
from tvm import autotvm, te, tir

from ..nn.depthwise_conv2d_canonical import depthwise_conv2d_canonical as _compute
from ..utils import traverse_inline


@autotvm.register_topi_compute("depthwise_conv2d_canonical.arm_cpu")
def depthwise_conv2d_canonical(
    cfg, data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype
):
    """Compute of :func:`tvm.topi.nn.depthwise_conv2d_canonical`, as an AutoTVM template."""
    del cfg
    return _compute(
        data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype
    )


@autotvm.register_topi_schedule("depthwise_conv2d_canonical.arm_cpu")
def schedule_depthwise_conv2d_canonical(cfg, outs):
    """Parallel over the outer axes, vectorized along the innermost output axis."""
    outs = [outs] if isinstance(outs, te.tensor.Tensor) else outs
    sch = te.create_schedule([x.op for x in outs])

    def _callback(op):
        if op.tag != "depthwise_conv2d_canonical":
            return
        conv = op.output(0)
        data_pad = op.input_tensors[0]
        if isinstance(data_pad.op, te.ComputeOp) and "pad" in data_pad.op.tag:
            sch[data_pad].compute_inline()
        out = outs[0]
        axes = list(sch[out].op.axis)
        inner = axes[-1]
        outer = sch[out].fuse(*axes[:-2])
        sch[out].parallel(outer)
        if conv.op != out.op:
            sch[conv].compute_at(sch[out], outer)
        lanes = 4 if int(inner.dom.extent) >= 4 else 1
        if lanes > 1:
            _, vec = sch[out].split(inner, factor=lanes)
            sch[out].vectorize(vec)

    traverse_inline(sch, outs[0].op, _callback)
    return sch
