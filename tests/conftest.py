"""Test-wide environment: no TopHub download (no network here), two threads like the benchmarks."""
import os

os.environ["TOPHUB_LOCATION"] = "NONE"
os.environ.setdefault("TVM_NUM_THREADS", "2")
os.environ.pop("TVM_CANONICALIZE_DEPTHWISE", None)
