"""ARM CPU templates of depthwise convolution on canonical weights (any multiplier and layout)."""
import tvm
from tvm import autotvm

from ..x86.depthwise_conv2d_canonical import (
    depthwise_conv2d_canonical_cpu,
    schedule_depthwise_conv2d_canonical_cpu,
)
from ..x86.depthwise_cpu import describe_cpu

# Vector registers a register block's sums may take: half of AArch64's 32 (x86: 8 of 16 or 32)
ACCUMULATORS = 16


@autotvm.register_topi_compute("depthwise_conv2d_canonical.arm_cpu")
def depthwise_conv2d_canonical(
    cfg, data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype
):
    """Compute of :func:`tvm.topi.nn.depthwise_conv2d_canonical`, as an AutoTVM template."""
    del cfg
    cpu = describe_cpu() if tvm.target.Target.current(allow_none=True) else None
    return depthwise_conv2d_canonical_cpu(
        data, kernel, strides, padding, dilation, data_layout, kernel_layout, out_dtype, cpu
    )


@autotvm.register_topi_schedule("depthwise_conv2d_canonical.arm_cpu")
def schedule_depthwise_conv2d_canonical(cfg, outs):
    """The CPU schedule of the x86 template, for the NEON CPU of the current target."""
    return schedule_depthwise_conv2d_canonical_cpu(cfg, outs, describe_cpu(), ACCUMULATORS)
