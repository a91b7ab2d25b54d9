"""The CNN Filter DB import flow (flows/import_cnn_filter_db.py) over the same stage function as the command
line: a dataset.h5 with one bad model imported, the bad one named in the summary, the refresh run; a re-run adds
nothing; an unreadable file fails the run with its one-line reason."""

from __future__ import annotations

import pytest

from bench.synthetic.cnn_filter_db import write_dataset
from filterlake.lake.check import check_lake
from filterlake.lake.layout import committed_ids
from flows.import_cnn_filter_db import import_cnn_filter_db_flow
from tests.sources.test_cnn_filter_db import ragged_models, rewrite_meta, set_ids

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]


def test_the_flow_imports_the_dataset_and_names_the_bad_model(tmp_path):
    path, lake = tmp_path / "dataset.h5", tmp_path / "lake"
    write_dataset(path, ragged_models())
    rewrite_meta(path, set_ids(5, "75:81"))
    summary = import_cnn_filter_db_flow(str(path), str(lake))
    assert [(r["name"], r["status"]) for r in summary["models"]] == [
        ("resnet_a", "ingested"),
        ("unet_b", "ingested"),
        ("tiny_c", "failed"),
    ]
    reason = "layer 0: filter_ids 75:81 holds 7 filters, out_channels x in_channels = 6 x 3 = 18"
    assert summary["failures"] == [f"{path}: model 2 (tiny_c): {reason}"]
    assert summary["refresh"]["action"] == "refresh" and summary["line"].startswith("dataset.h5 (v1.0.0")
    assert len(committed_ids(lake)) == 2 and check_lake(lake).ok

    again = import_cnn_filter_db_flow(str(path), str(lake))
    assert [r["status"] for r in again["models"]] == ["present", "present", "failed"]
    assert again["refresh"] is None

    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[:3000])
    state = import_cnn_filter_db_flow(str(cut), str(lake), return_state=True)
    assert state.is_failed() and f"{cut}: cannot read 'meta' (truncated file" in state.message


def test_the_ingestion_flow_imports_a_catalog_dataset_entry_beside_checkpoints(tmp_path, corpus):
    """A catalog entry `cnn_filter_db = "dataset.h5"` goes through the import stage inside the ingestion flow."""
    from flows.ingest import ingest_flow

    write_dataset(tmp_path / "dataset.h5", ragged_models())
    pnet = corpus / "mtcnn" / "pnet.pt"
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        f'[[model]]\ncnn_filter_db = "dataset.h5"\n\n[[model]]\npath = "{pnet}"\nname = "pnet"\n'
    )
    lake = tmp_path / "lake"
    state = ingest_flow(lake=str(lake), catalogs=[str(catalog)], refresh=False, return_state=True)
    summary = state.result()
    assert sorted((r["name"], r["status"]) for r in summary["models"]) == [
        ("pnet", "ingested"),
        ("resnet_a", "ingested"),
        ("tiny_c", "ingested"),
        ("unet_b", "ingested"),
    ]
    assert len(committed_ids(lake)) == 4 and check_lake(lake).ok
