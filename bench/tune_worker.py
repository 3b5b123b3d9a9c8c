"""Tunes one network path with AutoTVM or MetaSchedule; a subprocess of tune_networks.py.

    python bench/tune_worker.py NETWORK PATH TUNER TRIALS OUT

``PATH`` is a path of network_worker.py (``tflite_nhwc``, ``tflite_nchw``, ``onnx``), ``TUNER``
``autotvm`` or ``metaschedule``, ``TRIALS`` the trials per task (the same for stock and the
project), ``OUT`` the log file (AutoTVM) or work directory (MetaSchedule) to write. Stock TVM or
the project is up to ``TVM_CANONICALIZE_DEPTHWISE``, as for the other workers. Prints one JSON
object: the tasks (names, depthwise or not) and the tuning wall time in seconds.

AutoTVM: the conv2d tasks of ``extract_from_program`` on the host target, each tuned by the
random tuner (no cost model to install; the same for both) with AutoTVM's local builder and
runner, then its untuned configuration measured as one trial more (:func:`measure_fallback`).
MetaSchedule: the conv tasks of ``extract_tasks`` (as for AutoTVM: the other fused functions
keep TOPI's schedules, stock and project alike), each given ``TRIALS`` trials by
``tune_tasks`` with the replay-trace strategy (random schedules; no cost model to install).
Its default evolutionary search spends about 45 s a task on search whatever the trials (69
tasks of MobileNetV3-small, 52 min for one trial each), which the budget here cannot carry.
"""

# the benchmark's modules are imported once their directory is on sys.path
# pylint: disable=wrong-import-position
import json
import os
import sys
import time

from tvm import autotvm, relay
from tvm import meta_schedule as ms
from tvm.topi.nn.depthwise_form import conv2d_form

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from network_worker import import_module, tuning_target  # noqa: E402
from tvm_worker import host_target  # noqa: E402


def tune_autotvm(mod, params, target, trials, log):
    """Tunes the module's conv2d tasks with AutoTVM's random tuner into ``log``, each with its
    fallback measured too; ``(task names, depthwise task names)``."""
    tasks = autotvm.task.extract_from_program(mod["main"], params=params, target=target)
    option = autotvm.measure_option(
        builder=autotvm.LocalBuilder(timeout=60),
        runner=autotvm.LocalRunner(number=5, repeat=1, min_repeat_ms=50, timeout=20),
    )
    for task in tasks:
        tuner = autotvm.tuner.RandomTuner(task)
        tuner.tune(
            n_trial=min(trials, len(task.config_space)),
            measure_option=option,
            callbacks=[autotvm.callback.log_to_file(log)],
        )
        measure_fallback(task, option, log)
    return [task.name for task in tasks], [task.name for task in tasks if "depthwise" in task.name]


def fallback_config(task):
    """The configuration the task's template takes untuned, as a point of its space, or None."""
    fallback = autotvm.task.space.FallbackConfigEntity()
    with task.target, autotvm.task.ApplyConfig(fallback):
        task.func(*task.args)  # the template fills in its fallback knobs
    space, knob = task.config_space, []

    def _key(entity):  # a split's outer factor may be given or -1
        size = getattr(entity, "size", None)
        return str(size[1:]) if size is not None else str(entity)

    for name, sub in space.space_map.items():
        # pylint: disable=protected-access
        wanted = _key(fallback._entity_map.get(name))
        found = [i for i, entity in enumerate(sub.entities) if _key(entity) == wanted]
        if not found:
            return None
        knob.append(found[0])
    return space.get(space.knob2point(knob))


def measure_fallback(task, option, log):
    """Measure the untuned configuration too and log it: the tuned pick (the fastest measured)
    is then never one measured slower than what the build takes untuned. Done for stock and
    the project alike: one trial more per task."""
    config = fallback_config(task)
    if config is None:
        return
    measure_batch = autotvm.measure.create_measure_batch(task, option)
    inputs = [autotvm.MeasureInput(task.target, task, config)]
    results = measure_batch(inputs)
    autotvm.callback.log_to_file(log)(None, inputs, results)
    del measure_batch


def tune_metaschedule(mod, params, target, trials, work_dir):
    """Tunes the module's conv tasks with MetaSchedule (replay-trace, random cost model) in
    ``work_dir``; ``(task names, depthwise task names)``."""
    tasks = [
        task
        for task in ms.relay_integration.extract_tasks(mod, target, params)
        if "conv2d" in task.task_name
    ]
    contexts, weights = ms.relay_integration.extracted_tasks_to_tune_contexts(
        tasks, work_dir, strategy="replay-trace", seed=0
    )
    ms.tune.tune_tasks(
        tasks=contexts,
        task_weights=weights,
        work_dir=work_dir,
        max_trials_global=trials * len(tasks),
        max_trials_per_task=trials,
        num_trials_per_iter=min(trials, 16),
        cost_model="random",
    )
    return [task.task_name for task in tasks], [
        task.task_name for task in tasks if _depthwise(task.mod)
    ]


def _depthwise(mod):
    """Whether a task's fused function holds a depthwise conv, in either form."""
    found = []

    def visit(node):
        if isinstance(node, relay.Call) and getattr(node.op, "name", "") in (
            "nn.conv2d",
            "nn.contrib_depthwise_conv2d_NCHWc",
        ):
            if node.op.name != "nn.conv2d":
                found.append(node)
                return
            data, kernel = (arg.checked_type.shape for arg in node.args)
            a = node.attrs
            if conv2d_form(data, a.data_layout, kernel, a.kernel_layout, a.groups).is_depthwise:
                found.append(node)

    mod = relay.transform.InferType()(mod)
    for func in mod.functions.values():
        relay.analysis.post_order_visit(func, visit)
    return bool(found)


def main(argv):
    """Tunes one network path (``argv``: NETWORK PATH TUNER TRIALS OUT); prints the answer."""
    network, path, tuner, trials, out = argv
    mod, params, _, _ = import_module(network, path)
    target = tuning_target(host_target(), tuner)
    start = time.time()
    tune = tune_autotvm if tuner == "autotvm" else tune_metaschedule
    names, depthwise = tune(mod, params, target, int(trials), out)
    elapsed = round(time.time() - start, 1)
    answer = {"tasks": names, "depthwise": depthwise, "tuning_s": elapsed, "target": str(target)}
    print(json.dumps(answer))


if __name__ == "__main__":
    main(sys.argv[1:])
