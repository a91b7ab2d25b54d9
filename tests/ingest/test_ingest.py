"""Ingesting the real corpus: exact counts per MANIFEST.csv, exact filter values, idempotency, atomicity."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from filterlake.errors import CheckpointError
from filterlake.ingest import ingest, ingest_file
from filterlake.lake import writer as writer_mod
from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from filterlake.sources.discover import discover
from tests.conftest import manifest_rows


def models_by_source(lake):
    rows = connect(lake).execute("SELECT * FROM models").fetchall()
    columns = [d[0] for d in connect(lake).execute("SELECT * FROM models LIMIT 0").description]
    return {r["source_uri"]: r for r in (dict(zip(columns, row)) for row in rows)}


@pytest.mark.parametrize("row", manifest_rows(), ids=lambda r: r["path"])
def test_every_corpus_file_has_the_manifest_counts(corpus_lake, corpus, row):
    model = models_by_source(corpus_lake)[str((corpus / row["path"]).resolve())]
    assert model["model_id"] == row["sha256"]
    assert model["file_bytes"] == int(row["bytes"])
    assert (model["name"], model["domain"], model["license"]) == (row["name"], row["domain"], row["license"])
    if model["orientation"] == "known":  # the format tells transposed convs apart
        expected = (int(row["conv2d_3x3_layers"]), int(row["filters_3x3"]))
    else:  # bare state dict: counted by shape, layers marked of unknown orientation
        expected = (int(row["shape_only_layers"]), int(row["shape_only_filters"]))
    assert (model["n_layers_3x3"], model["n_filters_3x3"]) == expected
    con = connect(corpus_lake)
    assert (
        con.execute(
            "SELECT count(*), coalesce(sum(n_filters), 0) FROM layers WHERE model_id = ?", [model["model_id"]]
        ).fetchone()
        == expected
    )
    assert con.execute("SELECT count(*) FROM filters WHERE model_id = ?", [model["model_id"]]).fetchone() == (
        expected[1],
    )


def test_negative_controls_and_skips_are_reported(corpus_lake):
    models = {m["name"]: m for m in models_by_source(corpus_lake).values()}
    assert models["texture_net F3 (3-D seismic)"]["skipped_3d"] == 6
    assert "no 2-D 3x3 conv layers" in models["texture_net F3 (3-D seismic)"]["message"]
    assert "no convolution weights" in models["dfdx MNIST MLP"]["message"]
    relay = models["ReLayNet"]
    assert (relay["n_layers_3x3"], relay["skipped_non_square"], relay["skipped_1x1"]) == (0, 7, 1)
    assert relay["load_method"] == "restricted-unpickler"
    assert models["VDSR (epoch 50)"]["load_method"] == "restricted-unpickler"
    assert models["ResNet-20 CIFAR-10"]["load_method"] == "torch.load(weights_only=True)"


@pytest.mark.parametrize(
    "path",
    [
        "resnet20_cifar10/resnet20-12fca82f.th",
        "mtcnn/onet.pt",
        "espnetv2_cityscapes/espnetv2_s_1.0_city_1024x512.pth",
    ],
)
def test_filters_equal_slices_of_the_original_tensors(corpus_lake, corpus, path):
    state = torch.load(corpus / path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    weights = [(k, v) for k, v in state.items() if v.ndim == 4 and tuple(v.shape[2:]) == (3, 3)]
    con = connect(corpus_lake)
    model_id = models_by_source(corpus_lake)[str((corpus / path).resolve())]["model_id"]
    names = dict(
        con.execute("SELECT layer_idx, layer_name FROM layers WHERE model_id = ?", [model_id]).fetchall()
    )
    assert len(names) == len(weights)
    for layer_idx, (key, tensor) in enumerate(weights):
        assert names[layer_idx] == key.removeprefix("module.").removesuffix(".weight")
        rows = con.execute(
            "SELECT w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? AND "
            "layer_idx = ? ORDER BY filter_idx",
            [model_id, layer_idx],
        ).fetchall()
        np.testing.assert_array_equal(np.array(rows, np.float32), tensor.numpy().reshape(-1, 9))


@pytest.mark.parametrize(
    "a,b",
    [
        ("unet2d_nuclei_broad/weights.onnx", "unet2d_nuclei_broad/weights.pt"),
        ("ultraface_rfb320/version-RFB-320.onnx", "ultraface_rfb320/version-RFB-320.pth"),
    ],
)
def test_cross_format_pairs_give_identical_filters(corpus_lake, corpus, a, b):
    models = models_by_source(corpus_lake)
    ids = [models[str((corpus / p).resolve())]["model_id"] for p in (a, b)]
    con = connect(corpus_lake)
    query = (
        "SELECT layer_idx, filter_idx, w0, w1, w2, w3, w4, w5, w6, w7, w8 FROM filters WHERE model_id = ? "
        "ORDER BY layer_idx, filter_idx"
    )
    layers = []
    for model_id in ids:
        by_layer: dict[int, list] = {}
        for row in con.execute(query, [model_id]).fetchall():
            by_layer.setdefault(row[0], []).append(row[1:])
        layers.append(
            sorted(tuple(rows) for rows in by_layer.values())
        )  # graph order may differ from definition order
    assert len(layers[0]) > 0 and layers[0] == layers[1]


def test_ingesting_twice_changes_nothing(corpus_lake, corpus, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(corpus_lake, lake)
    before = sorted((p.relative_to(lake), p.stat().st_mtime_ns) for p in lake.rglob("*.parquet"))
    outcomes = ingest([str(corpus)], lake, [corpus / "MANIFEST.csv"])
    assert {o.status for o in outcomes} == {"present"}
    assert len(outcomes) == 17  # the folder and the catalog name the same 17 files
    after = sorted((p.relative_to(lake), p.stat().st_mtime_ns) for p in lake.rglob("*.parquet"))
    assert before == after and check_lake(lake).ok


def test_catalog_metadata_correction_rewrites_only_the_models_row(corpus_lake, corpus, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(corpus_lake, lake)
    pnet = corpus / "mtcnn" / "pnet.pt"
    model_id = manifest_rows()[[r["path"] for r in manifest_rows()].index("mtcnn/pnet.pt")]["sha256"]
    part = next((lake / "filters" / f"model_id={model_id}").glob("*.parquet"))
    mtime = part.stat().st_mtime_ns
    correction = {"domain": "faces (corrected)", "extra": {"checked": True}}
    assert ingest_file(pnet, lake, meta=correction).status == "updated"  # fills the missing extra key only
    row = pq.read_table(lake / "models" / f"{model_id}.parquet").to_pylist()[0]
    assert row["domain"] == "faces" and '"checked": true' in row["extra"]
    assert ingest_file(pnet, lake, meta=correction).status == "present"
    outcome = ingest_file(pnet, lake, meta=correction, update_metadata=True)
    assert outcome.status == "updated"
    row = pq.read_table(lake / "models" / f"{model_id}.parquet").to_pylist()[0]
    assert row["domain"] == "faces (corrected)" and '"checked": true' in row["extra"]
    assert part.stat().st_mtime_ns == mtime


def test_bad_files_are_refused_cleanly_and_leave_the_lake_untouched(tmp_path, corpus):
    lake = tmp_path / "lake"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "zero.pt").write_bytes(b"")
    (bad / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    (bad / "truncated.onnx").write_bytes(
        (corpus / "ultraface_rfb320" / "version-RFB-320.onnx").read_bytes()[:5000]
    )
    (bad / "dir.pt").mkdir()
    (bad / "notes.txt").write_text("not a checkpoint, ignored")
    outcomes = ingest([str(bad)], lake)
    assert sorted(o.source.rsplit("/", 1)[-1] for o in outcomes) == [
        "random.pth",
        "truncated.onnx",
        "zero.pt",
    ]
    assert all(o.status == "failed" and o.message.startswith(str(bad)) for o in outcomes)
    with pytest.raises(CheckpointError, match="is a directory"):
        ingest_file(bad / "dir.pt", lake)
    assert not lake.exists()  # nothing was written, not even an empty lake folder


def test_worker_processes_build_the_same_lake_and_keep_source_order(corpus_lake, corpus, tmp_path):
    lake, bad = tmp_path / "lake", tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    seen = []
    outcomes = ingest([str(bad)], lake, [corpus / "MANIFEST.csv"], on_result=seen.append, workers=2)
    assert [o.source for o in outcomes] == [s.uri for s in discover([str(bad)], [corpus / "MANIFEST.csv"])]
    assert sorted(o.source for o in seen) == sorted(o.source for o in outcomes)
    assert outcomes[0].status == "failed" and "broken.pt" in outcomes[0].message
    assert {o.status for o in outcomes[1:]} == {"ingested"}
    query = """SELECT m.model_id, m.name, m.domain, m.n_filters_3x3, sum(f.w0)::DOUBLE, sum(f.w8 * f.w4)::DOUBLE
               FROM models m LEFT JOIN filters f USING (model_id) GROUP BY ALL ORDER BY ALL"""
    assert connect(lake).execute(query).fetchall() == connect(corpus_lake).execute(query).fetchall()
    assert check_lake(lake, repair_leftovers=False).ok


def test_metadata_is_merged_when_another_writer_commits_the_same_bytes_first(corpus, tmp_path, monkeypatch):
    lake, pnet = tmp_path / "lake", corpus / "mtcnn" / "pnet.pt"
    real_commit = writer_mod.ModelWriter.commit

    def lose_the_race(self, layer_rows, model_row):
        monkeypatch.setattr(writer_mod.ModelWriter, "commit", real_commit)
        assert ingest_file(pnet, lake, meta={"name": "first"}).status == "ingested"
        return real_commit(self, layer_rows, model_row)

    monkeypatch.setattr(writer_mod.ModelWriter, "commit", lose_the_race)
    outcome = ingest_file(pnet, lake, meta={"name": "second", "domain": "faces"})
    assert outcome.status == "updated" and outcome.name == "first"
    row = pq.read_table(lake / "models" / f"{outcome.model_id}.parquet").to_pylist()[0]
    assert (row["name"], row["domain"]) == ("first", "faces")
    assert not any((lake / "_staging").iterdir())


def test_depth_source_says_how_depth_was_decided(corpus_lake):
    """Regression: a state dict's depth came from definition order, so VDSR's first conv sat at depth 0.95."""
    con = connect(corpus_lake)
    source = dict(
        con.execute("SELECT regexp_extract(source_uri, '[^/]+$'), depth_source FROM models").fetchall()
    )
    assert (
        source["model_epoch_50.pth"] == "channel_chain" and source["resnet20-12fca82f.th"] == "channel_chain"
    )
    assert source["espnet_p_2_q_8.pth"] == "definition_order" and source["version-RFB-320.onnx"] == "graph"
    first = con.execute(
        "SELECT l.in_channels, l.conv_depth, l.conv_depth_norm FROM layers l JOIN models m "
        "USING (model_id) WHERE m.source_uri LIKE '%vdsr%' ORDER BY l.conv_depth LIMIT 1"
    ).fetchone()
    assert first == (1, 0, 0.0)
