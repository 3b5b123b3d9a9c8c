"""TVM 0.19's ONNX frontend with the onnx releases pinned here.

``relay.frontend.from_onnx`` imports ``onnx.mapping.TENSOR_TYPE_TO_NP_TYPE``; onnx 1.23 no
longer has that module. :func:`ensure_onnx_mapping` provides it, built from
``onnx.helper.tensor_dtype_to_np_dtype``, before the frontend needs it.
"""

import sys
import types


def ensure_onnx_mapping():
    """Make ``onnx.mapping.TENSOR_TYPE_TO_NP_TYPE`` importable (a no-op where onnx has it)."""
    import onnx  # pylint: disable=import-outside-toplevel

    try:
        import onnx.mapping  # pylint: disable=import-outside-toplevel,unused-import

        return
    except ImportError:
        pass
    table = {}
    for dtype in onnx.TensorProto.DataType.values():
        try:
            table[dtype] = onnx.helper.tensor_dtype_to_np_dtype(dtype)
        except (KeyError, ValueError, TypeError):  # types without a NumPy dtype
            continue
    shim = types.ModuleType("onnx.mapping")
    shim.TENSOR_TYPE_TO_NP_TYPE = table
    sys.modules["onnx.mapping"] = onnx.mapping = shim
