"""Tuning databases that record every lookup a build makes (AutoTVM's and MetaSchedule's);
shared by the tests."""

from tvm.meta_schedule import hand_written
from tvm.autotvm.task.dispatcher import ApplyHistoryBest


class RecordingHistory(ApplyHistoryBest):
    """AutoTVM's ApplyHistoryBest, recording each lookup: (template, found)."""

    def __init__(self, records):
        super().__init__(records)
        self.lookups = []

    def _query_inside(self, target, workload):
        cfg = super()._query_inside(target, workload)
        self.lookups.append((workload[0], cfg is not None))
        return cfg


def RecordingDatabase(inner):  # pylint: disable=invalid-name
    """A MetaSchedule database that delegates to ``inner``, recording each schedule lookup in
    ``lookups``: (workload name, found). The hand-written-schedule database hiding nothing."""
    return hand_written.HandWrittenWhereFaster(inner, ())
