"""`filterlake report`, `shift` and `basis` of an s3:// lake (a real `moto_server`): the same numbers, tables
and exported basis as of a local lake of the same checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from filterlake.lake.location import ObjectLake
from filterlake.report.compose import analyze_and_report
from tests.conftest import REPO
from tests.flows.test_dask import catalog  # noqa: F401 (the module fixture: five checkpoints, four domains)

pytestmark = [pytest.mark.slow, pytest.mark.s3]


@pytest.fixture(scope="module")
def lakes(catalog: Path, s3_env: str, tmp_path_factory) -> tuple[Path, ObjectLake]:  # noqa: F811
    """The catalog ingested into a local folder and into a new bucket (neither analysed yet)."""
    from filterlake.ingest import ingest
    from tests.lake.s3_endpoint import s3_client

    local = tmp_path_factory.mktemp("local") / "lake"
    remote = ObjectLake("report-lake", "lake")
    s3_client(s3_env).create_bucket(Bucket=remote.bucket)
    ingest([], local, [catalog])
    ingest([], remote, [catalog])
    return local, remote


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "filterlake", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "FILTERLAKE_CACHE": str(cache)},
        check=False,
        timeout=600,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done


def test_the_report_of_an_s3_lake_states_what_the_report_of_a_local_lake_states(lakes, tmp_path, monkeypatch):
    local, remote = lakes
    monkeypatch.setenv("FILTERLAKE_CACHE", str(tmp_path / "cache"))
    here = analyze_and_report(local, tmp_path / "local-report", permutations=200)
    there = analyze_and_report(remote, tmp_path / "s3-report", permutations=200)
    assert there.numbers == here.numbers and here.numbers["models"] == 5 and "medical_shift" in here.numbers
    tables = sorted(
        p.relative_to(tmp_path / "local-report") for p in (tmp_path / "local-report").rglob("*.csv")
    )
    assert tables and tables == sorted(
        p.relative_to(tmp_path / "s3-report") for p in (tmp_path / "s3-report").rglob("*.csv")
    )
    for table in tables:
        assert (tmp_path / "s3-report" / table).read_text() == (tmp_path / "local-report" / table).read_text()


def test_shift_and_basis_of_an_s3_lake_print_and_export_what_they_do_for_a_local_lake(lakes, tmp_path):
    local, remote = lakes
    shifts = [
        cli(
            "shift", "--lake", str(lake), "--group-by", "domain", "--format", "csv", cache=tmp_path / "c"
        ).stdout
        for lake in (local, remote.uri)
    ]
    assert shifts[0] == shifts[1] and shifts[0].count("\n") > 4
    for name, lake in (("local", local), ("s3", remote.uri)):
        done = cli(
            "basis",
            "export",
            "--lake",
            str(lake),
            "--out",
            str(tmp_path / f"{name}.parquet"),
            cache=tmp_path / "c",
        )
        assert done.stdout.startswith("basis written to ")
    exported = [pq.read_table(tmp_path / f"{name}.parquet") for name in ("local", "s3")]
    assert exported[0].drop_columns(["created_at"]).equals(exported[1].drop_columns(["created_at"]))
