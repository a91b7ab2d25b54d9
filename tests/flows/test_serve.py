"""The scheduled deployment: `python -m flows.serve` ingests a checkpoint dropped into the watched folder,
prints a line per run, skips a bad file until it changes, and stops cleanly (exit 0, its server gone) on
SIGTERM and Ctrl-C, also while its server is still starting."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from filterlake.lake.layout import is_committed
from filterlake.lake.location import ObjectLake
from tests.conftest import REPO, manifest_rows
from tests.flows.conftest import BROKEN, flow_env

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

PNET = "mtcnn/pnet.pt"
COUNTS = re.compile(
    r"^\d+ sources?: \d+ ingested, \d+ cached, \d+ present, \d+ updated, \d+ failed[;,]", re.MULTILINE
)


def _alive(pid: int, group: bool = False) -> bool:
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Served:
    """`python -m flows.serve --interval 5` over `watch` in its own session; stdout and stderr in files."""

    def __init__(self, tmp_path: Path, watch: Path, lake: Path | ObjectLake | None = None):
        self.lake = lake or tmp_path / "lake"
        self.out, self.err = tmp_path / "serve.out", tmp_path / "serve.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            argv = ["--watch", str(watch), "--lake", str(self.lake), "--interval", "5"]
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flows.serve", *argv],
                cwd=REPO,
                env=flow_env(tmp_path),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def text(self) -> str:
        return f"--- stdout\n{self.out.read_text()}--- stderr\n{self.err.read_text()}"

    def wait_for(self, condition, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"flows.serve exited early:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {what} within {timeout:g} s:\n{self.text()}"
            time.sleep(0.5)

    def server_pid(self) -> int | None:
        """The local server's pid, from the line serve prints when it starts it."""
        found = re.search(r"local Prefect server on \S+ \(pid (\d+)", self.err.read_text())
        return int(found[1]) if found else None

    def stop(self, signum: int) -> int:
        """Send `signum` (SIGINT to the whole group, as Ctrl-C does); its exit code, once nothing is left."""
        self.wait_for(lambda: "filterlake: ingesting" in self.err.read_text(), "start line", 60)
        time.sleep(1)
        server = self.server_pid()
        (os.killpg if signum == signal.SIGINT else os.kill)(self.proc.pid, signum)
        code = self.proc.wait(timeout=60)
        processes = [(self.proc.pid, True)] + ([(server, False)] if server else [])
        end = time.monotonic() + 30
        while any(_alive(*p) for p in processes) and time.monotonic() < end:
            time.sleep(0.5)
        leftover = [pid for pid, group in processes if _alive(pid, group)]
        for pid, group in processes:
            if _alive(pid, group):
                (os.killpg if group else os.kill)(pid, signal.SIGKILL)
        assert not leftover, f"flows.serve left processes behind ({leftover}):\n{self.text()}"
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)


def test_served_deployment_ingests_a_dropped_checkpoint_and_stops_on_sigterm(tmp_path, corpus):
    served = serve_one_dropped_checkpoint(tmp_path, corpus)
    assert served.err.read_text().rstrip().endswith("filterlake: stopped"), served.text()


@pytest.mark.s3
def test_served_deployment_ingests_and_analyses_into_an_s3_lake(tmp_path, corpus, s3_lake):
    served = serve_one_dropped_checkpoint(tmp_path, corpus, s3_lake)
    assert f"into {s3_lake.uri} every 5 s" in served.err.read_text(), served.text()
    from filterlake.derived.analyze import is_current
    from filterlake.lake.duck import connect

    assert is_current(s3_lake), served.text()  # the run's refresh analysed the bucket
    assert connect(s3_lake).execute("SELECT count(*) FROM layer_stats").fetchone()[0] == 3  # P-Net's layers


def serve_one_dropped_checkpoint(tmp_path: Path, corpus: Path, lake: ObjectLake | None = None) -> Served:
    """Serve a dropbox, drop P-Net into it, wait for its run's summary, stop with SIGTERM (exit 0)."""
    watch = tmp_path / "dropbox"
    model_id = next(r["sha256"] for r in manifest_rows() if r["path"] == PNET)
    served = Served(tmp_path, watch, lake)
    try:

        def dropped_and_ingested() -> bool:
            if watch.is_dir() and not (watch / "pnet.pt").exists():
                shutil.copyfile(corpus / PNET, watch / ".pnet.pt.part")  # hidden while copying
                os.replace(watch / ".pnet.pt.part", watch / "pnet.pt")
            return is_committed(served.lake, model_id)

        served.wait_for(dropped_and_ingested, "ingestion")
        served.wait_for(lambda: "1 ingested" in served.out.read_text(), "summary line", 30)
        code = served.stop(signal.SIGTERM)
    finally:
        served.kill()
    assert code == 0, served.text()
    return served


def test_served_runs_print_counts_skip_a_bad_file_until_it_changes_and_stop_on_ctrl_c(
    one_good_one_bad, tmp_path
):
    bad = one_good_one_bad / BROKEN
    failed = f"failed: {bad}: unknown format"
    reason = "unknown format: not ONNX, safetensors or a PyTorch checkpoint (by content)"
    skipped = f"{bad}: failed earlier with {reason}"
    served = Served(tmp_path, one_good_one_bad)
    try:
        out = served.out.read_text
        served.wait_for(lambda: len(COUNTS.findall(out())) >= 4, "four runs", 180)
        first = out()
        assert COUNTS.match(first) and first.startswith(
            "2 sources: 1 ingested, 0 cached, 0 present, 0 updated, 1 failed; new: 3 layers, 702 filters;"
        ), served.text()
        assert first.count(failed) == 1 and first.count(f"{skipped}; skipped until it changes") == 1, (
            served.text()
        )
        assert first.count(str(bad)) == 2, served.text()  # failed once, then said once to be skipped
        assert (
            "1 source: 0 ingested, 1 cached, 0 present, 0 updated, 0 failed; 1 skipped (failed earlier, "
            "unchanged)" in first
        ), served.text()
        assert BROKEN not in served.err.read_text(), (
            served.text()
        )  # Prefect's own task logs say nothing of it

        bad.write_bytes(random.Random(1).randbytes(4096))  # it changes: the next run tries it again
        served.wait_for(lambda: out().count(failed) == 2, "a retry of the changed file", 60)
        code = served.stop(signal.SIGINT)
    finally:
        served.kill()
    assert code == 0, served.text()
    assert "Traceback" not in served.err.read_text().split("filterlake: local Prefect server")[0], (
        served.text()
    )
    memory = tmp_path / "prefect-home" / "filterlake-serve" / "dropbox.json"
    assert str(bad) in memory.read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stopping_while_the_server_starts_is_clean(tmp_path, signum):
    """A second after serve starts, its server is still starting (it takes several seconds)."""
    served = Served(tmp_path, tmp_path / "dropbox")
    try:
        code = served.stop(signum)
    finally:
        served.kill()
    assert code == 0, served.text()
    assert "Traceback" not in served.err.read_text(), served.text()
    assert served.err.read_text().rstrip().endswith("filterlake: stopped"), served.text()
