"""``canonicalize-depthwise``: the built-in model, a .tflite and an .onnx file, bad input.

The reports are checked against counts made here independently of TVM: the .tflite is read
with the ``tflite`` flatbuffer package (DEPTHWISE_CONV_2D operators; C from the input tensor,
m from the filter), the .onnx with ``onnx`` (Conv nodes whose weight is [C*m, 1, kH, kW] with
``group`` = C > 1, i.e. group == input channels).
"""

# tflite and onnx are optional frontend packages: imported only by the tests that read them
# pylint: disable=import-outside-toplevel
import builtins
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import tvm.testing
from tvm_canonicalize_depthwise import cli
from tvm_canonicalize_depthwise.models import DEFAULT_MODEL

COMMAND = str(Path(sys.executable).parent / "canonicalize-depthwise")
FIXTURES = Path(__file__).parent / "fixtures"
ONNX_FIXTURE = FIXTURES / "default.onnx"
INT8_FIXTURE = FIXTURES.parent.parent / "frontend" / "fixtures" / "dw_mix_int8.tflite"


def _default_tflite():
    return Path(DEFAULT_MODEL)


def run(*args, env=None, cwd=None):
    """The command run with ARGS (and ENV added to the environment); never raises on its exit."""
    return subprocess.run(
        [COMMAND, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


# ---------------------------------------------------------------------------------------------
# independent counts
def tflite_depthwise(path):
    """(C, m) of every DEPTHWISE_CONV_2D in the .tflite, read with the flatbuffer package."""
    import tflite

    model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    graph = model.Subgraphs(0)
    found = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin != tflite.BuiltinOperator.DEPTHWISE_CONV_2D:
            continue
        channels = int(graph.Tensors(op.Inputs(0)).ShapeAsNumpy()[-1])
        filter_out = int(graph.Tensors(op.Inputs(1)).ShapeAsNumpy()[-1])  # [1, kH, kW, C*m]
        options = tflite.DepthwiseConv2DOptions()
        table = op.BuiltinOptions()
        options.Init(table.Bytes, table.Pos)
        if options.DepthMultiplier():
            assert options.DepthMultiplier() == filter_out // channels
        found.append((channels, filter_out // channels))
    return found


def onnx_depthwise(path):
    """(C, m) of every depthwise Conv in the .onnx: group == C > 1 and a [C*m, 1, kH, kW] weight."""
    import onnx

    model = onnx.load(str(path))
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        out_channels, per_group = weights[node.input[1]][:2]
        if group > 1 and per_group == 1:  # input channels = group * per_group == group
            found.append((group, out_channels // group))
    return found


def _report_pairs(report):
    return sorted((conv["in_channels"], conv["multiplier"]) for conv in report["depthwise"])


def _check_report(report, expected_pairs, rewritten):
    assert _report_pairs(report) == sorted(expected_pairs)
    assert report["rewritten"] == rewritten
    assert report["max_abs_err"] <= report["tolerance"] <= 1e-2
    assert report["max_abs_err"] < 1e-4
    assert report["latency_ms"]["on"] > 0 and report["latency_ms"]["off"] > 0
    assert report["path"] in [p["path"] for p in report["paths"]]
    for entry in report["paths"]:
        for key in ("on", "off"):
            assert 0 < entry["depthwise_share"][key] < 1
    for conv in report["depthwise"]:
        assert conv["name"]  # the frontend's span
        if conv["form"] == "multiplier":
            assert conv["rewritten"] and "->" in conv["rewrite"]
        else:
            assert conv["form"] == "canonical" and not conv["rewritten"]


# ---------------------------------------------------------------------------------------------
def test_counts_of_the_shipped_models():
    """The built-in model holds multipliers 1 and > 1, and its ONNX twin the same convs."""
    tflite_pairs = tflite_depthwise(_default_tflite())
    assert sorted(m for _, m in tflite_pairs) == [1, 1, 2, 4]
    assert sorted(onnx_depthwise(ONNX_FIXTURE)) == sorted(tflite_pairs)
    for path in (_default_tflite(), ONNX_FIXTURE):
        assert path.stat().st_size < 100_000


def test_default_model_text_report(tmp_path):
    result = run("--repeat", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "the built-in default" in out
    assert "depthwise convolutions: 4 of 6 convolutions" in out
    assert "weight [3, 3, 8, 2] -> [3, 3, 16, 1]" in out
    assert "weight [3, 3, 24, 4] -> [3, 3, 96, 1]" in out
    assert "NHWC as imported" in out and "converted to NCHW" in out
    assert out.strip().splitlines()[-1].startswith("fastest: ")
    assert "compiling (patch on, NHWC as imported)..." in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_tflite_file_json_against_independent_count(tmp_path):
    model = tmp_path / "net.tflite"
    shutil.copy(_default_tflite(), model)
    before = (model.read_bytes(), model.stat().st_mtime_ns)
    result = run(model, "--json", "--repeat", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = tflite_depthwise(model)
    _check_report(report, expected, rewritten=sum(m > 1 for _, m in expected))
    assert report["format"] == "tflite" and not report["default_model"]
    assert report["inputs"] == [{"name": "image", "shape": [1, 32, 32, 3], "dtype": "float32"}]
    assert [p["path"] for p in report["paths"]] == ["as_imported", "nchw"]
    assert all(p["rewritten"] == 2 for p in report["paths"])  # the pass at build, both paths
    assert {conv["layout"] for conv in report["depthwise"]} == {"NHWC/HWOI"}
    assert report["reference"].startswith(("LiteRT", "TFLite", "TensorFlow", "TVM"))
    assert (model.read_bytes(), model.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.tflite"]


def test_onnx_file_json_against_independent_count(tmp_path):
    model = tmp_path / "net.onnx"
    shutil.copy(ONNX_FIXTURE, model)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    result = run(model, "--json", "--repeat", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    _check_report(report, onnx_depthwise(model), rewritten=0)  # ONNX is canonical already
    assert [p["path"] for p in report["paths"]] == ["as_imported"]
    assert report["paths"][0]["compiled_in_child"] == {"on": True, "off": True}
    assert {conv["layout"] for conv in report["depthwise"]} == {"NCHW/OIHW"}
    assert report["reference"].startswith(("ONNX Runtime", "TVM"))
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]


def test_int8_tflite_file(tmp_path):
    """A full-integer TFLite model (qnn.conv2d): its multiplier-form depthwise convs are
    rewritten, every path builds on any x86 host (VNNI off where LLVM rejects TVM's VNNI
    code), the patch changes no output bit, and the path as imported is within one quantum of
    LiteRT (or equal to the patch-off build where LiteRT is not installed). After
    ConvertLayout, TVM's own int8 conv2d_NCHWc may be further off (without VNNI its u8 x s8
    pairs saturate at 16 bits): the command then says so and exits 1."""
    model = tmp_path / "int8.tflite"
    shutil.copy(INT8_FIXTURE, model)
    result = run(model, "--json", "--repeat", "2", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    expected = tflite_depthwise(model)
    assert any(m > 1 for _, m in expected)
    assert _report_pairs(report) == sorted(expected)
    assert report["rewritten"] == sum(m > 1 for _, m in expected)
    assert {conv["op"] for conv in report["depthwise"]} == {"qnn.conv2d"}
    assert report["inputs"][0]["dtype"] == "int8"
    assert [p["path"] for p in report["paths"]] == ["as_imported", "nchw"]
    for entry in report["paths"]:
        assert entry["errors"] == {}, entry["errors"]
        assert entry["latency_ms"]["on"] > 0 and entry["latency_ms"]["off"] > 0
        assert entry["on_off_max_abs_diff"] == 0  # bit-identical, patch on and off
    bound = 1 if report["reference"].startswith("LiteRT") else 0
    assert max(report["paths"][0]["max_abs_err"].values()) <= bound, report["reference"]
    wrong = report["max_abs_err"] > report["tolerance"]
    assert result.returncode == (1 if wrong else 0)
    if wrong:  # one line, naming the path, and that the patch is not the cause
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("canonicalize-depthwise: error: output differs")
        assert "converted to NCHW (patch on and off)" in lines[-1]
        assert "TVM without the patch computes this too" in lines[-1]
        assert "NHWC as imported (patch" not in lines[-1]  # that path is right
        assert report["path"] == "as_imported"  # the fastest of the paths that are right


def test_without_a_linker_builds_in_process(tmp_path):
    """Where the child cannot link the library it compiled (here: no working C compiler),
    the command compiles in its own process instead, and says so."""
    result = run(ONNX_FIXTURE, "--json", "--repeat", "1", cwd=tmp_path, env={"CXX": "/bin/false"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["paths"][0]["compiled_in_child"] == {"on": False, "off": False}
    assert report["max_abs_err"] < 1e-4
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# small ONNX models made here
def _onnx_model(path, batch="N", unsupported=False):
    """A depthwise conv (C=4, m=2) on input x [batch, 4, 8, 8]; optionally plus a HannWindow,
    an ONNX operator TVM 0.19's frontend does not convert."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).uniform(-1, 1, (8, 1, 3, 3)).astype("float32")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], group=4, pads=[1, 1, 1, 1], name="dw_conv")
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8, 8, 8])]
    initializers = [numpy_helper.from_array(weight, "w")]
    if unsupported:
        initializers.append(numpy_helper.from_array(np.array(16, "int64"), "size"))
        nodes.append(helper.make_node("HannWindow", ["size"], ["window"]))
        outputs.append(helper.make_tensor_value_info("window", TensorProto.FLOAT, [16]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4, 8, 8])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_dynamic_input_with_input_shape_and_no_engine(tmp_path):
    """--input-shapes fixes the dynamic batch; with ONNX Runtime hidden (a stub that fails to
    import), the patch-off build is the reference, and the report says so."""
    model = _onnx_model(tmp_path / "dynamic.onnx")
    stub = tmp_path / "stub" / "onnxruntime"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    pythonpath = os.pathsep.join(filter(None, [str(stub.parent), os.environ.get("PYTHONPATH")]))
    # tvmc's syntax, a shape a dimension at a time
    result = run(
        model,
        "--json",
        "--repeat",
        "1",
        "--input-shapes",
        "x:[1,4,8,8]",
        "--threads",
        "1",
        cwd=tmp_path,
        env={"PYTHONPATH": pythonpath},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["threads"] == 1
    assert report["inputs"][0]["shape"] == [1, 4, 8, 8]
    assert _report_pairs(report) == [(4, 2)]
    assert report["depthwise"][0]["name"] == "dw_conv"
    assert report["reference"].startswith("TVM, patch off") and "no engine" in report["reference"]
    assert report["max_abs_err"] < 1e-4


# ---------------------------------------------------------------------------------------------
# bad input: one line, status 2, no traceback, nothing written, nothing modified
def _bad_cases(tmp_path):
    tflite_blob, onnx_blob = _default_tflite().read_bytes(), ONNX_FIXTURE.read_bytes()
    noise = random.Random(15).randbytes(4096)
    files = {
        "truncated.tflite": tflite_blob[: len(tflite_blob) // 2],
        "truncated_tail.tflite": tflite_blob[:-1],
        "random.tflite": noise,
        "truncated.onnx": onnx_blob[: len(onnx_blob) // 2],
        "random.onnx": noise,
        "empty.onnx": b"",
        "model.pb": onnx_blob,
    }
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
    (tmp_path / "folder.tflite").mkdir()
    _onnx_model(tmp_path / "dynamic.onnx")
    _onnx_model(tmp_path / "unsupported.onnx", batch=1, unsupported=True)


BAD_CASES = {
    "missing": (["missing.tflite"], "no such file"),
    "directory": (["folder.tflite"], "is a directory"),
    "wrong extension": (["model.pb"], "unsupported file type"),
    "truncated tflite": (["truncated.tflite"], "damaged or truncated TFLite"),
    "truncated tflite tail": (["truncated_tail.tflite"], "damaged or truncated TFLite"),
    "random tflite": (["random.tflite"], "not a TFLite flatbuffer"),
    "truncated onnx": (["truncated.onnx"], "not an ONNX model"),
    "random onnx": (["random.onnx"], "not an ONNX model"),
    "empty onnx": (["empty.onnx"], "empty file"),
    "unsupported operator": (["unsupported.onnx"], "HannWindow"),
    "dynamic input": (["dynamic.onnx"], "--input-shapes 'x:["),
    "input-shape not NAME:DIMS": (["dynamic.onnx", "--input-shape", "x"], "NAME:D1,D2"),
    "input-shape letters": (["dynamic.onnx", "--input-shape", "x:1,a,8,8"], "positive integers"),
    "input-shape zero": (["dynamic.onnx", "--input-shape", "x:0,4,8,8"], "positive integers"),
    "input-shape unknown name": (["dynamic.onnx", "--input-shape", "y:1,4,8,8"], "no input 'y'"),
    "input-shape rank": (["dynamic.onnx", "--input-shape", "x:1,4,8"], "3 dimensions given"),
    "input-shapes tvmc letters": (
        ["dynamic.onnx", "--input-shapes", "x:[1,a,8,8]"],
        "input_name:[dim1,dim2",
    ),
    "input-shapes tvmc any": (
        ["dynamic.onnx", "--input-shapes", "x:[-1,4,8,8]"],
        "positive integers",
    ),
    "input-shapes twice": (
        ["dynamic.onnx", "--input-shapes", "x:[1,4,8,8]", "--input-shapes", "x:[2,4,8,8]"],
        "given twice",
    ),
    "input-shape fixed dim": (["dynamic.onnx", "--input-shape", "x:1,5,8,8"], "fixed to 4"),
    "bogus option": (["--bogus"], "unrecognized arguments"),
    "threads zero": (["--threads", "0"], "--threads must be at least 1"),
    "repeat not a number": (["--repeat", "zero"], "invalid int value"),
    "repeat zero": (["--repeat", "0"], "at least 1"),
    "bad target": (["--target", "no-such-target"], "--target"),
}


def _assert_usage_error(result, needle):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("canonicalize-depthwise: error:"), lines
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def _snapshot(directory):
    return {
        p.name: (
            p.is_dir() or hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
            stat.S_IMODE(p.stat().st_mode),
        )
        for p in directory.iterdir()
    }


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_one_line_exit_2(case, tmp_path):
    work, scratch = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    scratch.mkdir()
    _bad_cases(work)
    before = _snapshot(work)
    args, needle = BAD_CASES[case]
    result = run(*args, cwd=work, env={"TMPDIR": str(scratch)})
    _assert_usage_error(result, needle)
    assert _snapshot(work) == before  # nothing created, nothing the user passed modified
    assert not list(scratch.iterdir())


def test_bad_switch_is_one_line_exit_2(tmp_path):
    result = run("--json", env={"TVM_CANONICALIZE_DEPTHWISE": "maybe"}, cwd=tmp_path)
    _assert_usage_error(result, "TVM_CANONICALIZE_DEPTHWISE")


def _run_unprivileged(argv, cwd):
    """``canonicalize-depthwise ARGV`` as user ``nobody``, for a root user whom chmod 000 does
    not stop: a forked child drops to uid/gid 65534 and runs the command's ``main``. (A new
    interpreter cannot start as ``nobody`` here: Python is installed under root's home.)"""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            # pytest's capture objects stand in sys.stdout/err: write to the pipes instead
            sys.stdout = os.fdopen(out_write, "w")
            sys.stderr = os.fdopen(err_write, "w")
            os.chdir(cwd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = cli.main([str(a) for a in argv])
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException as err:  # pylint: disable=broad-except
            os.write(2, f"child failed: {err!r}\n".encode())
        os._exit(code)  # pylint: disable=protected-access
    os.close(out_write)
    os.close(err_write)
    with os.fdopen(out_read) as out, os.fdopen(err_read) as err:
        stdout, stderr = out.read(), err.read()
    _, status = os.waitpid(pid, 0)
    return subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(status), stdout, stderr)


def test_unreadable_file():
    # a directory every user can enter (pytest's tmp_path is private to its owner)
    work = Path(tempfile.mkdtemp(prefix="unreadable-"))
    try:
        work.chmod(0o755)
        model = work / "locked.onnx"
        shutil.copy(ONNX_FIXTURE, model)
        model.chmod(0)
        if os.geteuid() == 0:
            result = _run_unprivileged([model], cwd=work)
        else:
            result = run(model, cwd=work)
        _assert_usage_error(result, "permission denied")
        assert stat.S_IMODE(model.stat().st_mode) == 0
        assert sorted(p.name for p in work.iterdir()) == ["locked.onnx"]
    finally:
        shutil.rmtree(work)


def test_unreadable_file_permission_error(tmp_path, monkeypatch, capsys):
    """The error path of an unreadable file, for users (root) whom chmod 000 does not stop:
    ``open`` raises what it raises for others, and the command runs in this process."""
    model = tmp_path / "locked.onnx"
    shutil.copy(ONNX_FIXTURE, model)
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) == str(model):
            raise PermissionError(13, "Permission denied", str(model))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    assert cli.main([str(model)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"canonicalize-depthwise: error: {model}: permission denied\n"


if __name__ == "__main__":
    tvm.testing.main()
