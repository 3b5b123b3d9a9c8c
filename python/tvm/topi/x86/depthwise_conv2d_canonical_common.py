"""What the CPU depthwise templates share: tags, layout families, factor choices."""
TAG = "depthwise_conv2d_canonical"
UPSAMPLE_TAG = "depthwise_channel_upsample"
PAD_TAG = "depthwise_pad"
# Multiply-adds below which a layer runs on one thread: starting the thread pool costs about
# a microsecond, more than such a layer (a 22x1 kernel over one output row) gains.
PARALLEL_WORK = 1 << 16


def is_packed(layout):
    """True for a layout with a split channel axis, such as ``NCHW16c``."""
    return layout.index_of("c") >= 0


def vectorized_along_channels(layout):
    """Channels-last (NHWC) and packed (NCHW16c) layouts vectorize along output channels."""
    return is_packed(layout) or layout.index_of("C") > layout.index_of("W")


def largest_divisor(extent, limit):
    """The largest divisor of ``extent`` that is at most ``limit`` (at least 1)."""
    for factor in range(min(extent, max(limit, 1)), 0, -1):
        if extent % factor == 0:
            return factor
    return 1


def vector_factor(extent, lanes):
    """Lanes to vectorize an axis of ``extent`` with: a divisor, whole vectors when possible."""
    if extent <= lanes:
        return extent
    if extent % lanes == 0:
        return lanes
    # half a register of whole lanes beats an odd-sized vector (56 wide: 8 lanes, not 14)
    half = lanes // 2
    if half > 1 and extent % half == 0:
        return half
    return largest_divisor(extent, lanes)


def register_block(extent, limit):
    """A divisor of ``extent`` near ``limit`` for the unrolled register block."""
    block = largest_divisor(extent, limit)
    if 2 * block <= limit and extent <= 2 * limit:
        # prime-ish extents: one block over the whole axis beats blocks of 1
        block = extent
    return block
