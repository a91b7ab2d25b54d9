"""CNN Filter DB's dataset.h5 imported into an s3:// lake (a real `moto_server`): metadata only, then whole (each
meta-only model replaced), and the command line; the bucket holds exactly the tables of a local import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.synthetic.cnn_filter_db import write_dataset
from filterlake.ingest.cnn_filter_db import import_cnn_filter_db
from filterlake.lake.check import check_lake
from tests.conftest import REPO
from tests.flows.test_dask import BASE, assert_same_tables
from tests.flows.test_dask_s3 import download
from tests.sources.test_cnn_filter_db import ragged_models

pytestmark = pytest.mark.s3


def test_a_dataset_imported_into_s3_holds_the_tables_of_a_local_import(s3_lake, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset.h5"
    write_dataset(dataset, ragged_models())
    local = tmp_path / "lake"
    for meta_only in (True, False):
        here = import_cnn_filter_db(dataset, local, meta_only)
        there = import_cnn_filter_db(dataset, s3_lake, meta_only)
        assert [o.status for o in there.outcomes] == [o.status for o in here.outcomes] == ["ingested"] * 3
        assert_same_tables(
            download(s3_lake, os.environ["AWS_ENDPOINT_URL"], tmp_path / f"s3-{meta_only}"), local, BASE
        )
    assert check_lake(s3_lake, repair_leftovers=False).lines() == check_lake(local).lines()
    done = subprocess.run(
        [sys.executable, "-m", "filterlake", "import", "cnn-filter-db", str(dataset), "--lake", s3_lake.uri],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "3 models: 0 ingested, 3 already present, 0 failed" in done.stdout, (
        done.stderr
    )
