"""Tuning databases that record every lookup a build makes (AutoTVM's and MetaSchedule's);
shared by the tests."""

from tvm import meta_schedule as ms
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


@ms.utils.derived_object
class RecordingDatabase(ms.database.PyDatabase):
    """A MetaSchedule database that delegates to another, recording each schedule lookup."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.lookups = []

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

    def query_tuning_record(self, mod, target, workload_name):
        record = self.inner.query_tuning_record(mod, target, workload_name)
        self.lookups.append((workload_name, record is not None))
        return record

    def __len__(self):
        return len(self.inner)
