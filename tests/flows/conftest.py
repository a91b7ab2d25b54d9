"""Prefect fixtures: a temporary PREFECT_HOME with the quiet settings, and one test harness per session.

The environment is set at import, before anything imports prefect (Prefect reads its settings at import).
Tests that use the harness are marked `prefect`; `-m "not prefect"` never starts a server.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PREFECT_HOME = Path(tempfile.mkdtemp(prefix="filterlake-prefect-home-"))
os.environ["PREFECT_HOME"] = str(PREFECT_HOME)
atexit.register(shutil.rmtree, PREFECT_HOME, True)

from flows import QUIET_ENV

os.environ.update(QUIET_ENV)  # forced here, not only defaults: tests run quiet whatever the environment says


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect API (SQLite in a temp folder) for every flow run of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


BROKEN = "broken.pth"


@pytest.fixture
def one_good_one_bad(tmp_path: Path, corpus: Path) -> Path:
    """A folder of a copy of a real checkpoint (pnet.pt) and random bytes named broken.pth."""
    folder = tmp_path / "drop"
    folder.mkdir()
    shutil.copyfile(corpus / "mtcnn" / "pnet.pt", folder / "pnet.pt")
    (folder / BROKEN).write_bytes(random.Random(0).randbytes(4096))
    return folder


def flow_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `python -m flows.*` subprocess: own PREFECT_HOME and cache, quiet, no API URL."""
    env = {
        **os.environ,
        **QUIET_ENV,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "FILTERLAKE_CACHE": str(tmp_path / "cache"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    env.pop("PREFECT_API_URL", None)
    return env
