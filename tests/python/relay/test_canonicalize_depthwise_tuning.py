"""Tuned workflows with the patch: one task per depthwise workload, and every tuned record used.

Each tuner (AutoTVM, auto_scheduler, MetaSchedule) tunes a tiny network for a few trials, then
the network is built with the records and every lookup of a depthwise workload must hit. The
patch reaches TVM's C++ pipelines (MetaSchedule's task extraction) through its legalize
registration. What runs is built for AVX2 with two cores named (runs on every host of the
project, decisions never read the host).
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import tvm
import tvm.testing
from tvm import auto_scheduler, autotvm, relay
from tvm import meta_schedule as ms
from tvm.contrib import graph_executor
from tvm.meta_schedule import hand_written
from tvm.topi.testing import depthwise_conv2d_canonical_python as ref
from tvm_canonicalize_depthwise import ENV_VAR

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
from host_isa import PORTABLE_TARGETS  # noqa: E402  pylint: disable=wrong-import-position
from tuning_lookups import (  # noqa: E402  pylint: disable=wrong-import-position
    RecordingDatabase,
    RecordingHistory,
)

TARGET = PORTABLE_TARGETS["avx2"]
ARM_TARGET = "llvm -device=arm_cpu -mtriple=aarch64-linux-gnu -mattr=+neon"
LAYOUTS = [("NCHW", "OIHW"), ("NHWC", "HWOI"), ("NHWC", "HWIO")]
C, M, SIZE = 8, 2, 12


def _canonical_weight(channels=C, multiplier=M, kernel=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (channels * multiplier, 1, kernel, kernel)).astype("float32")


def _conv(x, canonical, form, data_layout, kernel_layout, channels=C):
    """A depthwise conv of ``canonical`` (OIHW ``[C*m, 1, k, k]``) given in ``form``."""
    out_channels, _, kernel, _ = canonical.shape
    oihw = canonical.reshape(channels, -1, kernel, kernel) if form == "multiplier" else canonical
    return relay.nn.conv2d(
        x,
        relay.const(ref.to_layout(oihw, "OIHW", kernel_layout)),
        groups=channels,
        channels=out_channels,
        kernel_size=(kernel, kernel),
        padding=(1, 1),
        data_layout=data_layout,
        kernel_layout=kernel_layout,
    )


def _input_shape(data_layout, channels=C, size=SIZE):
    return (1, channels, size, size) if data_layout == "NCHW" else (1, size, size, channels)


def _forms_net(forms, data_layout, kernel_layout):
    """The same depthwise conv + ReLU once for each of ``forms``, each its own output."""
    x = relay.var("x", shape=_input_shape(data_layout))
    outs = [
        relay.nn.relu(_conv(x, _canonical_weight(), form, data_layout, kernel_layout))
        for form in forms
    ]
    body = outs[0] if len(outs) == 1 else relay.Tuple(outs)
    return tvm.IRModule.from_expr(relay.Function([x], body))


def _expected(data, data_layout, multiplier=M):
    nchw = data if data_layout == "NCHW" else ref.to_layout(data, "NHWC", "NCHW")
    out = np.maximum(
        ref.depthwise_conv2d_nchw(
            nchw, _canonical_weight(multiplier=multiplier), padding=(1, 1, 1, 1)
        ),
        0,
    )
    return out if data_layout == "NCHW" else ref.to_layout(out, "NCHW", "NHWC")


def _run(lib, data):
    module = graph_executor.GraphModule(lib["default"](tvm.cpu()))
    module.set_input("x", data)
    module.run()
    return module.get_output(0).numpy()


def _data(data_layout, channels=C, size=SIZE):
    shape = _input_shape(data_layout, channels, size)
    return np.random.default_rng(1).uniform(-1, 1, shape).astype("float32")


# ---- one task per workload ---------------------------------------------------------------


def _autotvm_depthwise_tasks(mod):
    tasks = autotvm.task.extract_from_program(mod, params={}, target=TARGET)
    return [task.args[1][1] for task in tasks if "depthwise" in task.name]


def _auto_scheduler_tasks(mod):
    tasks, _ = auto_scheduler.extract_tasks(mod["main"], {}, TARGET)
    return [task.workload_key for task in tasks]


def _metaschedule_weights(mod, **kwargs):
    tasks = ms.relay_integration.extract_tasks(mod, TARGET, {}, **kwargs)
    weights = []
    for task in tasks:
        func = list(task.mod.functions.values())[0]
        weights.append(tuple(int(e) for e in func.params[1].checked_type.shape))
    return weights


@pytest.mark.parametrize("data_layout,kernel_layout", LAYOUTS)
def test_both_forms_make_one_canonical_task_in_every_tuner(monkeypatch, data_layout, kernel_layout):
    both = _forms_net(("multiplier", "canonical"), data_layout, kernel_layout)
    canonical = tuple(ref.to_layout(_canonical_weight(), "OIHW", kernel_layout).shape)
    assert _autotvm_depthwise_tasks(both) == [canonical]
    assert len(_auto_scheduler_tasks(both)) == 1
    assert _metaschedule_weights(both) == [canonical]
    # a multiplier-form conv alone is tuned as the canonical one it is built as
    alone = _forms_net(("multiplier",), data_layout, kernel_layout)
    assert _metaschedule_weights(alone) == [canonical]
    # never more tasks than stock (which, in MetaSchedule, has one for each form)
    monkeypatch.setenv(ENV_VAR, "0")
    if data_layout == "NCHW":  # stock's x86 strategy asserts on NHWC canonical depthwise
        assert len(_metaschedule_weights(both)) == 2


def test_the_cpp_pipeline_follows_the_switch_and_the_pass_context(monkeypatch):
    mod = _forms_net(("multiplier",), "NCHW", "OIHW")
    multiplier_form, canonical = (C, M, 3, 3), (C * M, 1, 3, 3)
    assert _metaschedule_weights(mod) == [canonical]
    assert _metaschedule_weights(mod, disabled_pass=["CanonicalizeDepthwise"]) == [multiplier_form]
    assert _metaschedule_weights(mod, opt_level=2) == [multiplier_form]
    monkeypatch.setenv(ENV_VAR, "0")
    assert _metaschedule_weights(mod) == [multiplier_form]


def test_legalize_canonicalizes_where_the_pass_did_not_run():
    # relay.optimize runs the pass first; TVM's own Legalize pass, run alone, does the same
    mod = relay.transform.InferType()(_forms_net(("multiplier",), "NHWC", "HWOI"))
    with tvm.transform.PassContext(opt_level=3):
        legal = relay.transform.Legalize()(mod)
    expected = relay.transform.InferType()(_forms_net(("canonical",), "NHWC", "HWOI"))
    tvm.ir.assert_structural_equal(legal, expected)
    with tvm.transform.PassContext(opt_level=3, disabled_pass=["CanonicalizeDepthwise"]):
        tvm.ir.assert_structural_equal(relay.transform.Legalize()(mod), mod)


# ---- AutoTVM: tuned configs found, on the packed path too --------------------------------


def _separable_net(channels=32, size=14):
    """NCHW 1x1 conv -> depthwise 3x3 -> 1x1 conv: x86 packs all three (NCHW{b}c)."""
    rng = np.random.default_rng(2)
    pointwise = [
        rng.uniform(-1, 1, shape).astype("float32")
        for shape in ((channels, 8, 1, 1), (16, channels, 1, 1))
    ]
    depthwise = _canonical_weight(channels, 1)
    x = relay.var("x", shape=(1, 8, size, size))
    y = relay.nn.relu(
        relay.nn.conv2d(x, relay.const(pointwise[0]), kernel_size=(1, 1), channels=channels)
    )
    y = relay.nn.relu(_conv(y, depthwise, "canonical", "NCHW", "OIHW", channels))
    y = relay.nn.conv2d(y, relay.const(pointwise[1]), kernel_size=(1, 1), channels=16)
    mod = tvm.IRModule.from_expr(relay.Function([x], y))

    def expected(data):
        first = np.maximum(np.einsum("oc,nchw->nohw", pointwise[0][:, :, 0, 0], data), 0)
        second = np.maximum(ref.depthwise_conv2d_nchw(first, depthwise, padding=(1,) * 4), 0)
        return np.einsum("oc,nchw->nohw", pointwise[1][:, :, 0, 0], second)

    return mod, expected


def _autotvm_tune(tasks, log, trials=3, runner=None):
    runner = runner or autotvm.LocalRunner(number=1, repeat=1, timeout=20)
    option = autotvm.measure_option(builder=autotvm.LocalBuilder(timeout=60), runner=runner)
    for task in tasks:
        tuner = autotvm.tuner.GridSearchTuner(task)
        tuner.tune(
            n_trial=trials,
            measure_option=option,
            callbacks=[autotvm.callback.log_to_file(str(log))],
        )


def _autotvm_tuned_build(mod, tasks, log):
    """Tune ``tasks`` into ``log``, then build ``mod`` with it: ``(lib, the lookups made)``."""
    _autotvm_tune(tasks, log)
    history = RecordingHistory(str(log))
    with history, tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=TARGET)
    return lib, history


def _depthwise_lookups(history):
    return [found for name, found in history.lookups if "depthwise" in name]


def test_autotvm_tuned_depthwise_is_found_after_packing(tmp_path):
    mod, expected = _separable_net()
    tasks = autotvm.task.extract_from_program(mod, params={}, target=TARGET)
    depthwise = [task for task in tasks if "depthwise" in task.name]
    # the layer alter-layout packs is tuned as it is built: packed
    assert [task.name for task in depthwise] == ["depthwise_conv2d_canonical_packed.x86"]
    lib, history = _autotvm_tuned_build(mod, depthwise, tmp_path / "autotvm.log")
    names = {name for name, _ in history.lookups}
    # looked up as the NCHW layer, then as the packed call alter-layout made of it: all found
    assert {"depthwise_conv2d_canonical_packed.x86", "depthwise_conv2d_canonical.x86"} <= names
    assert all(_depthwise_lookups(history)), history.lookups
    data = _data("NCHW", 8, 14)
    tvm.testing.assert_allclose(_run(lib, data), expected(data), rtol=1e-4, atol=1e-4)


def test_autotvm_packed_layer_without_alter_layout_computes_right():
    # opt_level 2 (no alter-layout) builds the packed template with its packing and unpacking
    mod, expected = _separable_net()
    with tvm.transform.PassContext(opt_level=2):
        lib = relay.build(mod, target=TARGET)
    data = _data("NCHW", 8, 14)
    tvm.testing.assert_allclose(_run(lib, data), expected(data), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("data_layout,kernel_layout", [("NHWC", "HWOI"), ("NCHW", "OIHW")])
def test_autotvm_tuned_multiplier_form_is_found(tmp_path, data_layout, kernel_layout):
    mod = _forms_net(("multiplier",), data_layout, kernel_layout)
    tasks = autotvm.task.extract_from_program(mod, params={}, target=TARGET)
    assert [task.name for task in tasks] == ["depthwise_conv2d_canonical.x86"]
    lib, history = _autotvm_tuned_build(mod, tasks, tmp_path / "autotvm.log")
    assert _depthwise_lookups(history) and all(_depthwise_lookups(history)), history.lookups
    data = _data(data_layout)
    tvm.testing.assert_allclose(_run(lib, data), _expected(data, data_layout), rtol=1e-4, atol=1e-4)


# ---- auto_scheduler and MetaSchedule: tuned records found ---------------------------------


class _RecordingAutoScheduler(auto_scheduler.ApplyHistoryBest):
    """auto_scheduler's ApplyHistoryBest, recording whether each lookup found a record."""

    def __init__(self, records):
        super().__init__(records)
        self.lookups = []

    def _query_inside(self, target, workload_key, func_name):
        state = super()._query_inside(target, workload_key, func_name)
        self.lookups.append((func_name, state is not None))
        return state


def _paths():
    """Each path a tuned depthwise conv takes: ``{name: (mod, data, expected)}``."""
    paths = {}
    for data_layout, kernel_layout in (("NHWC", "HWOI"), ("NCHW", "OIHW")):
        data = _data(data_layout)
        paths[f"{data_layout.lower()}_multiplier_form"] = (
            _forms_net(("multiplier",), data_layout, kernel_layout),
            data,
            _expected(data, data_layout),
        )
    mod, expected = _separable_net()
    data = _data("NCHW", 8, 14)
    paths["nchw_packed"] = (mod, data, expected(data))
    return paths


PATHS = _paths()


def _depthwise_found(lookups, path):
    """Whether each lookup of a depthwise function found a record. The fused function of the
    packed path is named after its op (``..._contrib_depthwise_conv2d_NCHWc...``); the other
    paths hold nothing but the depthwise conv (``fused_nn_conv2d_nn_relu``)."""
    return [found for name, found in lookups if path != "nchw_packed" or "depthwise" in name]


@pytest.mark.parametrize("path", PATHS)
def test_auto_scheduler_tuned_depthwise_is_found(tmp_path, path):
    mod, data, expected = PATHS[path]
    tasks, weights = auto_scheduler.extract_tasks(mod["main"], {}, TARGET)
    log = str(tmp_path / "ansor.json")
    tuner = auto_scheduler.TaskScheduler(tasks, weights, callbacks=[])  # no file in the cwd
    tuner.tune(
        auto_scheduler.TuningOptions(
            num_measure_trials=2 * len(tasks),
            runner=auto_scheduler.LocalRunner(repeat=1, timeout=20),
            measure_callbacks=[auto_scheduler.RecordToFile(log)],
            verbose=0,
        ),
        search_policy="sketch.random",
    )
    history = _RecordingAutoScheduler(log)
    with (
        history,
        tvm.transform.PassContext(opt_level=3, config={"relay.backend.use_auto_scheduler": True}),
    ):
        lib = relay.build(mod, target=TARGET)
    found = _depthwise_found(history.lookups, path)
    assert found and all(found), history.lookups
    tvm.testing.assert_allclose(_run(lib, data), expected, rtol=1e-4, atol=1e-4)


def metaschedule_tune(mod, work_dir, runner="local"):
    """MetaSchedule's tune_relay, four trials a task, random schedules and cost model (no
    xgboost)."""
    tasks = ms.relay_integration.extract_tasks(mod, TARGET, {})
    return ms.relay_integration.tune_relay(
        mod,
        {},
        TARGET,
        str(work_dir),
        max_trials_global=4 * len(tasks),
        max_trials_per_task=4,
        num_trials_per_iter=4,
        cost_model="random",
        # random schedules: the evolutionary search spends most of a test on search alone
        strategy="replay-trace",
        runner=runner,
    )


def _measured(database):
    """The records of ``database`` that ran (a failed run is recorded as 1e10 seconds)."""
    return [
        rec
        for rec in database.get_all_tuning_records()
        if rec.run_secs and float(rec.run_secs[0]) < 1e9
    ]


def metaschedule_build(mod, database):
    """compile_relay through a :class:`RecordingDatabase`; returns (lib, lookups)."""
    recording = RecordingDatabase(database)
    lib = ms.relay_integration.compile_relay(recording, mod, TARGET, {})
    return lib, recording.lookups


@pytest.mark.parametrize("path", PATHS)
def test_metaschedule_tuned_depthwise_is_found(tmp_path, path):
    mod, data, expected = PATHS[path]
    database = metaschedule_tune(mod, tmp_path)
    assert _measured(database)
    lib, lookups = metaschedule_build(mod, database)
    found = _depthwise_found(lookups, path)
    assert found and all(found), lookups
    tvm.testing.assert_allclose(_run(lib, data), expected, rtol=1e-4, atol=1e-4)
    # the hand-written schedule as a candidate: the build takes whichever of the two ran faster
    chosen, choices = hand_written.prefer_hand_written(database, mod, TARGET, {})
    assert len(choices) == 1, choices  # the one depthwise task, compared
    lib = ms.relay_integration.compile_relay(chosen, mod, TARGET, {})
    found = _depthwise_found(chosen.lookups, path)
    assert found and all(f != choices[0].hand_written for f in found), (choices, chosen.lookups)
    tvm.testing.assert_allclose(_run(lib, data), expected, rtol=1e-4, atol=1e-4)
    # and where the hand-written one is taken, the build computes the same numbers
    every = [tvm.ir.structural_hash(r.workload.mod) for r in database.get_all_tuning_records()]
    hiding = hand_written.HandWrittenWhereFaster(database, every)
    lib = ms.relay_integration.compile_relay(hiding, mod, TARGET, {})
    found = _depthwise_found(hiding.lookups, path)
    assert found and not any(found), hiding.lookups
    tvm.testing.assert_allclose(_run(lib, data), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("target", [ARM_TARGET, "cuda"])
def test_the_hand_written_candidate_is_timed_only_where_the_target_runs(target):
    mod = PATHS["nchw_packed"][0]
    with pytest.raises(ValueError, match="does not run here"):
        hand_written.prefer_hand_written(ms.database.MemoryDatabase(), mod, target, {})


# ---- decisions from the target only --------------------------------------------------------

_CROSS_BUILD = """
import sys, numpy as np, tvm
from tvm import relay
x = relay.var("x", shape=(1, 32, 56, 56))
w = relay.const(np.ones((32, 2, 3, 3), "float32"))
for data_layout, kernel_layout, weight in (("NCHW", "OIHW", w),
        ("NHWC", "HWOI", relay.const(np.ones((3, 3, 32, 2), "float32")))):
    data = x if data_layout == "NCHW" else relay.var("x", shape=(1, 56, 56, 32))
    y = relay.nn.conv2d(data, weight, groups=32, channels=64, kernel_size=(3, 3),
                        padding=(1, 1), data_layout=data_layout, kernel_layout=kernel_layout)
    mod = tvm.IRModule.from_expr(relay.Function([data], relay.nn.relu(y)))
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=sys.argv[1])
    sys.stdout.write(lib.get_lib().get_source("ll"))
"""


@pytest.mark.parametrize("target", [ARM_TARGET, "llvm -mcpu=skylake-avx512"])
def test_cross_compiled_code_is_the_same_whatever_the_build_hosts_threads(target):
    if tvm.target.codegen.llvm_get_system_cpu() == "skylake-avx512" and "skylake" in target:
        target = "llvm -mcpu=znver3"  # a CPU other than the host's
    sources = []
    for threads in ("1", "2", "16"):
        env = {**os.environ, "TVM_NUM_THREADS": threads, "TOPHUB_LOCATION": "NONE"}
        result = subprocess.run(
            [sys.executable, "-c", _CROSS_BUILD, target],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        # TBAA metadata names buffers by their address in the compiling process
        sources.append(re.sub(r"0x[0-9a-f]+", "0x", result.stdout))
    assert "define" in sources[0]
    assert sources[0] == sources[1] == sources[2]


# ---- tuning on a fleet through TVM's RPC tracker (loopback only) ---------------------------

DEVICE_KEY = "depthwise-test-board"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def rpc_fleet(servers=2, timeout=60):
    """A TVM RPC tracker and ``servers`` RPC servers under one device key, on 127.0.0.1.

    Started as TVM's own ``tvm.exec`` programs, waited for until every server has registered
    (at most ``timeout`` seconds), and stopped on exit. Yields the tracker's port.
    """
    port = _free_port()
    env = {**os.environ, "TVM_NUM_THREADS": "1"}
    commands = [
        [
            sys.executable,
            "-m",
            "tvm.exec.rpc_tracker",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--port-end",
            str(port + 1),
            "--silent",
        ]
    ]
    for _ in range(servers):
        server_port = _free_port()
        commands.append(
            [
                sys.executable,
                "-m",
                "tvm.exec.rpc_server",
                "--host",
                "127.0.0.1",
                "--port",
                str(server_port),
                "--port-end",
                str(server_port + 1),
                "--tracker",
                f"127.0.0.1:{port}",
                "--key",
                DEVICE_KEY,
                "--silent",
            ]
        )
    processes = []
    try:
        # each in a process group of its own: a server's session workers are stopped with it
        processes.append(subprocess.Popen(commands[0], env=env, start_new_session=True))
        deadline = time.monotonic() + timeout
        _wait(lambda: tvm.rpc.connect_tracker("127.0.0.1", port).summary(), deadline)
        processes += [
            subprocess.Popen(command, env=env, start_new_session=True) for command in commands[1:]
        ]
        _wait(lambda: _free_servers(port) == servers or None, deadline)
        yield port
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            try:  # workers the server left
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _free_servers(port):
    summary = tvm.rpc.connect_tracker("127.0.0.1", port).summary()
    return summary["queue_info"].get(DEVICE_KEY, {}).get("free", 0)


def _wait(ready, deadline):
    while True:
        try:
            if ready():
                return
        except (tvm.TVMError, OSError, RuntimeError):
            pass
        assert time.monotonic() < deadline, "the RPC tracker or its servers did not start"
        time.sleep(0.5)


def test_tuning_through_the_rpc_tracker_is_used_by_a_local_build(tmp_path):
    mod = _forms_net(("multiplier",), "NHWC", "HWOI")
    data = _data("NHWC")
    with rpc_fleet() as port:
        # AutoTVM: measured on the servers the tracker hands out under the device key
        tasks = autotvm.task.extract_from_program(mod, params={}, target=TARGET)
        log = tmp_path / "autotvm.log"
        _autotvm_tune(
            tasks,
            log,
            runner=autotvm.RPCRunner(DEVICE_KEY, "127.0.0.1", port, number=1, repeat=1, timeout=30),
        )
        records = [rec for rec in autotvm.record.load_from_file(str(log)) if not rec[1].error_no]
        assert records
        # MetaSchedule's RPC runner, same tracker and key
        runner = ms.runner.RPCRunner(
            rpc_config=ms.runner.RPCConfig(
                tracker_host="127.0.0.1",
                tracker_port=port,
                tracker_key=DEVICE_KEY,
                session_timeout_sec=60,
            )
        )
        database = metaschedule_tune(mod, tmp_path / "ms", runner=runner)
        assert _measured(database)
    history = RecordingHistory(str(log))
    with history, tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=TARGET)
    assert _depthwise_lookups(history) and all(_depthwise_lookups(history)), history.lookups
    tvm.testing.assert_allclose(_run(lib, data), _expected(data, "NHWC"), rtol=1e-4, atol=1e-4)
    lib, lookups = metaschedule_build(mod, database)
    assert lookups and all(found for _, found in lookups), lookups
    tvm.testing.assert_allclose(_run(lib, data), _expected(data, "NHWC"), rtol=1e-4, atol=1e-4)


if __name__ == "__main__":
    tvm.testing.main()
