"""The MetaSchedule database stays loadable when structurally equal tasks name their blocks
differently (the encoder's token means, `lv247_red` / `lv271_red`): results/int8/README.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tvm
import tvm_ffi
from tvm import relax, te
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms

from edgebench.compile.tuning import _DATABASES, open_database, tune
from edgebench.targets import find_target


def _sum(t, block: str):
    k = te.reduce_axis((0, 64), name="k")
    return te.compute((128,), lambda i: te.sum(t[i, k], axis=k), name=block)


def _prim(block: str) -> tvm.IRModule:
    x = te.placeholder((128, 64), "float32", name="x")
    return tvm.IRModule({"main": te.create_prim_func([x, _sum(x, block)])})


def _relax(block: str) -> tvm.IRModule:
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((128, 64), "float32"))
    with bb.function("main", [x]):
        y = bb.emit_te(lambda t: _sum(t, block), x, primfunc_name_hint=f"sum_{block}")
        bb.emit_func_output(y)
    return bb.get()


def _reload(work_dir: Path):
    _DATABASES.pop(str(work_dir), None)
    return open_database(work_dir)


def test_record_naming_another_tasks_blocks_is_dropped_and_the_database_loads(
        tmp_path: Path) -> None:
    """A record committed for `lv271_red` lands on the stored `lv247_red` workload (they are
    structurally equal); MetaSchedule's JSONDatabase then refuses the directory. open_database
    drops that record (the other one stays), keeps the old file, and the ledger forgets the
    workload so it is tuned again."""
    a, b = _prim("lv247_red"), _prim("lv271_red")
    assert tvm_ffi.structural_equal(a, b)
    db = ms.database.JSONDatabase(work_dir=str(tmp_path))
    workload = db.commit_workload(a)
    assert db.commit_workload(b).same_as(workload)
    target = tvm.target.Target("llvm")
    for mod, block in ((a, "lv247_red"), (b, "lv271_red")):
        sch = Schedule(mod)
        sch.split(sch.get_loops(sch.get_sblock(block))[0], [None, 16])
        db.commit_tuning_record(ms.database.TuningRecord(sch.trace, workload, [1e-3], target, []))
    key = str(tvm_ffi.structural_hash(a))
    (tmp_path / "trials.json").write_text(json.dumps({key: 32, "other": 8}))
    with pytest.raises(RuntimeError):  # what the bug did to the whole database
        ms.database.JSONDatabase(work_dir=str(tmp_path))

    loaded = _reload(tmp_path)
    assert len(loaded.get_all_tuning_records()) == 1
    assert (tmp_path / "database_tuning_record.json.bad").exists()
    assert json.loads((tmp_path / "trials.json").read_text()) == {"other": 8}
    ms.database.JSONDatabase(work_dir=str(tmp_path))  # loadable by MetaSchedule itself again


@pytest.mark.slow
def test_tuning_equal_tasks_with_other_block_names_keeps_the_database_loadable(
        tmp_path: Path) -> None:
    """The same two tasks through tune(): the second (more trials, so it is tuned again)
    traces the stored workload's blocks, and the directory loads in a fresh JSONDatabase."""
    target = find_target("x86-native")
    tvm_target = target.tvm_target()
    tune(_relax("lv247_red"), tvm_target, tmp_path, 1, 1, target.cores)
    _, report = tune(_relax("lv271_red"), tvm_target, tmp_path, 2, 1, target.cores)
    assert report.tuned_now == 1
    records = (tmp_path / "database_tuning_record.json").read_text()
    assert "lv271_red" not in records and records.count("lv247_red") >= 2
    db = ms.database.JSONDatabase(work_dir=str(tmp_path))
    assert len(db.get_all_tuning_records()) >= 2
