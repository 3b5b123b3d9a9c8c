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

import contextlib
import os

ENV_VAR = "TVM_CANONICALIZE_DEPTHWISE"

_SWITCHED = []  # the innermost switched() block decides, before the environment


def enabled():
    """Whether the patch is on: as the innermost :func:`switched` block says, else the
    environment variable is unset, empty or ``1``.

    It is read on every call, so a process can switch it for an A/B comparison.
    """
    if _SWITCHED:
        return _SWITCHED[-1]
    value = os.environ.get(ENV_VAR, "1").strip()
    if value in ("", "1"):
        return True
    if value == "0":
        return False
    raise ValueError(f"{ENV_VAR} must be 0 or 1, not {value!r}")


@contextlib.contextmanager
def switched(on):
    """The patch on (``on`` true) or off inside the ``with`` block, whatever the environment
    says; the environment is left as it is (and so are the child processes it is passed to)."""
    _SWITCHED.append(bool(on))
    try:
        yield
    finally:
        _SWITCHED.pop()
