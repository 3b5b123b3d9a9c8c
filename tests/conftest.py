"""Test-wide environment: no TopHub download (no network here), two threads like the benchmarks."""

import os

os.environ["TOPHUB_LOCATION"] = "NONE"
# set, not defaulted: the host-target fallbacks the tests check read it, and must see two
os.environ["TVM_NUM_THREADS"] = "2"
os.environ.pop("TVM_CANONICALIZE_DEPTHWISE", None)
