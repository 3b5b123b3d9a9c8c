"""Where the benchmark networks come from: the embedded ones, and real ones fetched at run time.

Every source fills one directory with ``<name>.tflite`` and/or ``<name>.onnx``, ``<name>.npz``
(``input_nhwc`` and ``keras_output``: the reference output, from the engine the model came
from) and ``index.json`` (a description per network), which ``network_worker.py`` and the
peers of ``networks.py`` read (``BENCH_NETWORKS_DIR`` points them at it). Nothing fetched is
committed; everything fetched is checked by its SHA-256.

* ``embedded``: ``bench/networks/``, made by ``make_networks.py`` (Keras, seeded weights).
* ``mediapipe``: the float TFLite models of the ``mediapipe`` wheel (made by its vendor), the
  reference LiteRT's output on a seeded input; ``tflite_*`` paths.
* ``torchvision``: torchvision's architectures with seeded weights, exported by ``torch.onnx``
  (``export_torchvision.py``, in a venv of its own under ``bench/cache/``), the reference
  PyTorch's output; the ``onnx`` path, as PyTorch users arrive.
"""

import hashlib
import json
import os
import subprocess
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache")
THREADS = 2

MEDIAPIPE_WHEEL = "mediapipe==0.10.21"
MEDIAPIPE = {  # name: SHA-256 of mediapipe/modules/*/<name>.tflite in the wheel above
    "iris_landmark": "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    "face_landmark": "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    "palm_detection_lite": "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
    "palm_detection_full": "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    "face_detection_short_range": (
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
    ),
    "hand_recrop": "67d996ce96f9d36fe17d2693022c6da93168026ab2f028f9e2365398d8ac7d5d",
    "hand_landmark_lite": "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
    "pose_landmark_full": "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
}
# Not in MEDIAPIPE: pose_detection and face_detection_full_range_sparse hold float16 weights
# that TVM 0.19's TFLite frontend fails to import; selfie_segmentation has a custom op.

TORCH_REQUIREMENTS = ("torch==2.14.1", "torchvision==0.29.1", "onnx==1.23.2")
TORCHVISION = {  # name: SHA-256 of the seeded initial weights (export_torchvision.py)
    "mobilenet_v3_small": "afba899b36262baefc64a2ebc341236cf96352f466492959f95ae7b396dcc668",
    "efficientnet_b0": "420a2e0c7af5cfa59ae36a7f022165bf408a11f2cc7683228a02c5690a4cb18b",
    "mnasnet1_0": "98bb8843d07194d87aba5551f6014bf8139b433cafc313add2899afe0bb28400",
    "regnet_x_400mf": "43c462a740c98f3d6cd75d81a33b98d75b877ceecf916f4efe4c145181d82041",
}

SOURCES = {
    "embedded": (os.path.join(HERE, "networks"), None),
    "mediapipe": (os.path.join(CACHE, "mediapipe"), MEDIAPIPE),
    "torchvision": (os.path.join(CACHE, "torchvision"), TORCHVISION),
}
PATHS = {
    "embedded": ("tflite_nhwc", "tflite_nchw", "onnx"),
    "mediapipe": ("tflite_nhwc", "tflite_nchw"),
    "torchvision": ("onnx",),
}


def directory(source):
    """The folder that holds ``source``'s networks."""
    return SOURCES[source][0]


def names(source):
    """Every network of ``source``."""
    folder, known = SOURCES[source]
    if known is not None:
        return list(known)
    with open(os.path.join(folder, "index.json")) as f:
        return list(json.load(f))


def prepare(source, wanted):
    """Make ``wanted`` networks of ``source`` ready in its directory (fetched and checked
    where missing); the directory. Unknown names exit with the known ones."""
    unknown = [n for n in wanted if n not in names(source)]
    if unknown:
        raise SystemExit(
            f"unknown {source} network(s) {unknown}; known: {', '.join(names(source))}"
        )
    if source == "mediapipe":
        _mediapipe(wanted)
    elif source == "torchvision":
        _torchvision(wanted)
    return directory(source)


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _index(folder, entries):
    path = os.path.join(folder, "index.json")
    index = {}
    if os.path.exists(path):
        with open(path) as f:
            index = json.load(f)
    index.update(entries)
    with open(path, "w") as f:
        json.dump(index, f, indent=1)


def _mediapipe(wanted):
    folder = directory("mediapipe")
    os.makedirs(folder, exist_ok=True)
    missing = [n for n in wanted if not os.path.exists(os.path.join(folder, f"{n}.tflite"))]
    if missing:
        wheels = [f for f in os.listdir(folder) if f.endswith(".whl")]
        if not wheels:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", folder]
                + [MEDIAPIPE_WHEEL],
                check=True,
            )
            wheels = [f for f in os.listdir(folder) if f.endswith(".whl")]
        with zipfile.ZipFile(os.path.join(folder, wheels[0])) as wheel:
            members = {
                os.path.basename(m)[: -len(".tflite")]: m
                for m in wheel.namelist()
                if m.startswith("mediapipe/modules/") and m.endswith(".tflite")
            }
            for name in missing:
                with open(os.path.join(folder, f"{name}.tflite"), "wb") as f:
                    f.write(wheel.read(members[name]))
    for name in wanted:
        path = os.path.join(folder, f"{name}.tflite")
        digest = _sha256(path)
        if digest != MEDIAPIPE[name]:
            os.remove(path)
            raise SystemExit(f"{name}.tflite: SHA-256 {digest}, expected {MEDIAPIPE[name]}")
        npz = os.path.join(folder, f"{name}.npz")
        if not os.path.exists(npz):
            x, y = _litert_reference(path)
            np.savez(npz, input_nhwc=x, keras_output=y)
    _index(folder, {n: {"description": f"{n} ({MEDIAPIPE_WHEEL})"} for n in wanted})


def _litert_reference(path):
    """A seeded input in [-1, 1] and LiteRT's first output on it."""
    # optional: a benchmark dependency (bench/requirements.txt), needed here only
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel

    interp = Interpreter(model_path=path, num_threads=THREADS)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    x = np.random.default_rng(0).uniform(-1, 1, detail["shape"]).astype("float32")
    interp.set_tensor(detail["index"], x)
    interp.invoke()
    return x, np.array(interp.get_tensor(interp.get_output_details()[0]["index"]))


def torch_python():
    """The Python of ``bench/cache/torch-venv`` (made with the pinned torch on first use)."""
    venv = os.path.join(CACHE, "torch-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *TORCH_REQUIREMENTS], check=True)
    return python


def _torchvision(wanted):
    folder = directory("torchvision")
    os.makedirs(folder, exist_ok=True)
    for name in wanted:
        stamp = os.path.join(folder, f"{name}.sha256")
        files = [os.path.join(folder, f"{name}.{ext}") for ext in ("onnx", "npz")]
        if all(os.path.exists(p) for p in files + [stamp]):
            with open(stamp) as f:
                if f.read().strip() == TORCHVISION[name]:
                    continue
        done = subprocess.run(
            [torch_python(), "-W", "ignore", os.path.join(HERE, "export_torchvision.py")]
            + [name, folder],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        digest = json.loads(done.stdout.strip().splitlines()[-1])["weights_sha256"]
        if digest != TORCHVISION[name]:
            for path in files:
                os.remove(path)
            raise SystemExit(
                f"{name}: seeded weights' SHA-256 {digest}, expected {TORCHVISION[name]}"
            )
        with open(stamp, "w") as f:
            f.write(digest + "\n")
    _index(
        folder,
        {n: {"description": f"torchvision {n}, seeded weights, torch.onnx"} for n in wanted},
    )
