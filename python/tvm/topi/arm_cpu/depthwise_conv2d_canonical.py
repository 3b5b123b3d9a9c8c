"""ARM CPU schedule for depthwise convolution on canonical weights (any multiplier and layout)."""
from tvm import autotvm

from ..x86.depthwise_conv2d_canonical import (
    depthwise_conv2d_canonical_cpu,
    schedule_depthwise_conv2d_canonical_cpu,
)

_NEON_32BIT_LANES = 4


@autotvm.register_topi_compute("depthwise_conv2d_canonical.arm_cpu")
def depthwise_conv2d_canonical(
    cfg, data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype
):
    """Compute of :func:`tvm.topi.nn.depthwise_conv2d_canonical`, as an AutoTVM template."""
    del cfg
    return depthwise_conv2d_canonical_cpu(
        data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype,
        _NEON_32BIT_LANES,
    )


@autotvm.register_topi_schedule("depthwise_conv2d_canonical.arm_cpu")
def schedule_depthwise_conv2d_canonical(cfg, outs):
    """The CPU schedule of the x86 template with 128-bit NEON vectors (32 registers)."""
    return schedule_depthwise_conv2d_canonical_cpu(cfg, outs, _NEON_32BIT_LANES, 32)
