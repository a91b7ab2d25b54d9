"""The scheduled deployment: `python -m flows.serve` ingests a checkpoint dropped into the watched folder."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from filterlake.lake.layout import model_file
from flows import QUIET_ENV
from tests.conftest import REPO, manifest_rows

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

PNET = "mtcnn/pnet.pt"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_served_deployment_ingests_a_dropped_checkpoint(tmp_path, corpus):
    watch, lake, log = tmp_path / "dropbox", tmp_path / "lake", tmp_path / "serve.log"
    model_id = next(r["sha256"] for r in manifest_rows() if r["path"] == PNET)
    env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(tmp_path / "prefect"),
           "FILTERLAKE_CACHE": str(tmp_path / "cache"), "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    env.pop("PREFECT_API_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flows.serve", "--watch", str(watch), "--lake", str(lake),
                                 "--interval", "5"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not model_file(lake, model_id).exists():
            assert proc.poll() is None, f"flows.serve exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ingested within 120 s:\n{log.read_text()}"
            if watch.is_dir() and not (watch / "pnet.pt").exists():
                shutil.copyfile(corpus / PNET, watch / ".pnet.pt.part")  # hidden while copying
                os.replace(watch / ".pnet.pt.part", watch / "pnet.pt")
            time.sleep(1)
    finally:
        proc.terminate()
        code = proc.wait(timeout=60)
        end = time.monotonic() + 30
        while _group_alive(proc.pid) and time.monotonic() < end:
            time.sleep(0.5)
        leftover = _group_alive(proc.pid)
        if leftover:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0, log.read_text()
    assert not leftover, "flows.serve left processes behind"
