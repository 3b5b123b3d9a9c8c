"""Reading the user's model for ``canonicalize-depthwise``: TFLite and ONNX files into Relay.

Everything here raises :class:`ModelError` (one line, naming the file) for input the command
cannot use, so that the command reports it as a usage error. The file is only read.
"""

# TVM and the frontends' packages are imported where needed: the command checks its
# arguments and the model file before paying for them.
# pylint: disable=import-outside-toplevel
import os
import struct

import numpy as np

from tvm_canonicalize_depthwise.onnx_compat import ensure_onnx_mapping

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "default.tflite")
"""The built-in model: a small Keras network converted by the TFLite converter, with depthwise
convolutions of multiplier 1, 2 and 4 (see ``data/make_default_model.py``)."""

FORMATS = (".tflite", ".onnx")


class ModelError(Exception):
    """The model file cannot be used; the message is one line."""


class Model:
    """A model file, read and checked, with what its inputs are.

    Attributes
    ----------
    path : str
        The file as given.
    kind : str
        ``"tflite"`` or ``"onnx"``.
    blob : bytes
        The file's contents.
    parsed : object
        ``tflite.Model`` or ``onnx.ModelProto``.
    inputs : list of (name, shape, dtype)
        The graph inputs in order; a dimension the model leaves open is None.
    """

    def __init__(self, path, kind, blob, parsed, inputs):
        self.path, self.kind, self.blob, self.parsed, self.inputs = path, kind, blob, parsed, inputs

    @property
    def is_default(self):
        """Whether the model is the built-in default."""
        return os.path.abspath(self.path) == DEFAULT_MODEL


def read_model(path):
    """Read and check ``path`` (a ``.tflite`` or ``.onnx`` file); raises :class:`ModelError`."""
    ext = os.path.splitext(path)[1].lower()
    if not os.path.lexists(path):
        raise ModelError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelError(f"{path}: is a directory, not a model file")
    if ext not in FORMATS:
        raise ModelError(
            f"{path}: unsupported file type {ext or '(no extension)'!r}; "
            "expected a .tflite or .onnx model"
        )
    try:
        with open(path, "rb") as stream:
            blob = stream.read()
    except PermissionError:
        raise ModelError(f"{path}: permission denied") from None
    except OSError as err:
        raise ModelError(f"{path}: cannot read: {err.strerror or err}") from None
    if not blob:
        raise ModelError(f"{path}: empty file")
    if ext == ".tflite":
        parsed, inputs = _read_tflite(path, blob)
        return Model(path, "tflite", blob, parsed, inputs)
    parsed, inputs = _read_onnx(path, blob)
    return Model(path, "onnx", blob, parsed, inputs)


# ---------------------------------------------------------------------------------------------
# TFLite
def _tflite_dtypes():
    import tflite

    names = {
        value: name.lower()
        for name, value in vars(tflite.TensorType).items()
        if not name.startswith("_") and isinstance(value, int)
    }
    return names


def _read_tflite(path, blob):
    try:
        import tflite
    except ImportError:
        raise ModelError("reading .tflite files needs the 'tflite' package") from None
    if len(blob) < 8 or blob[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    dtypes = _tflite_dtypes()
    try:
        model = tflite.Model.GetRootAsModel(blob, 0)
        if model.SubgraphsLength() < 1:
            raise ModelError(f"{path}: the TFLite model has no subgraph")
        # Walk every table the frontend will read, so that a damaged file fails here, with a
        # clear message, and not somewhere inside the frontend.
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            for t in range(graph.TensorsLength()):
                tensor = graph.Tensors(t)
                _ = tensor.Name(), tensor.ShapeAsNumpy(), tensor.Type()  # raise if damaged
                if tensor.Buffer() >= model.BuffersLength():
                    raise ValueError("tensor buffer index out of range")
            for o in range(graph.OperatorsLength()):
                op = graph.Operators(o)
                if op.OpcodeIndex() >= model.OperatorCodesLength():
                    raise ValueError("operator code index out of range")
                tensors = [op.Inputs(k) for k in range(op.InputsLength())]
                tensors += [op.Outputs(k) for k in range(op.OutputsLength())]
                for t in tensors:  # -1 marks an optional input left out
                    if t >= graph.TensorsLength():
                        raise ValueError("operator tensor index out of range")
        for b in range(model.BuffersLength()):
            model.Buffers(b).DataLength()
        graph = model.Subgraphs(0)
        inputs = []
        for i in range(graph.InputsLength()):
            tensor = graph.Tensors(graph.Inputs(i))
            shape = [tensor.Shape(k) for k in range(tensor.ShapeLength())]
            if tensor.ShapeSignatureLength():  # -1 marks a dynamic dimension
                shape = [
                    None if tensor.ShapeSignature(k) < 0 else tensor.ShapeSignature(k)
                    for k in range(tensor.ShapeSignatureLength())
                ]
            inputs.append((tensor.Name().decode("utf-8"), shape, dtypes[tensor.Type()]))
    except ModelError:
        raise
    except Exception:  # pylint: disable=broad-except
        raise ModelError(f"{path}: damaged or truncated TFLite file") from None
    if not inputs:
        raise ModelError(f"{path}: the TFLite model has no input")
    return model, inputs


# ---------------------------------------------------------------------------------------------
# ONNX
def _read_onnx(path, blob):
    try:
        import onnx
    except ImportError:
        raise ModelError("reading .onnx files needs the 'onnx' package") from None
    try:
        model = onnx.load_model_from_string(blob)
    except Exception:  # pylint: disable=broad-except
        raise ModelError(f"{path}: not an ONNX model (the protobuf does not parse)") from None
    try:
        onnx.checker.check_model(model)
    except Exception as err:  # pylint: disable=broad-except
        detail = str(err).strip().splitlines()
        detail = detail[0] if detail else type(err).__name__
        raise ModelError(f"{path}: invalid ONNX model: {detail[:200]}") from None
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = []
    for info in model.graph.input:
        if info.name in initializers:
            continue
        tensor_type = info.type.tensor_type
        if not info.type.HasField("tensor_type"):
            raise ModelError(f"{path}: input {info.name!r} is not a tensor")
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
        except Exception:  # pylint: disable=broad-except
            raise ModelError(
                f"{path}: input {info.name!r} has an unsupported element type"
            ) from None
        shape = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in tensor_type.shape.dim
        ]
        inputs.append((info.name, shape, dtype))
    if not inputs:
        raise ModelError(f"{path}: the ONNX model has no input")
    return model, inputs


# ---------------------------------------------------------------------------------------------
def resolve_shapes(model, overrides):
    """Input shapes: the model's, with ``overrides`` ({name: shape}) for open dimensions.

    Raises :class:`ModelError` for an override of an unknown input, of the wrong rank or
    contradicting a fixed dimension, and for an open dimension left without one.
    """
    names = [name for name, _, _ in model.inputs]
    for name in overrides:
        if name not in names:
            raise ModelError(
                f"--input-shapes: the model has no input {name!r} (inputs: {', '.join(names)})"
            )
    shapes = {}
    for name, shape, _ in model.inputs:
        given = overrides.get(name)
        if given is None:
            if None in shape:
                dims = ",".join("?" if d is None else str(d) for d in shape)
                raise ModelError(
                    f"{model.path}: input {name!r} has a dynamic shape [{dims}]; "
                    f"give it with --input-shapes '{name}:[D1,D2,...]'"
                )
            shapes[name] = tuple(shape)
            continue
        if len(given) != len(shape):
            raise ModelError(
                f"--input-shapes {name}: {len(given)} dimensions given, the input has {len(shape)}"
            )
        for axis, (want, got) in enumerate(zip(shape, given)):
            if want is not None and want != got:
                raise ModelError(
                    f"--input-shapes {name}: dimension {axis} is fixed to {want} by the model, "
                    f"not {got}"
                )
        shapes[name] = tuple(given)
    return shapes


def to_relay(model, shapes):
    """Import with tvmc's frontend of the model's kind, as ``tvmc compile`` does; returns
    ``(mod, params)``. Raises :class:`ModelError`.

    The file was read and checked by :func:`read_model` (tvmc's frontends fail deep inside a
    damaged file, with a traceback); tvmc's loader reads it again for the import itself.
    """
    from tvm.driver.tvmc.frontends import get_frontend_by_name

    dtypes = {name: dtype for name, _, dtype in model.inputs}
    frontend = get_frontend_by_name(model.kind)
    try:
        if model.kind == "tflite":
            return frontend.load(model.path, shape_dict=shapes, dtype_dict=dtypes)
        ensure_onnx_mapping()
        return frontend.load(model.path, shape_dict=shapes, dtype=dtypes, freeze_params=True)
    except Exception as err:  # pylint: disable=broad-except
        if model.kind == "tflite" and isinstance(err, (struct.error, IndexError)):
            # the flatbuffer reader ran past the end of the file
            raise ModelError(f"{model.path}: damaged or truncated TFLite file") from None
        raise ModelError(f"{model.path}: TVM cannot import it: {one_line(err)}") from None


def one_line(err):
    """An exception as one line: TVM's errors carry a C++ traceback before the message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [
        line
        for line in lines
        if not line.startswith(("Traceback", "File ")) and not line[:1].isdigit()
    ]
    text = lines[-1] if lines else type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# ---------------------------------------------------------------------------------------------
# the model's own engine, as the reference
def reference_engine(model):
    """``(label, run)`` for the engine the model was made for, or None when none is installed.

    ``run(feeds)`` takes ``{name: array}`` and returns the outputs in the model's order.
    """
    if model.kind == "tflite":
        return _tflite_engine(model)
    return _onnx_engine(model)


def _tflite_engine(model):
    interpreter_class, label = None, None
    try:
        from ai_edge_litert.interpreter import Interpreter

        interpreter_class, label = Interpreter, "LiteRT (ai_edge_litert)"
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter

            interpreter_class, label = Interpreter, "TFLite runtime (tflite_runtime)"
        except ImportError:
            try:
                import tensorflow as tf

                interpreter_class, label = tf.lite.Interpreter, "TensorFlow Lite (tensorflow)"
            except ImportError:
                return None
    graph = model.parsed.Subgraphs(0)
    output_order = [int(graph.Outputs(i)) for i in range(graph.OutputsLength())]

    def run(feeds):
        interp = interpreter_class(model_content=model.blob, num_threads=2)
        details = {d["name"]: d for d in interp.get_input_details()}
        for name, array in feeds.items():
            if tuple(details[name]["shape"]) != array.shape:
                interp.resize_tensor_input(details[name]["index"], list(array.shape))
        interp.allocate_tensors()
        for name, array in feeds.items():
            interp.set_tensor(details[name]["index"], array)
        interp.invoke()
        return [interp.get_tensor(index) for index in output_order]

    return label, run


def _onnx_engine(model):
    try:
        import onnxruntime
    except ImportError:
        return None

    def run(feeds):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 2
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            model.blob, options, providers=["CPUExecutionProvider"]
        )
        return session.run(None, feeds)

    return f"ONNX Runtime {onnxruntime.__version__}", run


def random_inputs(model, shapes, seed=0):
    """Seeded random data for every input: uniform [-1, 1] for floats, the full range for
    8- and 16-bit integers, [0, 10) for wider integers."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, _, dtype in model.inputs:
        shape, dtype = shapes[name], np.dtype(dtype)
        if dtype.kind == "f":
            feeds[name] = rng.uniform(-1, 1, shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.integers(0, 2, shape).astype(dtype)
        elif dtype.kind in "iu" and dtype.itemsize <= 2:
            info = np.iinfo(dtype)
            feeds[name] = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        elif dtype.kind in "iu":
            feeds[name] = rng.integers(0, 10, shape).astype(dtype)
        else:
            raise ModelError(
                f"{model.path}: input {name!r} has dtype {dtype}, which the "
                "command cannot make random data for"
            )
    return feeds
