"""Installs the CanonicalizeDepthwise patch onto an installed Apache TVM 0.19.

The patch itself lives in the tree beside this package (``python/tvm/...``), laid out as it
would be upstream. This package is the glue that makes those files part of the installed
``tvm`` package without editing any file that TVM installed:

* :mod:`.bootstrap` is imported at interpreter start-up by a ``.pth`` file. It registers an
  import hook that serves the patch's modules under their ``tvm.`` names and, once
  ``tvm.relay`` has been imported, calls :func:`.activate.activate`.
* :mod:`.activate` attaches ``tvm.relay.transform.CanonicalizeDepthwise``, registers the
  depthwise strategies and makes ``relay.build`` and friends run the pass.
* :mod:`.cli` is the ``canonicalize-depthwise`` command.

``TVM_CANONICALIZE_DEPTHWISE=0`` in the environment turns the patch off (see :func:`enabled`).
"""
import os

ENV_VAR = "TVM_CANONICALIZE_DEPTHWISE"


def enabled():
    """Whether the patch is on: the environment variable is unset, empty or ``1``.

    It is read on every call, so a process can switch it for an A/B comparison.
    """
    value = os.environ.get(ENV_VAR, "1").strip()
    if value in ("", "1"):
        return True
    if value == "0":
        return False
    raise ValueError(f"{ENV_VAR} must be 0 or 1, not {value!r}")
