# Licensed to the Apache Software Foundation (ASF) under one
# or more contributor license agreements.  See the NOTICE file
# distributed with this work for additional information
# regarding copyright ownership.  The ASF licenses this file
# to you under the Apache License, Version 2.0 (the
# "License"); you may not use this file except in compliance
# with the License.  You may obtain a copy of the License at
#
#   http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing,
# software distributed under the License is distributed on an
# "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
# KIND, either express or implied.  See the License for the
# specific language governing permissions and limitations
# under the License.
"""The hand-written depthwise schedule as a candidate of a MetaSchedule-tuned Relay build.

MetaSchedule's records are TIR schedule traces; TOPI's depthwise schedule is a TE schedule, so
the tuner cannot measure it as one of its own candidates. :func:`prefer_hand_written` compares
them after tuning instead: for each depthwise task of the network that has a tuned record, it
builds the task's fused function twice, with the record and with the hand-written schedule,
times both on the same device, and returns a database that answers like the tuned one except
for the tasks where the hand-written schedule was faster. There it answers nothing, and
``compile_relay`` builds those tasks with the hand-written schedule (TVM's fallback for a
workload the database does not hold). Tuning then never makes a depthwise convolution slower
than it is untuned.

Usage, between ``tune_relay`` and ``compile_relay``::

    database = ms.relay_integration.tune_relay(mod, params, target, work_dir, ...)
    database, choices = prefer_hand_written(database, mod, target, params)
    lib = ms.relay_integration.compile_relay(database, mod, target, params)
"""

from dataclasses import dataclass

import numpy as np

import tvm
from tvm import relay
from tvm.contrib import graph_executor

from . import relay_integration
from .database import PyDatabase
from .utils import derived_object

_DEPTHWISE_OPS = ("nn.contrib_depthwise_conv2d_NCHWc",)


@dataclass(frozen=True)
class Choice:
    """What :func:`prefer_hand_written` decided for one depthwise task."""

    task: str
    tuned_ms: float
    hand_written_ms: float

    @property
    def hand_written(self):
        """Whether the build takes the hand-written schedule for this task."""
        return self.hand_written_ms < self.tuned_ms


@derived_object
class HandWrittenWhereFaster(PyDatabase):
    """A database that answers like ``inner``, but not for the workloads in ``hidden`` (the
    structural hashes of their TIR modules): those are built with the hand-written schedule."""

    def __init__(self, inner, hidden):
        super().__init__()
        self.inner = inner
        self.hidden = frozenset(hidden)
        self.lookups = []  # (workload name, whether a record was answered), in query order

    def has_workload(self, mod):
        return self.inner.has_workload(mod)

    def commit_workload(self, mod):
        return self.inner.commit_workload(mod)

    def commit_tuning_record(self, record):
        self.inner.commit_tuning_record(record)

    def get_top_k(self, workload, top_k):
        return self.inner.get_top_k(workload, top_k)

    def get_all_tuning_records(self):
        return self.inner.get_all_tuning_records()

    def query_tuning_record(self, mod, target, workload_name=None):
        record = self.inner.query_tuning_record(mod, target, workload_name)
        if record is not None and tvm.ir.structural_hash(record.workload.mod) in self.hidden:
            record = None
        self.lookups.append((workload_name, record is not None))
        return record

    def __len__(self):
        return len(self.inner)


def is_depthwise_function(func):
    """Whether a fused Relay function holds a depthwise convolution (canonical, any layout,
    or x86's packed depthwise op)."""
    from tvm.topi.nn.depthwise_form import is_depthwise  # pylint: disable=import-outside-toplevel

    found = []

    def visit(node):
        if not isinstance(node, relay.Call) or not isinstance(node.op, tvm.ir.Op):
            return
        if node.op.name in _DEPTHWISE_OPS:
            found.append(node)
        elif node.op.name == "nn.conv2d":
            data, kernel = (arg.checked_type for arg in node.args)
            attrs = node.attrs
            layouts = (attrs.data_layout, attrs.kernel_layout, attrs.groups)
            if is_depthwise(data.shape, layouts[0], kernel.shape, layouts[1], layouts[2]):
                found.append(node)

    relay.analysis.post_order_visit(func, visit)
    return bool(found)


def _standalone(task):
    """The task's fused function (its module's only one) as the ``main`` of a module."""
    (func,) = task.mod.functions.values()
    return tvm.IRModule.from_expr(relay.Function(func.params, func.body, func.ret_type))


def _time_ms(lib, mod, dev, number, repeat):
    module = graph_executor.GraphModule(lib["default"](dev))
    rng = np.random.default_rng(0)
    for param in mod["main"].params:
        shape = [int(d) for d in param.checked_type.shape]
        value = rng.uniform(-1, 1, shape).astype(param.checked_type.dtype)
        module.set_input(param.name_hint, value)
    timer = module.module.time_evaluator("run", dev, number=number, repeat=repeat)
    return float(np.median(timer().results)) * 1e3


def prefer_hand_written(database, mod, target, params=None, number=20, repeat=5):
    """``(database, choices)``: a database for ``compile_relay`` that keeps the hand-written
    schedule of each depthwise task of ``mod`` where it runs faster than the tuned record,
    and the :class:`Choice` made for each such task whose record applies.

    Both builds of a task are timed on the local CPU, which must be the target's machine
    (another target raises ``ValueError``).
    """
    target = tvm.target.Target(target)
    triple = str(target.attrs.get("mtriple", "")) if target.kind.name == "llvm" else None
    host = tvm.target.codegen.llvm_get_system_triple()
    if triple is None or (triple and triple.split("-")[0] != host.split("-")[0]):
        raise ValueError(
            f"prefer_hand_written times both schedules on this machine ({host}); "
            f"target {target} does not run here"
        )
    dev = tvm.cpu()
    tasks = relay_integration.extract_tasks(mod, target, params or {})
    hidden, choices = [], []
    for task in tasks:
        alone = relay.transform.InferType()(_standalone(task))
        if not is_depthwise_function(alone["main"]):
            continue
        tir_mod = task.dispatched[0]
        record = database.query_tuning_record(tir_mod, target, task.task_name)
        if record is None:
            continue
        probe = HandWrittenWhereFaster(database, ())
        tuned = relay_integration.compile_relay(probe, alone, target, {})
        if not any(found for _, found in probe.lookups):
            continue  # the record did not apply to the function alone: nothing to compare
        with target, tvm.transform.PassContext(opt_level=3):
            hand = relay.build(alone, target=target)
        choice = Choice(
            task.task_name,
            _time_ms(tuned, alone, dev, number, repeat),
            _time_ms(hand, alone, dev, number, repeat),
        )
        choices.append(choice)
        if choice.hand_written:
            hidden.append(tvm.ir.structural_hash(record.workload.mod))
    return HandWrittenWhereFaster(database, hidden), choices
