"""The ``canonicalize-depthwise`` command: the embedded model, JSON output, bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMAND = str(Path(sys.executable).parent / "canonicalize-depthwise")


def run(*args, env=None):
    return subprocess.run([COMMAND, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})}, check=False)


def test_default_model_json():
    result = run("--json", "--repeat", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rewritten"] == 3
    assert report["max_abs_err"] < 1e-3
    forms = [conv["form"] for conv in report["convs"]]
    assert forms == ["multiplier", "multiplier", "multiplier", "canonical"]
    assert {"NCHW/OIHW", "NHWC/HWOI"} <= {conv["layouts"] for conv in report["convs"]}
    assert report["latency_ms"]["patch_on"] > 0 and report["latency_ms"]["patch_off"] > 0


def test_default_model_text_report():
    result = run("--repeat", "2")
    assert result.returncode == 0, result.stderr
    assert "[16, 2, 3, 3] -> [32, 1, 3, 3]" in result.stdout
    assert "latency: patch on" in result.stdout


@pytest.mark.parametrize(
    "args,env",
    [
        (["--bogus"], None),
        (["--repeat", "zero"], None),
        (["--repeat", "0"], None),
        (["--json"], {"TVM_CANONICALIZE_DEPTHWISE": "maybe"}),
    ],
)
def test_bad_input_is_one_line_exit_2(args, env):
    result = run(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("canonicalize-depthwise: error:"), lines
    assert "Traceback" not in result.stderr


def test_bad_target_is_one_line_error():
    result = run("--target", "no-such-target")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("canonicalize-depthwise: error:")
    assert "Traceback" not in result.stderr
