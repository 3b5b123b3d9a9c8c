"""ARM at run time: the differential fuzzer's depthwise convs, cross-compiled for aarch64 with
the patch on and off (stock's arm_cpu implementations), run on the emulated board of
``tests/scripts/aarch64_board.py`` and checked against NumPy (and stock's builds with it).

Each shard draws its examples (float32, int8 and qnn int8; both forms, every layout pair,
fused epilogues), builds and exports them on the host, then runs them all in one emulated
process (TVM's RPC server hangs now and then under emulation; one process loading module after
module does not): see ``docs/arm.md``. ``ARM_FUZZ_EXAMPLES=N`` and ``ARM_FUZZ_SEED=S`` set
the number of examples and their seed (the campaign of ``docs/fuzzing.md``).
"""

# pytest fixtures are passed by name to the tests and fixtures that use them
# pylint: disable=redefined-outer-name
import functools
import json
import multiprocessing
import os
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

import tvm
import tvm.testing
from tvm import autotvm, tir
from tvm import meta_schedule as ms
from tvm.contrib import cc
from tvm_canonicalize_depthwise import building, cli, llvm_compat, models, planning, remote

from depthwise_fuzz import (
    ARM_TARGET,
    QNN,
    Case,
    build,
    build_and_export,
    cases,
    make_model,
    tolerance,
)
from tuning_lookups import RecordingDatabase, RecordingHistory

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import aarch64_board  # noqa: E402  pylint: disable=wrong-import-position

# CI's share (at least 100 examples), in shards the test runner's workers share out
ARM_EXAMPLES = int(os.environ.get("ARM_FUZZ_EXAMPLES", "100"))
# the campaign draws other examples than CI's by another seed
ARM_SEED = int(os.environ.get("ARM_FUZZ_SEED", "1000"))
SHARDS = 4
ARM_DTYPES = ("float32", "int8", QNN)
# int8 also for cores with the dot-product instructions (Armv8.2+), where stock's quantized
# strategies differ; the board's emulated CPU has them
DOTPROD_TARGET = str(ARM_TARGET).replace("-mattr=+neon", "-mattr=+neon,+dotprod")
DOTPROD_EXAMPLES = int(os.environ.get("ARM_DOTPROD_EXAMPLES", "12"))


@pytest.fixture(scope="session")
def board():
    """The emulated aarch64 board, set up once; skips the tests where it cannot be."""
    try:
        found = aarch64_board.setup()
    except aarch64_board.BoardUnavailable as error:
        pytest.skip(f"the emulated aarch64 board cannot be set up here: {error}")
    return found


def _draw(count, shard, dtypes=ARM_DTYPES):
    """``count`` cases of ``dtypes`` drawn by hypothesis, reproducibly per shard."""
    drawn = []

    @seed(ARM_SEED + shard)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases(dtypes=dtypes))
    def collect(case):
        """Keeps each case hypothesis draws."""
        drawn.append(case)

    collect()  # pylint: disable=no-value-for-parameter  # @given supplies ``case``
    return drawn


def _export(lib, path):
    lib.export_library(str(path), fcompile=cc.cross_compiler(aarch64_board.CROSS_CXX))


class _Builder:
    """Builds in a child process (spawned: TVM's thread pool does not survive a fork), started
    anew after a build aborts it."""

    ABORTED = "the build aborted the process"

    def __init__(self):
        self.pool = None

    def __call__(self, *args):
        if self.pool is None:
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return self.pool.submit(build_and_export, *args).result(timeout=900)
        except BrokenProcessPool:
            self.pool = None
            return self.ABORTED

    def close(self):
        """Shuts the child process down, if one is running."""
        if self.pool is not None:
            self.pool.shutdown()


def check_on_board(board, examples, workdir, seed_=0, target=ARM_TARGET):
    """Build each case with the patch on and off for ``target``, run both on ``board``; returns
    a report (dict) and raises AssertionError on a bug of the patch:

    * the patch fails to build a case that stock builds (a build that aborts the process is
      a failure);
    * a patch-on build fails to run on the board, or differs from NumPy.

    Stock's own failures to run or mismatches are reported (``stock_wrong``), not raised."""
    jobs, checks = [], []
    report = {
        "examples": len(examples),
        "on_ran": 0,
        "off_ran": 0,
        "both_failed": [],
        "stock_failed": [],
        "stock_wrong": [],
    }
    builder = _Builder()
    try:
        for index, case in enumerate(examples):
            errors = {}
            for patch_on in (True, False):
                library = workdir / f"{index}-{'on' if patch_on else 'off'}.so"
                errors[patch_on] = builder(
                    case, str(target), patch_on, library, aarch64_board.CROSS_CXX, seed_
                )
            if errors[True] is not None:
                assert (
                    errors[False] is not None
                ), f"stock TVM builds {case} for aarch64 but the patch fails: {errors[True]}"
                report["both_failed"].append((case, errors[False]))
                continue
            if errors[False] is not None:
                report["stock_failed"].append((case, errors[False]))
            _, _, inputs, expected = make_model(case, seed_)
            np.savez(workdir / f"{index}-in.npz", **inputs)
            for patch_on in (True, False):
                if errors[patch_on] is None:
                    name = f"{index}-{'on' if patch_on else 'off'}"
                    jobs.append(
                        (
                            workdir / f"{name}.so",
                            workdir / f"{index}-in.npz",
                            workdir / f"{name}-out.npz",
                        )
                    )
                    checks.append((case, patch_on, expected))
    finally:
        builder.close()
    # one emulated process runs them all; bounded, generous for the emulator
    errors = board.run_modules(jobs, timeout=120 + 5 * len(jobs))
    assert len(errors) == len(jobs)
    failures = []
    for (case, patch_on, expected), job, error in zip(checks, jobs, errors):
        problem = error
        if error is None:
            with np.load(job[2]) as out:
                actual = out["arr_0"]
            rtol, atol = tolerance(case)
            try:
                assert actual.shape == expected.shape, (actual.shape, expected.shape)
                np.testing.assert_allclose(actual.astype("float64"), expected, rtol=rtol, atol=atol)
            except AssertionError as mismatch:
                problem = str(mismatch).strip().splitlines()[0] or "mismatch"
        if problem is None:
            report["on_ran" if patch_on else "off_ran"] += 1
        elif patch_on:
            failures.append(f"{case}: {problem}")
        else:
            report["stock_wrong"].append((case, problem))
    assert not failures, "\n".join(failures)
    return report


@pytest.mark.parametrize("shard", range(SHARDS))
def test_random_depthwise_convs_run_right_on_the_aarch64_board(board, shard, tmp_path):
    examples = _draw(ARM_EXAMPLES // SHARDS + (shard < ARM_EXAMPLES % SHARDS), shard)
    report = check_on_board(board, examples, tmp_path)
    print(
        f"aarch64 shard {shard}: {report['examples']} examples, {report['on_ran']} patch-on "
        f"and {report['off_ran']} stock builds ran right; only stock failed to build: "
        f"{len(report['stock_failed'])} {sorted({e for _, e in report['stock_failed']})}; "
        f"both failed: {len(report['both_failed'])} "
        f"{sorted({e for _, e in report['both_failed']})}; stock wrong: {report['stock_wrong']}"
    )
    # most examples build and run with the patch; stock's builds run too where they exist
    assert report["on_ran"] >= 0.8 * len(examples), report
    assert report["off_ran"] > 0, report


# Bugs the fuzzing on the board found, each fixed; the cases are its examples.
ARM_REGRESSIONS = {
    # a qnn.conv2d in the multiplier form with a kernel layout QNN's canonicalization does not
    # take (IOHW, OIWH), NHWC data (campaign of 2026-12-07, seed 52000): stock's arm_cpu
    # legalization turns it into nn.conv2d (it counts C == O == groups as depthwise), but not
    # the canonical form the pass made of it ("qnn.conv2d supports only OIHW/HWIO/HWOI/OHWI
    # kernel data layout"). The pass now leaves such qnn convs as written.
    "qnn_iohw_kernel_nhwc": Case(
        3,
        23,
        11,
        10,
        5,
        (7, 3),
        (1, 1),
        (2, 2),
        (3, 0, 0, 0),
        "NHWC",
        "IOHW",
        QNN,
        "multiplier",
        "input",
        "relu",
        True,
    ),
    "qnn_oiwh_kernel_nhwc": Case(
        3,
        10,
        16,
        17,
        1,
        (7, 1),
        (2, 2),
        (3, 1),
        (2, 3, 0, 0),
        "NHWC",
        "OIWH",
        QNN,
        "multiplier",
        "constant",
        "none",
        True,
    ),
}


# The NEON decisions of the fallback, run: 8-bit data in vectors of 16 (widened in halves) and
# their blocks of fewer columns, channels last and first; a tall kernel over one output row,
# whose block takes several vectors along the row (docs/arm.md).
NEON_SCHEDULES = {
    "int8_nhwc_vectors_of_16": Case(
        1,
        32,
        1,
        20,
        20,
        (3, 3),
        (1, 1),
        (1, 1),
        (1, 1, 1, 1),
        "NHWC",
        "HWOI",
        "int8",
        "canonical",
        "constant",
        "none",
        True,
    ),
    "int8_nchw_rows_of_64": Case(
        1,
        4,
        2,
        9,
        56,
        (3, 3),
        (1, 1),
        (1, 1),
        (1, 1, 1, 1),
        "NCHW",
        "OIHW",
        "int8",
        "multiplier",
        "constant",
        "relu",
        True,
    ),
    "int8_nchw_tall_kernel": Case(
        1,
        8,
        4,
        22,
        32,
        (22, 1),
        (1, 1),
        (1, 1),
        (0, 0, 0, 0),
        "NCHW",
        "OIHW",
        "int8",
        "multiplier",
        "constant",
        "none",
        True,
    ),
    "qnn_nhwc_tall_kernel": Case(
        1,
        8,
        4,
        22,
        32,
        (22, 1),
        (1, 1),
        (1, 1),
        (0, 0, 0, 0),
        "NHWC",
        "HWOI",
        QNN,
        "multiplier",
        "constant",
        "none",
        True,
    ),
    "float32_nchw_tall_kernel": Case(
        1,
        8,
        4,
        22,
        32,
        (22, 1),
        (1, 1),
        (1, 1),
        (0, 0, 0, 0),
        "NCHW",
        "OIHW",
        "float32",
        "canonical",
        "input",
        "bias",
        True,
    ),
}


def test_neon_schedule_decisions_run_right_on_the_board(board, tmp_path):
    report = check_on_board(board, list(NEON_SCHEDULES.values()), tmp_path)
    assert report["on_ran"] == len(NEON_SCHEDULES), report


def test_int8_for_the_dotprod_target_runs_right_on_the_board(board, tmp_path):
    int8 = [case for case in NEON_SCHEDULES.values() if case.element_dtype == "int8"]
    examples = int8 + _draw(DOTPROD_EXAMPLES, SHARDS, dtypes=("int8", QNN))
    assert "+dotprod" in DOTPROD_TARGET
    report = check_on_board(board, examples, tmp_path, target=DOTPROD_TARGET)
    print(
        f"{DOTPROD_TARGET}: {len(examples)} examples, {report['on_ran']} patch-on and "
        f"{report['off_ran']} stock builds ran right; both failed: "
        f"{sorted({e for _, e in report['both_failed']})}; stock wrong: {report['stock_wrong']}"
    )
    # every case the patch does not run right is one stock cannot build either (raised above
    # otherwise); most run, stock's builds too where they exist
    assert report["on_ran"] + len(report["both_failed"]) == len(examples), report
    assert report["on_ran"] >= len(examples) // 2 and report["off_ran"] > 0, report


def test_fuzzer_regressions_on_the_board(board, tmp_path):
    report = check_on_board(board, list(ARM_REGRESSIONS.values()), tmp_path)
    # the patch builds both and they run right; stock builds them too, though its modules
    # stop at run time on a shape check (a negative extent: docs/arm.md)
    assert report["on_ran"] == len(ARM_REGRESSIONS), report
    assert not report["both_failed"] and not report["stock_failed"], report


# ---- the RPC workflow: the same board behind TVM's tracker, as a real board would be ------------
FIXTURES = Path(__file__).resolve().parents[1] / "frontend" / "fixtures"
ARM_COMMAND_TARGET = "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon"
KEY = "aarch64-test"


@pytest.fixture(scope="module")
def tracked_board(board):
    """The board's RPC server registered with a tracker on loopback; stopped after the
    module's tests."""
    with aarch64_board.tracker() as address, board.serve(address, KEY, threads=2):
        yield address


def test_the_command_runs_both_builds_on_a_device_behind_the_tracker(tracked_board, capsys):
    host, port = tracked_board
    code = cli.main(
        [
            "--target",
            ARM_COMMAND_TARGET,
            "--rpc-tracker",
            f"{host}:{port}",
            "--rpc-key",
            KEY,
            "--repeat",
            "1",
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["device"].startswith(KEY) and report["target"].startswith("llvm")
    for path in report["paths"]:
        # every build the patch makes runs on the device and agrees with the reference
        assert "on" not in path["errors"], path["errors"]
        assert path["latency_ms"]["on"] > 0
        assert path["max_abs_err"]["on"] <= report["tolerance"]
    # stock's arm_cpu NHWC build of this network fails in LLVM (docs/arm.md); nothing else may
    failed = {(p["path"], k) for p in report["paths"] for k in p["errors"]}
    assert failed <= {("as_imported", "off")}, failed
    assert ("nchw", "off") not in failed
    assert code == (1 if failed else 0)


def test_a_tflite_model_on_the_device_matches_tflite(tracked_board, tmp_path):
    """A TFLite model (depth multipliers 1, 2, 4), as imported (NHWC) and converted to NCHW,
    built with the patch on and off, run on the device through the tracker: against the TFLite
    interpreter's saved output. Stock's NHWC build fails in LLVM (docs/arm.md)."""
    model = models.read_model(str(FIXTURES / "dw_mix.tflite"))
    saved = np.load(FIXTURES / "dw_mix.npz")
    feeds = {model.inputs[0][0]: saved["dw_mix_input"]}
    mod = planning.import_model(model, models.resolve_shapes(model, {}))
    target = tvm.target.Target(ARM_COMMAND_TARGET)
    device = remote.Device(tracked_board, KEY, session_timeout=300)
    device.check()
    ran = []
    for path, path_mod in (("nhwc", mod), ("nchw", planning.to_nchw(mod))):
        for patch_on in (True, False):
            built = building.compile_in_child(
                path_mod, target, patch_on, str(tmp_path), aarch64_board.CROSS_CXX, local=False
            )
            if built.error is not None:
                assert (path, patch_on) == ("nhwc", False), built.error
                continue
            outputs, latencies, _ = device.measure(built, feeds, repeat=1)
            assert len(latencies) == 3 and min(latencies) > 0
            np.testing.assert_allclose(outputs[0], saved["dw_mix_tflite"], rtol=1e-4, atol=1e-4)
            ran.append((path, patch_on))
    assert {("nhwc", True), ("nchw", True), ("nchw", False)} <= set(ran)


def test_an_unknown_key_or_tracker_is_a_usage_error(tracked_board, capsys):
    host, port = tracked_board
    code = cli.main(
        [
            "--target",
            ARM_COMMAND_TARGET,
            "--rpc-tracker",
            f"{host}:{port}",
            "--rpc-key",
            "no-such-board",
        ]
    )
    assert code == 2 and "no device with key 'no-such-board'" in capsys.readouterr().err
    for argv, message in (
        (["--rpc-tracker", f"{host}:{port}", "--rpc-key", KEY], "needs --target"),
        (["--rpc-tracker", f"{host}:{port}"], "go together"),
        (
            ["--target", ARM_COMMAND_TARGET, "--rpc-tracker", "nowhere", "--rpc-key", KEY],
            "is not HOST:PORT",
        ),
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 2 and message in capsys.readouterr().err


def _assert_runs_right_on(board, lib, inputs, expected, workdir):
    """``lib`` (a relay.build result) run on the board matches ``expected``."""
    _export(lib, workdir / "tuned.so")
    np.savez(workdir / "in.npz", **inputs)
    errors = board.run_modules(
        [(workdir / "tuned.so", workdir / "in.npz", workdir / "out.npz")], timeout=300
    )
    assert errors == [None], errors
    with np.load(workdir / "out.npz") as out:
        np.testing.assert_allclose(out["arr_0"], expected, rtol=1e-5, atol=1e-5)


def _tuning_case(epilogue):
    """The depthwise conv the tuning tests tune on the board: NHWC, multiplier form, m = 2."""
    return Case(
        1,
        16,
        2,
        12,
        12,
        (3, 3),
        (1, 1),
        (1, 1),
        (1, 1, 1, 1),
        "NHWC",
        "HWOI",
        "float32",
        "multiplier",
        "constant",
        epilogue,
        True,
    )


def test_autotvm_tunes_an_arm_depthwise_task_on_the_board_and_the_build_uses_it(
    board, tracked_board, tmp_path
):
    """AutoTVM measures an arm_cpu depthwise task on the board through the tracker (a few
    trials: timings under emulation mean nothing, the workflow is the point); the build then
    finds the records, and the tuned library runs right on the board."""
    case = _tuning_case("bias_relu")
    mod, params, inputs, expected = make_model(case)
    tasks = [
        task
        for task in autotvm.task.extract_from_program(mod["main"], params=params, target=ARM_TARGET)
        if "depthwise" in task.name
    ]
    assert tasks
    log = tmp_path / "arm.log"
    host, port = tracked_board
    option = autotvm.measure_option(
        builder=autotvm.LocalBuilder(
            build_func=cc.cross_compiler(aarch64_board.CROSS_CXX), timeout=120
        ),
        runner=autotvm.RPCRunner(KEY, host, port, number=1, repeat=1, timeout=120),
    )
    for task in tasks:
        autotvm.tuner.GridSearchTuner(task).tune(
            n_trial=3, measure_option=option, callbacks=[autotvm.callback.log_to_file(str(log))]
        )
    measured = [
        result for _, result in autotvm.record.load_from_file(str(log)) if result.error_no == 0
    ]
    assert measured and all(min(result.costs) > 0 for result in measured)
    with RecordingHistory(str(log)) as history:
        lib = build(mod, ARM_TARGET, params, patch_on=True)
    found = [hit for name, hit in history.lookups if "depthwise" in name]
    assert found and all(found), history.lookups
    _assert_runs_right_on(board, lib, inputs, expected, tmp_path)


def test_stock_arm_int8_nhwc_conv_aborts_llvm(tmp_path):
    """Why the fuzzer builds in a child process: stock TVM 0.19 with LLVM 22 aborts the process
    building this int8 NHWC conv (one channel: groups 1, an ordinary conv) for arm_cpu, and so
    does the patch, which leaves such convs to stock. Fails when TVM or LLVM fixes it."""
    case = Case(
        2,
        1,
        1,
        19,
        1,
        (7, 3),
        (1, 1),
        (3, 1),
        (0, 3, 0, 3),
        "NHWC",
        "HWIO",
        "int8",
        "canonical",
        "input",
        "none",
        True,
    )
    script = tmp_path / "build.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = {[str(Path(__file__).parent), str(Path(__file__).parents[2])]!r}\n"
        "from depthwise_fuzz import *\n"
        f"mod, params, _, _ = make_model({case!r})\n"
        "build(mod, ARM_TARGET, params, sys.argv[1] == 'on')\n"
    )
    for switch in ("on", "off"):
        result = subprocess.run(
            [sys.executable, str(script), switch],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode < 0 or result.returncode == 134, result.stderr[-2000:]
        assert "Invalid cast" in result.stderr, result.stderr[-2000:]


def test_metaschedule_tunes_on_the_board_and_the_build_uses_it(board, tracked_board, tmp_path):
    """MetaSchedule's tune_relay measures the arm_cpu tasks on the board through the tracker
    (4 trials a task, a random cost model), its builder linking on the host; compile_relay then
    finds the conv's record, and the library runs right on the board."""
    case = _tuning_case("relu")
    mod, params, inputs, expected = make_model(case)
    target = tvm.target.Target(ARM_TARGET)
    host, port = tracked_board
    tasks = ms.relay_integration.extract_tasks(mod, target, params)
    assert [task.task_name for task in tasks] == ["fused_nn_conv2d_nn_relu"]
    database = ms.relay_integration.tune_relay(
        mod,
        params,
        target,
        str(tmp_path / "ms"),
        max_trials_global=4 * len(tasks),
        max_trials_per_task=4,
        num_trials_per_iter=4,
        cost_model="random",
        # random schedules: the evolutionary search spends most of a test on search alone
        strategy="replay-trace",
        builder=ms.builder.LocalBuilder(
            f_export=functools.partial(remote.cross_export, aarch64_board.CROSS_CXX)
        ),
        runner=ms.runner.RPCRunner(
            rpc_config=ms.runner.RPCConfig(
                tracker_host=host, tracker_port=port, tracker_key=KEY, session_timeout_sec=120
            )
        ),
    )
    measured = [
        rec
        for rec in database.get_all_tuning_records()
        if rec.run_secs and float(rec.run_secs[0]) < 1e9
    ]
    assert measured
    recording = RecordingDatabase(database)
    lib = ms.relay_integration.compile_relay(recording, mod, target, params)
    # the conv's record, looked up by its fused function's name, is found
    assert ("fused_nn_conv2d_nn_relu", True) in recording.lookups, recording.lookups
    _assert_runs_right_on(board, lib, inputs, expected, tmp_path)


def test_cast_before_broadcast_keeps_the_values_lane_by_lane():
    a = tir.decl_buffer((8,), "int8", name="a")
    b = tir.decl_buffer((8, 4), "int32", name="b")
    i = tir.Var("i", "int32")
    value = tir.Cast("int32x4", tir.Broadcast(tir.BufferLoad(a, [i]), 4))
    store = tir.BufferStore(b, value, [i, tir.Ramp(0, 1, 4)])
    func = tir.PrimFunc(
        [a.data, b.data], tir.For(i, 0, 8, tir.ForKind.SERIAL, store), buffer_map={}
    )
    mod = tvm.IRModule({"f": func})
    new = llvm_compat.cast_before_broadcast(mod)
    stored = new["f"].body.body.value
    assert isinstance(stored, tir.Broadcast) and stored.lanes == 4
    assert isinstance(stored.value, tir.Cast) and stored.value.dtype == "int32"
    tvm.ir.assert_structural_equal(stored.value.value, tir.BufferLoad(a, [i]))
    assert llvm_compat.cast_before_broadcast(new) is new  # nothing left to rewrite


def test_int8_taps_are_widened_before_they_are_broadcast(board, tmp_path, monkeypatch):
    """``llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon``: an int8 NCHW conv
    with m = 4 (a row of sums takes one broadcast weight tap) is compiled with its taps
    sign-extended as scalars (``ldrsb``, ``dup``), not broadcast as bytes and widened after
    (``ld1r {v.8b}``; before the vectors of 16: shifts, docs/arm.md), and runs right on the
    board."""
    case = Case(
        1,
        8,
        4,
        10,
        8,
        (5, 1),
        (1, 1),
        (1, 1),
        (0, 0, 0, 0),
        "NCHW",
        "OIHW",
        "int8",
        "multiplier",
        "constant",
        "none",
        True,
    )
    mod, params, inputs, expected = make_model(case)

    def byte_broadcasts():
        lib = build(mod, ARM_TARGET, params, patch_on=True)
        text = lib.get_lib().get_source("asm")
        return len(re.findall(r"ld1r\s+\{\s*v\d+\.(?:8b|16b)\s*\}", text)), lib

    widened, lib = byte_broadcasts()
    monkeypatch.setattr(llvm_compat, "cast_before_broadcast", lambda mod: mod)
    broadcast, _ = byte_broadcasts()
    assert widened == 0 < broadcast, (widened, broadcast)
    _assert_runs_right_on(board, lib, inputs, expected, tmp_path)


if __name__ == "__main__":
    tvm.testing.main()
