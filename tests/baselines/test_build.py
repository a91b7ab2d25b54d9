"""Untrained baselines, built, cached and ingested for real: the lake's filters are bit for bit the 3x3 conv
weights of the same architecture built independently with the same seed; seeds differ; a rebuild gives the same
bytes and model id; the metadata says what was built, how it was initialised and seeded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from filterlake.baselines import ingest_baselines
from filterlake.baselines.architectures import import_torchvision, init_description, resolve
from filterlake.baselines.build import Baseline, build_checkpoint
from filterlake.baselines.unet import UNet
from filterlake.derived.layer_stats import iter_model_layers
from filterlake.errors import FilterlakeError
from filterlake.lake.files import file_sha256, read_table
from filterlake.lake.layout import model_file
from filterlake.vocab import INGESTED, PRESENT, UNTRAINED

SMALL = "mobilenet_v3_small"  # 2.5 M parameters: the architecture for tests that build several models


def lake_filters(lake, model_id) -> dict[str, np.ndarray]:
    """layer_name -> (C_out, C_in, 9) filters of a model, as the lake stores them."""
    names = read_table(lake / "layers" / f"{model_id}.parquet", columns=["layer_idx", "layer_name"])
    name_of = dict(zip(*(names.column(c).to_pylist() for c in ("layer_idx", "layer_name")), strict=True))
    return {name_of[i]: filters for i, filters in iter_model_layers(lake, model_id)}


def conv3x3(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """layer_name -> (C_out, C_in/groups, 9) weights of every 3x3 Conv2d of a model."""
    return {
        name: module.weight.detach().numpy().reshape(*module.weight.shape[:2], 9)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3)
    }


def models_row(lake, model_id) -> dict:
    return read_table(model_file(lake, model_id)).to_pylist()[0]


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    outcomes = ingest_baselines(["ResNet-18"], 1, root / "lake", cache=root / "cache")
    return root, outcomes


def test_resnet18_filters_equal_an_independent_build_bit_for_bit(resnet18):
    root, [outcome] = resnet18
    assert outcome.status == INGESTED and outcome.n_filters == 1_220_608
    torch.manual_seed(0)
    expected = conv3x3(import_torchvision().resnet18(weights=None))
    stored = lake_filters(root / "lake", outcome.model_id)
    assert sorted(stored) == sorted(expected) and len(expected) == 16
    for name, weights in expected.items():
        assert stored[name].dtype == np.float32
        assert np.array_equal(stored[name].view(np.uint32), weights.view(np.uint32)), name


def test_the_metadata_says_what_was_built_and_how(resnet18):
    root, [outcome] = resnet18
    row = models_row(root / "lake", outcome.model_id)
    extra = json.loads(row["extra"])
    assert (row["domain"], row["architecture"], row["name"]) == (
        UNTRAINED,
        "resnet18",
        "resnet18 untrained, seed 0",
    )
    assert row["task"] == row["training_dataset"] == "none (untrained)"
    assert extra["baseline"] is True and extra["seed"] == 0 and extra["library"] == "torchvision"
    assert extra["init"].startswith("Conv2d kaiming_normal_(mode='fan_out', nonlinearity='relu')")
    assert extra["torch"] == torch.__version__ and extra["torchvision"].startswith("0.28.0")
    assert "torch.manual_seed(seed) right before construction" in extra["seeded"]
    assert row["format"] == "safetensors" and row["source_uri"].endswith("resnet18/seed-0.safetensors")


def test_running_again_adds_nothing(resnet18):
    root, [first] = resnet18
    [again] = ingest_baselines(["resnet18"], 1, root / "lake", cache=root / "cache")
    assert (again.status, again.model_id) == (PRESENT, first.model_id)


def test_seeds_differ_and_a_rebuild_gives_the_same_bytes(tmp_path):
    outcomes = ingest_baselines([SMALL], 2, tmp_path / "lake", cache=tmp_path / "a")
    assert [o.status for o in outcomes] == [INGESTED, INGESTED]
    assert outcomes[0].model_id != outcomes[1].model_id
    seed0, seed1 = (lake_filters(tmp_path / "lake", o.model_id) for o in outcomes)
    assert all(not np.array_equal(seed0[name], seed1[name]) for name in seed0)
    rebuilt = ingest_baselines(
        [SMALL], 2, tmp_path / "lake", cache=tmp_path / "b"
    )  # another cache: built anew
    assert [(o.status, o.model_id) for o in rebuilt] == [(PRESENT, o.model_id) for o in outcomes]
    a, b = (build_checkpoint(Baseline(resolve(SMALL), 1), tmp_path / c) for c in "ab")
    assert a != b and file_sha256(a) == file_sha256(b)


def test_the_unet_is_ingested_with_its_own_init(tmp_path):
    [outcome] = ingest_baselines(["unet"], 1, tmp_path / "lake", cache=tmp_path / "cache")
    torch.manual_seed(0)
    expected = conv3x3(UNet())
    stored = lake_filters(tmp_path / "lake", outcome.model_id)
    assert len(stored) == 18 and outcome.n_filters == 784_416
    assert all(np.array_equal(stored[name], weights) for name, weights in expected.items())
    assert outcome.skipped == {"other_kernel": 4, "1x1": 1}  # the 2x2 up-convolutions and the 1x1 head
    extra = json.loads(models_row(tmp_path / "lake", outcome.model_id)["extra"])
    assert extra["library"] == "filterlake" and extra["init"].startswith("PyTorch defaults")


@pytest.mark.parametrize(
    ("given", "expected"),
    [("resnet18", "resnet18"), ("ResNet-18", "resnet18"), ("mobilenetv2", "mobilenet_v2"), ("UNet", "unet")],
)
def test_names_are_normalised(given, expected):
    assert resolve(given).name == expected


def test_an_unknown_name_fails_in_one_line_saying_how_to_find_names():
    with pytest.raises(FilterlakeError) as caught:
        resolve("resnet19")
    message = str(caught.value)
    assert "\n" not in message and "unknown architecture" in message and "resnet18" in message
    assert "filterlake baseline --list" in message


def test_a_timm_name_without_timm_fails_in_one_line(tmp_path):
    with pytest.raises(FilterlakeError) as caught:
        ingest_baselines(["resnet18", "timm:resnet18"], 1, tmp_path / "lake")
    assert "\n" not in str(caught.value) and "timm is not installed" in str(caught.value)
    assert not (tmp_path / "lake").exists()  # names are resolved before anything is built


def test_every_torchvision_classification_module_has_its_init_described():
    models = import_torchvision()
    for name in models.list_models(module=models):
        assert "not summarised" not in init_description(resolve(name)), name
