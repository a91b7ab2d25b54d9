"""The ingestion flow under the Prefect test harness: a folder of real checkpoints plus a corrupt file, a re-run
that does no work, and checkpoints served over http (checksums, retries of transient errors)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import shutil
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from filterlake.errors import FilterlakeError
from filterlake.lake.layout import committed_ids
from flows.ingest import ingest_flow, run_summary, summary_lines
from tests.conftest import manifest_rows
from tests.flows.conftest import BROKEN
from tests.flows.test_tasks import REPR

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]

GOOD = [
    "mtcnn/pnet.pt",
    "mtcnn/onet.pt",
    "resnet20_cifar10/resnet20-12fca82f.th",
    "ultraface_rfb320/version-RFB-320.onnx",
    "dfdx_mnist_mlp/mnist.safetensors",
]
MANIFEST = {row["path"]: row for row in manifest_rows()}


def run(**parameters) -> tuple:
    """Run the flow; its final state and summary (also when Failed)."""
    state = ingest_flow(**parameters, return_state=True)
    return state, run_summary(state)


def statuses(summary: dict) -> dict[str, str]:
    return {row["source"].rsplit("/", 1)[-1]: row["status"] for row in summary["models"]}


def lake_files(lake: Path) -> dict[str, int]:
    return {str(p.relative_to(lake)): p.stat().st_mtime_ns for p in lake.rglob("*") if p.is_file()}


def task_states(state) -> dict[str, list[tuple[str, str]]]:
    """(state name, message) of each task run of the flow run, by task name."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    found: dict[str, list[tuple[str, str]]] = {}
    for run in runs:  # task run names are "<task name>-<suffix>"
        found.setdefault(run.name.rsplit("-", 1)[0], []).append((run.state.name, run.state.message or ""))
    return found


def artifacts(state) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    return {a.key: a.data for a in found}


@pytest.fixture
def drop(tmp_path, corpus) -> Path:
    """Copies of real checkpoints with name/domain sidecars, and random bytes named broken.pth."""
    folder = tmp_path / "drop"
    folder.mkdir()
    for rel in GOOD:
        target = folder / Path(rel).name
        shutil.copyfile(corpus / rel, target)
        meta = {"name": MANIFEST[rel]["name"], "domain": MANIFEST[rel]["domain"]}
        target.with_name(target.name + ".meta.json").write_text(json.dumps(meta))
    (folder / "broken.pth").write_bytes(random.Random(0).randbytes(4096))
    return folder


def test_folder_ingests_good_files_reports_the_corrupt_one_and_reruns_from_cache(drop, tmp_path):
    lake = tmp_path / "lake"
    state, summary = run(sources=[str(drop)], lake=str(lake))

    # A bad file fails its own task, not the flow: the run completes and its message names each failure.
    assert state.is_completed()
    assert statuses(summary) == {**{Path(p).name: "ingested" for p in GOOD}, "broken.pth": "failed"}
    [failure] = summary["failures"]
    assert failure["source"] == str(drop / "broken.pth")
    assert "unknown format" in failure["message"]
    assert "broken.pth: unknown format" in state.message
    assert summary["refresh"]["action"] == "refresh"
    lines = summary_lines(summary)
    assert lines[-1].startswith("refresh: basis ") and not [line for line in lines if REPR.search(line)]
    # The bad file's task ends Failed with the one-line reason (it logs nothing itself: the summary names it).
    ingests = task_states(state)["ingest_checkpoint"]
    assert sorted(name for name, _ in ingests) == ["Completed"] * 5 + ["Failed"]
    assert next(m for name, m in ingests if name == "Failed").endswith(
        "broken.pth: unknown format: not ONNX, safetensors or a PyTorch checkpoint (by content)"
    )

    models = pq.read_table(lake / "models").to_pylist()
    assert {m["model_id"]: m["n_filters_3x3"] for m in models} == {
        MANIFEST[p]["sha256"]: int(MANIFEST[p]["filters_3x3"]) for p in GOOD
    }
    assert {m["name"] for m in models} == {MANIFEST[p]["name"] for p in GOOD}

    found = artifacts(state)
    table = {row["source"].rsplit("/", 1)[-1]: row for row in json.loads(found["filterlake-ingest-models"])}
    assert table["broken.pth"]["status"] == "failed" and "unknown format" in table["broken.pth"]["message"]
    assert (table["pnet.pt"]["name"], table["pnet.pt"]["domain"], table["pnet.pt"]["filters"]) == (
        "MTCNN P-Net",
        "faces",
        702,
    )
    assert set(table["pnet.pt"]) >= {"name", "domain", "layers", "filters", "skipped", "status", "message"}
    markdown = found["filterlake-ingest-summary"]
    assert "5 ingested" in markdown and "broken.pth" in markdown and "unknown format" in markdown

    before = lake_files(lake)
    state, summary = run(sources=[str(drop)], lake=str(lake))
    assert state.is_completed() and [f["source"] for f in summary["failures"]] == [str(drop / "broken.pth")]
    assert "broken.pth: unknown format" in state.message
    assert statuses(summary) == {**{Path(p).name: "cached" for p in GOOD}, "broken.pth": "failed"}
    assert summary["refresh"] is None
    assert lake_files(lake) == before


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder; counts requests per path; answers 503 to the first request of each `flaky` path."""

    hits: Counter
    flaky: set[str]

    def do_GET(self) -> None:
        self.hits[self.path] += 1
        if self.path in self.flaky and self.hits[self.path] == 1:
            self.send_error(503, "try again")
            return
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_root(tmp_path, corpus, monkeypatch):
    """(base URL, request counts) of a server on 127.0.0.1 over copies of three checkpoints."""
    monkeypatch.setenv("FILTERLAKE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "www"
    root.mkdir()
    for rel in ("mtcnn/pnet.pt", "mtcnn/onet.pt", "resnet20_cifar10/resnet20-12fca82f.th"):
        shutil.copyfile(corpus / rel, root / Path(rel).name)
    hits: Counter = Counter()
    handler = type("Served", (Handler,), {"hits": hits, "flaky": {"/resnet20-12fca82f.th"}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def test_url_sources_are_checksum_checked_and_transient_errors_retried(http_root, tmp_path):
    base, hits = http_root
    entries = [
        {
            "url": f"{base}/{Path(p).name}",
            "sha256": MANIFEST[p]["sha256"],
            "name": MANIFEST[p]["name"],
            "domain": MANIFEST[p]["domain"],
        }
        for p in ("mtcnn/pnet.pt", "resnet20_cifar10/resnet20-12fca82f.th")
    ]
    catalog = tmp_path / "remote.json"
    catalog.write_text(json.dumps(entries))
    lake = tmp_path / "lake"
    state, summary = run(catalogs=[str(catalog)], lake=str(lake), refresh=False)
    assert state.is_completed(), state.message
    assert statuses(summary) == {"pnet.pt": "ingested", "resnet20-12fca82f.th": "ingested"}
    assert hits["/resnet20-12fca82f.th"] == 2  # 503 once, retried once
    models = {m["source_uri"]: m for m in pq.read_table(lake / "models").to_pylist()}
    assert {u: m["model_id"] for u, m in models.items()} == {e["url"]: e["sha256"] for e in entries}

    wrong = hashlib.sha256(b"not these bytes").hexdigest()
    catalog.write_text(json.dumps([{"url": f"{base}/onet.pt", "sha256": wrong}]))
    other = tmp_path / "other-lake"
    state, summary = run(catalogs=[str(catalog)], lake=str(other))
    assert state.is_completed() and "does not match" in state.message
    [failure] = summary["failures"]
    assert failure["source"] == f"{base}/onet.pt"
    assert f"does not match the catalog's {wrong}" in failure["message"]
    assert hits["/onet.pt"] == 1  # a wrong checksum is not retried
    assert not other.exists() and committed_ids(lake) == {e["sha256"] for e in entries}


class Records(logging.Handler):
    """The records Prefect's flow- and task-run loggers let through (after flows' filter), WARNING and up."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + (self.format(record) if record.exc_info else ""))


@pytest.fixture
def run_logs():
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.lines
    for logger in loggers:
        logger.removeHandler(handler)


def test_a_bad_file_and_a_failed_refresh_are_named_once_in_the_summary(
    one_good_one_bad, tmp_path, monkeypatch, run_logs
):
    import filterlake.derived.analyze

    def analyze(lake):
        raise FilterlakeError(f"{lake}: the basis cannot be fitted (test)")

    monkeypatch.setattr(filterlake.derived.analyze, "analyze", analyze)
    state, summary = run(sources=[str(one_good_one_bad)], lake=str(tmp_path / "lake"))
    assert state.is_failed()
    assert [f["source"] for f in summary["failures"]] == [str(one_good_one_bad / BROKEN), "refresh"]
    assert summary["failures"][1]["message"].endswith("the basis cannot be fitted (test)")
    assert [line for line in run_logs if BROKEN in line or "cannot be fitted" in line] == []
    assert [line for line in run_logs if "Traceback" in line] == []
    assert sorted(name for name, _ in task_states(state)["ingest_checkpoint"]) == ["Completed", "Failed"]
