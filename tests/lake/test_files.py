"""Reading the lake's small files while other writers replace them, and locked metadata updates."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.lake.files import read_table, staging, write_synced
from filterlake.lake.layout import model_file, staging_root
from filterlake.lake.writer import update_model_row
from tests.lake.test_writer import write


def test_read_sees_a_whole_file_while_it_is_replaced(tmp_path):
    """The bug CI caught: a path read that races an os.replace read the new file with the old size."""
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    write_synced(pa.table({"name": ["a"]}), small)
    write_synced(pa.table({"name": ["b" * 5000], "pad": [1]}), large)
    target = tmp_path / "model.parquet"
    write_synced(pa.table({"name": ["a"]}), target)
    stop = threading.Event()

    def flip():
        for i in range(10**9):
            if stop.is_set():
                return
            staged = tmp_path / "staged.parquet"
            staged.write_bytes((small if i % 2 else large).read_bytes())
            os.replace(staged, target)

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        names = {read_table(target, ["name"]).column("name")[0].as_py() for _ in range(1500)}
    finally:
        stop.set()
        flipper.join()
    assert names <= {"a", "b" * 5000} and len(names) == 2


def test_concurrent_metadata_updates_lose_nothing(tmp_path):
    lake = tmp_path / "lake"
    write(lake, "m1", [np.ones((3, 9), np.float32)])

    def add_keys(worker):
        for k in range(15):

            def add(row, key=f"w{worker}k{k}", value=k):
                return {**row, "extra": json.dumps({**json.loads(row["extra"]), key: value})}

            assert update_model_row(lake, "m1", add)

    threads = [threading.Thread(target=add_keys, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    extra = json.loads(pq.read_table(model_file(lake, "m1")).column("extra")[0].as_py())
    assert extra == {f"w{w}k{k}": k for w in range(4) for k in range(15)}


def test_update_returning_none_leaves_the_file_alone(tmp_path):
    lake = tmp_path / "lake"
    write(lake, "m1", [np.ones((3, 9), np.float32)])
    before = model_file(lake, "m1").stat().st_mtime_ns, model_file(lake, "m1").stat().st_ino
    assert update_model_row(lake, "m1", lambda row: None) is False
    assert (model_file(lake, "m1").stat().st_mtime_ns, model_file(lake, "m1").stat().st_ino) == before
    assert not any((lake / "_staging").iterdir())


def test_threads_sharing_a_stage_make_one_folder_and_leave_none(tmp_path):
    """Regression (CI): threads of the per-model refresh racing on a fresh stage each made a folder, and the one
    not kept outlived `analyze` as a leftover that `check --no-repair` reported."""
    barrier = threading.Barrier(8)
    seen: list = []
    with staging(tmp_path) as stage:

        def first_use() -> None:
            barrier.wait()
            seen.append(stage.path)

        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(seen)) == 1 and list(staging_root(tmp_path).iterdir()) == [seen[0]]
    assert list(staging_root(tmp_path).iterdir()) == []
