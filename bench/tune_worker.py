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
MetaSchedule: ``tune_relay`` with ``TRIALS`` times the number of tasks as the global budget and
its random cost model.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from network_worker import import_module, tuning_target  # noqa: E402
from tvm_worker import host_target  # noqa: E402


def tune_autotvm(mod, params, target, trials, log):
    from tvm import autotvm

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
    return [task.name for task in tasks]


def fallback_config(task):
    """The configuration the task's template takes untuned, as a point of its space, or None."""
    from tvm import autotvm

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
    from tvm import autotvm

    config = fallback_config(task)
    if config is None:
        return
    measure_batch = autotvm.measure.create_measure_batch(task, option)
    inputs = [autotvm.MeasureInput(task.target, task, config)]
    results = measure_batch(inputs)
    autotvm.callback.log_to_file(log)(None, inputs, results)
    del measure_batch


def tune_metaschedule(mod, params, target, trials, work_dir):
    from tvm import meta_schedule as ms

    tasks = ms.relay_integration.extract_tasks(mod, target, params)
    ms.relay_integration.tune_relay(
        mod,
        params,
        target,
        work_dir,
        max_trials_global=trials * len(tasks),
        max_trials_per_task=trials,
        num_trials_per_iter=min(trials, 16),
        cost_model="random",
    )
    return [task.task_name for task in tasks]


def main(argv):
    network, path, tuner, trials, out = argv
    mod, params, _, _ = import_module(network, path)
    target = tuning_target(host_target(), tuner)
    start = time.time()
    tune = tune_autotvm if tuner == "autotvm" else tune_metaschedule
    names = tune(mod, params, target, int(trials), out)
    print(
        json.dumps(
            {"tasks": names, "tuning_s": round(time.time() - start, 1), "target": str(target)}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
