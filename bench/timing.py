"""Timing helpers shared by run.py and tvm_worker.py.

Thread pools keep spinning for a while after a parallel run (TVM's for about 0.1 s, ONNX
Runtime's briefly), and on a 2-core machine a spinning pool halves the speed of whatever runs
next. So after timing an engine its process waits with :func:`settle` until it is idle.
"""

import statistics
import time


def settle(window_s=0.01, busy_fraction=0.05, timeout_s=2.0):
    """Wait until this process (all its threads) uses under ``busy_fraction`` of one core
    over a ``window_s`` window, or ``timeout_s`` has passed."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        cpu = time.process_time()
        time.sleep(window_s)
        if time.process_time() - cpu < busy_fraction * window_s:
            return


def slice_timer(fn, slice_ms):
    """A function that times ``fn`` once for about ``slice_ms`` (a calibrated number of
    back-to-back calls, like TVM's time_evaluator) and returns ms per call."""

    def mean_ms(number):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) * 1e3 / number

    mean_ms(10)  # warm-up: first calls may start threads, pack weights, plan memory
    one_ms = min(mean_ms(10) for _ in range(3))
    number = max(1, int(slice_ms / max(one_ms, 1e-4)))
    return lambda: mean_ms(number)


def alternating_medians(timers, rounds):
    """Medians over ``rounds`` rounds of ``{label: timer()}``, each round calling every timer
    once in turn, so that all of them see the same machine noise."""
    samples = {label: [] for label in timers}
    for _ in range(rounds):
        for label, timer in timers.items():
            samples[label].append(timer())
    return {label: statistics.median(values) for label, values in samples.items()}
