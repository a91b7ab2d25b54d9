"""The flow's task functions called directly via `.fn` (no Prefect server), and the summary text."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from prefect.states import Failed

from filterlake.errors import CheckpointError, SourceError, TransientSourceError
from filterlake.lake.layout import committed_ids
from flows.ingest import refresh_line, summary_lines
from flows.tasks import discover_sources, fetch_source, ingest_cache_key, ingest_checkpoint, is_transient
from tests.conftest import manifest_rows

PNET = "mtcnn/pnet.pt"


def test_tasks_fetch_hash_and_ingest_a_checkpoint(tmp_path, corpus):
    row = next(r for r in manifest_rows() if r["path"] == PNET)
    shutil.copyfile(corpus / PNET, tmp_path / "pnet.pt")
    (tmp_path / "broken.pth").write_bytes(b"\x00not a checkpoint" * 64)
    sources, failures, notes = discover_sources.fn([str(tmp_path), str(tmp_path / "missing")], [])
    assert [Path(s.uri).name for s in sources] == ["broken.pth", "pnet.pt"] and notes == []
    assert (
        failures[0]["status"] == "failed" and "missing: no such file or directory" in failures[0]["message"]
    )

    path = fetch_source.fn(sources[1])
    lake = tmp_path / "lake"
    with pytest.raises(CheckpointError, match="sha256 differs from the catalog's"):
        ingest_checkpoint.fn(path, str(lake), sources[1].uri, None, "0" * 64)
    with pytest.raises(CheckpointError, match="broken.pth: unknown format"):
        ingest_checkpoint.fn(fetch_source.fn(sources[0]), str(lake), sources[0].uri)
    assert not lake.exists()

    first = ingest_checkpoint.fn(path, str(lake), sources[1].uri, {"domain": "faces"}, row["sha256"])
    assert (first["status"], first["filters"], first["domain"]) == (
        "ingested",
        int(row["filters_3x3"]),
        "faces",
    )
    assert first["model_id"] == row["sha256"] and committed_ids(lake) == {row["sha256"]}
    again = ingest_checkpoint.fn(path, str(lake), sources[1].uri, {"domain": "faces"})
    assert again["status"] == "present"


def test_cache_key_depends_on_content_lake_and_metadata(tmp_path):
    checkpoint = tmp_path / "a.pt"
    checkpoint.write_bytes(b"a" * 64)
    params = {"path": str(checkpoint), "lake": str(tmp_path / "lake"), "meta": {"domain": "faces"}}
    key = ingest_cache_key(None, params)
    assert key == ingest_cache_key(None, {**params, "source_uri": "http://x/y.pt", "expected_sha256": None})
    checkpoint.write_bytes(b"b" * 64)  # other content in the same file
    assert key != ingest_cache_key(None, params)
    key = ingest_cache_key(None, params)
    assert key != ingest_cache_key(None, {**params, "lake": str(tmp_path / "other")})
    assert key != ingest_cache_key(None, {**params, "meta": {"domain": "medical"}})
    assert "/" not in key  # the key names a file in the result storage


def test_only_transient_network_errors_are_retried():
    assert is_transient(fetch_source, None, Failed(data=TransientSourceError("http://x: HTTP 503")))
    assert not is_transient(
        fetch_source, None, Failed(data=SourceError("http://x: sha256 ... does not match"))
    )
    assert not is_transient(fetch_source, None, Failed(data=CheckpointError("x.pt", "unknown format")))


def test_summary_names_every_failure():
    rows = [
        {"source": "/d/a.pt", "status": "ingested", "layers": 3, "filters": 702, "message": ""},
        {
            "source": "/d/b.pth",
            "status": "failed",
            "layers": 0,
            "filters": 0,
            "message": "/d/b.pth: unknown format",
        },
        {
            "source": "http://h/c.pt",
            "status": "failed",
            "layers": 0,
            "filters": 0,
            "message": "download failed",
        },
    ]
    summary = {
        "models": rows,
        "failures": rows[1:],
        "refresh": None,
        "seconds": 1.0,
        "counts": {"ingested": 1, "cached": 0, "present": 0, "updated": 0, "failed": 2},
    }
    assert summary_lines(summary) == [
        "3 sources: 1 ingested, 0 cached, 0 present, 0 updated, 2 failed; new: 3 layers, 702 filters; 1.0 s",
        "failed: /d/b.pth: unknown format",
        "failed: http://h/c.pt: download failed",
    ]


REPR = re.compile(r"[{}\[\]]|'\w+':|\bNone\b")  # what a dict, list or None printed as such looks like


def test_summary_and_refresh_are_words_not_reprs():
    refresh = {
        "action": "refresh",
        "basis_id": "487df826d2212d3e",
        "layer_stats": {"computed": 1, "reused": 4, "removed": 0},
        "histograms": {"computed": 2, "reused": 3},
        "shifts": ["domain", "task"],
    }
    assert refresh_line(refresh) == (
        "refresh: basis 487df826d2212d3e; layer statistics of 1 model computed, 4 reused; histograms of "
        "2 models computed, 3 reused; shifts by domain, task"
    )
    check = {"action": "check", "models": 1, "filters": 12345}
    assert refresh_line(check) == "refresh: checked the lake (1 model, 12,345 filters)"
    rows = [
        {
            "source": "/d/a.pt",
            "status": "ingested",
            "layers": 3,
            "filters": 702,
            "message": "",
            "skipped": "",
        },
        {
            "source": "/d/b.pth",
            "status": "failed",
            "layers": 0,
            "filters": 0,
            "message": "/d/b.pth: unknown format",
        },
    ]
    skipped = [
        {"source": "/d/c.pth", "reason": "unknown format", "new": True},
        {"source": "/d/e.pth", "reason": "unknown format", "new": False},
    ]
    summary = {
        "models": rows,
        "failures": rows[1:],
        "skipped": skipped,
        "notes": ["1 file passed over: not a checkpoint (e.g. /d/readme.txt)"],
        "refresh": refresh,
        "seconds": 2.5,
        "counts": {"ingested": 1, "cached": 0, "present": 0, "updated": 0, "failed": 1},
    }
    lines = summary_lines(summary)
    assert lines == [
        (
            "2 sources: 1 ingested, 0 cached, 0 present, 0 updated, 1 failed; 2 skipped (failed earlier, "
            "unchanged); new: 3 layers, 702 filters; 2.5 s"
        ),
        "failed: /d/b.pth: unknown format",
        "/d/c.pth: failed earlier with unknown format; skipped until it changes",
        "note: 1 file passed over: not a checkpoint (e.g. /d/readme.txt)",
        refresh_line(refresh),
    ]
    assert summary_lines(summary, brief=True) == lines[:3]
    assert summary_lines({**summary, "refresh": check})[-1] == refresh_line(check)
    assert not [line for line in lines if REPR.search(line)]
