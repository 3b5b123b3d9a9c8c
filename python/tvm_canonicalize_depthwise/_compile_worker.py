"""``python -m tvm_canonicalize_depthwise._compile_worker DIR``: one compile for the command.

``canonicalize-depthwise`` runs each of its builds here, in a process of its own, so that a
crash in TVM or LLVM ends that build only (see
:func:`tvm_canonicalize_depthwise.building.compile_in_child`).
"""

# the command (and with it TVM) is imported once the environment is set
# pylint: disable=import-outside-toplevel
import logging
import os
import sys


def main(argv):
    """Compile the request in the directory ``argv[0]``."""
    os.environ.setdefault("TOPHUB_LOCATION", "NONE")
    # TVM's "not tuned" and "not optimized" notices concern the stock build: not wanted here.
    for name in ("strategy", "autotvm", "te_compiler"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from tvm_canonicalize_depthwise.building import compile_request

    compile_request(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
