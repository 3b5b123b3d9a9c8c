"""Whether this host executes code that LLVM built for a given target, whoever made the CPU.

LLVM's feature list of a named CPU mixes instruction sets with tuning flags (``fast-bextr``,
``branchfusion``) and with system instructions a compiled loop nest never contains (``clzero``,
``mwaitx``, ``wbnoinvd``). What decides it is the instructions a convolution's code can hold:
the vector extensions (every ``sse*`` and ``avx*``, FMA, F16C) and the scalar ones LLVM emits in
address and loop arithmetic (BMI2, MOVBE, POPCNT). They are compared with the host's own flags
(``/proc/cpuinfo``), or, where there is no such file, with LLVM's list for the host's CPU name.

AMD's SSE4A counts: LLVM builds byte inserts of int8 code with its ``insertq`` (seen in code
built for ``znver3``, which then dies with SIGILL on an Intel host). So code built for a Zen
``-mcpu`` runs on AMD hosts only; code built for ``haswell`` (AVX2) or ``skylake-avx512``
(AVX-512 F/CD/BW/DQ/VL) runs on every x86 host of that class, AMD or Intel.
"""

import tvm
from tvm.target import codegen

_SCALAR = ("fma", "f16c", "bmi2", "movbe", "popcnt")
# reached only through its intrinsics, which no TVM schedule calls (Zen 5 has it, Zen 4 and
# most Intel AVX-512 parts do not)
_INTRINSIC_ONLY = ("avx512vp2intersect",)


def _emitted(features):
    return {
        name
        for name in features
        if (name.startswith(("sse", "ssse", "avx")) or name in _SCALAR)
        and name not in _INTRINSIC_ONLY
    }


# /proc/cpuinfo names that differ from LLVM's by more than underscores
_CPUINFO_ALIASES = {"pni": "sse3", "sse4_1": "sse4.1", "sse4_2": "sse4.2"}


def _host_features():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return {
                        _CPUINFO_ALIASES.get(flag, flag.replace("_", ""))
                        for flag in line.split(":", 1)[1].split()
                    }
    except OSError:
        pass
    host = tvm.target.Target(f"llvm -mcpu={codegen.llvm_get_system_cpu()}")
    return set(codegen.llvm_get_cpu_features(host))


HOST_FEATURES = _host_features()


def missing_on_host(target):
    """The instruction-set features ``target`` may use that this host lacks (empty: it runs)."""
    target = tvm.target.Target(target)
    if target.attrs.get("mtriple", "") not in ("", codegen.llvm_get_system_triple()):
        return {target.attrs["mtriple"]}
    return _emitted(codegen.llvm_get_cpu_features(target)) - HOST_FEATURES


# the baseline CPU of each vector class: code built for it runs on every host of the class;
# two cores, like the machines the tests run on, named so that no decision reads the host
PORTABLE_TARGETS = {
    "avx2": tvm.target.Target("llvm -mcpu=haswell -num-cores=2"),
    "avx512": tvm.target.Target("llvm -mcpu=skylake-avx512 -num-cores=2"),
}


def runs_on_host(target):
    """Whether this host executes code built for ``target``."""
    return not missing_on_host(target)
