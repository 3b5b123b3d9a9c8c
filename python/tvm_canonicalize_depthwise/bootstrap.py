"""Start-up import hook that lays the patch's modules onto the installed ``tvm`` package.

A ``python/tvm`` directory on ``sys.path`` would only be a namespace portion, and the
installed regular ``tvm`` package always wins over it, so the patch's files could never be
imported under their ``tvm.`` names that way. Instead a meta-path finder maps each patch
module name (``tvm.relay.transform.canonicalize_depthwise`` and the rest) to its file, and
runs :func:`tvm_canonicalize_depthwise.activate.activate` right after ``tvm.relay`` has
finished importing. Nothing here imports ``tvm``: start-up stays cheap.
"""

# The patch activates once tvm.relay is imported, not at start-up.
# pylint: disable=import-outside-toplevel
import importlib.abc
import importlib.util
import logging
import os
import sys

_LOG = logging.getLogger(__name__)
_TRIGGER = "tvm.relay"
OVERLAY_ENV_VAR = "TVM_CANONICALIZE_DEPTHWISE_OVERLAY"


def overlay_root():
    """The directory that holds the patch's ``tvm/`` tree.

    An installed copy keeps it in ``overlay/`` beside this file; a source checkout
    (``pip install -e .``) has it one level up, in ``python/``.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "overlay")
    if os.path.isdir(os.path.join(installed, "tvm")):
        return installed
    return os.path.dirname(here)


def overlay_modules(root):
    """Map each ``tvm.*`` module name the patch provides to its source file."""
    modules = {}
    tvm_dir = os.path.join(root, "tvm")
    for dirpath, _, filenames in os.walk(tvm_dir):
        for filename in filenames:
            if not filename.endswith(".py") or filename == "__init__.py":
                continue
            rel = os.path.relpath(os.path.join(dirpath, filename[:-3]), root)
            modules[rel.replace(os.sep, ".")] = os.path.join(dirpath, filename)
    return modules


class _ActivatingLoader(importlib.abc.Loader):
    """Wraps the real loader of ``tvm.relay`` and activates the patch once it has run."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        """Run ``tvm.relay``'s own code, then activate the patch."""
        self._loader.exec_module(module)
        # A broken patch must never break ``import tvm.relay``: fall back to stock TVM.
        try:
            from tvm_canonicalize_depthwise import activate

            activate.activate()
        except Exception:  # pylint: disable=broad-except
            _LOG.warning("CanonicalizeDepthwise patch not activated", exc_info=True)


class OverlayFinder(importlib.abc.MetaPathFinder):
    """Serves the patch's modules under their ``tvm.`` names."""

    def __init__(self, modules):
        self.modules = modules

    def find_spec(self, fullname, path, target=None):
        """The spec of one of the patch's modules, by its ``tvm.`` name; None for the rest."""
        if fullname in self.modules:
            return importlib.util.spec_from_file_location(fullname, self.modules[fullname])
        if fullname == _TRIGGER:
            return self._wrapped_trigger_spec(fullname, path, target)
        return None

    def _wrapped_trigger_spec(self, fullname, path, target):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ActivatingLoader(spec.loader)
                return spec
        return None


def install():
    """Put the finder first on ``sys.meta_path`` (once) and activate if ``tvm.relay`` is loaded.

    ``TVM_CANONICALIZE_DEPTHWISE_OVERLAY=0`` leaves the installed ``tvm`` alone: for a ``tvm``
    that carries the patch itself (``tests/scripts/upstream_patch.py --test``).
    """
    if os.environ.get(OVERLAY_ENV_VAR) == "0":
        return
    if any(isinstance(finder, OverlayFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, OverlayFinder(overlay_modules(overlay_root())))
    if _TRIGGER in sys.modules:
        from tvm_canonicalize_depthwise import activate

        activate.activate()


install()
