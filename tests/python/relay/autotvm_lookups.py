"""AutoTVM's ApplyHistoryBest with a record of every lookup a build makes (shared by tests)."""
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
