"""A flow run killed at any moment and started again ends with the lake of one uninterrupted run: the ingestion
flow with its refresh into an s3:// bucket (a real `moto_server`), SIGKILLed while it ingests and while it
analyses, then run again, gives every table `filterlake ingest` + `filterlake analyze` write into a folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.flows.conftest import flow_env
from tests.flows.test_dask import BASE, DERIVED, assert_same_tables, catalog, reference  # noqa: F401
from tests.flows.test_dask_s3 import download

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.s3]


@pytest.mark.parametrize("after", [6.0, 9.0, 12.0])
def test_an_ingestion_flow_killed_at_any_moment_then_run_again_ends_with_the_lake_of_one_run(
    after,
    prefect_harness,
    s3_lake,
    s3_env,
    catalog,  # noqa: F811 (the module fixtures of test_dask.py, imported above)
    reference,  # noqa: F811
    tmp_path,
):
    from prefect.settings import PREFECT_API_URL

    env = {**flow_env(tmp_path), "PREFECT_API_URL": PREFECT_API_URL.value()}  # the harness's server
    command = [sys.executable, "-m", "flows.ingest", "--catalog", str(catalog), "--lake", s3_lake.uri]
    killed = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(after)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert "0 failed" in done.stdout
    assert_same_tables(download(s3_lake, s3_env, tmp_path / "after"), reference, BASE + DERIVED)
