"""Hugging Face Hub sources, for real and without the Hub: a cache laid out on disk under HF_HUB_OFFLINE=1, and a
local Hub over HTTP (tests/sources/hub_fixtures.py) that huggingface_hub talks to through HF_ENDPOINT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from huggingface_hub import constants  # noqa: F401  loaded here, in a clean environment: read at import
from safetensors.torch import save

from filterlake.errors import SourceError, TransientSourceError
from filterlake.ingest import Outcome, ingest
from filterlake.lake.layout import filters_part, layers_file, model_file
from filterlake.sources import hf, hf_card
from filterlake.vocab import FAILED, INGESTED, PRESENT
from tests.conftest import REPO
from tests.sources.hub_fixtures import (
    HubRepo,
    LocalHub,
    card_files,
    conv_tensors,
    etag,
    filters_of,
    flat_tensors,
    free_port,
    lay_out_cache,
    serving,
    sharded_repo,
    single_repo,
)

TOKEN = "hf_test_token"
TINY, FLAT, GATED, SHARDED = conv_tensors(0), flat_tensors(), conv_tensors(2), conv_tensors(3)
CARD_EXTRA = {
    "hf_datasets": ["imagenet-1k"],
    "hf_library_name": "timm",
    "hf_pipeline_tag": "image-classification",
    "hf_tags": ["image-classification", "timm"],
}


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty HF_HUB_CACHE of this test, online, without a token."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return cache


@pytest.fixture
def hub(hf_cache, monkeypatch) -> Iterator[LocalHub]:
    """A local Hub with a plain, a no-3x3, a gated and a sharded repository, at HF_ENDPOINT."""
    repos = {
        "org/tiny": HubRepo(single_repo(TINY)),
        "org/flat": HubRepo({**card_files(), "model.safetensors": save(FLAT)}),
        "org/gated": HubRepo(single_repo(GATED), token=TOKEN),
        "org/sharded": HubRepo(sharded_repo(SHARDED)),
    }
    with serving(LocalHub(repos)) as local:
        monkeypatch.setenv("HF_ENDPOINT", local.url)
        yield local


def run(tmp_path: Path, *names: str, catalogs: tuple[Path, ...] = ()) -> list[Outcome]:
    return ingest(list(names), tmp_path / "lake", list(catalogs), cache=tmp_path / "filterlake-cache")


def lake_model(tmp_path: Path, model_id: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The models row of a model and its filters by layer name, read back from the lake."""
    lake = tmp_path / "lake"
    row = pq.read_table(model_file(lake, model_id)).to_pylist()[0]
    names = {r["layer_idx"]: r["layer_name"] for r in pq.read_table(layers_file(lake, model_id)).to_pylist()}
    table = pq.read_table(filters_part(lake, model_id)).sort_by(
        [("layer_idx", "ascending"), ("filter_idx", "ascending")]
    )
    layer_idx = table["layer_idx"].to_numpy()
    values = np.stack([table[f"w{k}"].to_numpy() for k in range(9)], axis=1)
    return row, {name: values[layer_idx == idx] for idx, name in names.items()}


def model_files(tmp_path: Path) -> dict[str, int]:
    """The files of the models, layers and filters tables, with their mtimes."""
    lake = tmp_path / "lake"
    tables = [
        p for table in ("models", "layers", "filters") for p in (lake / table).rglob("*") if p.is_file()
    ]
    return {str(p.relative_to(lake)): p.stat().st_mtime_ns for p in tables}


def assert_filters(found: dict[str, np.ndarray], tensors) -> None:
    expected = filters_of(tensors)
    assert sorted(found) == sorted(expected)
    for name, filters in expected.items():
        np.testing.assert_array_equal(found[name], filters)


def test_an_offline_cache_is_ingested_with_the_repository_metadata(tmp_path, hf_cache, monkeypatch):
    commit = lay_out_cache(hf_cache, "org/tiny", single_repo(TINY))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    [outcome] = run(tmp_path, "hf://org/tiny")
    assert (outcome.status, outcome.source) == (INGESTED, f"hf://org/tiny@{commit}/model.safetensors")
    assert (outcome.n_layers, outcome.n_filters) == (2, 4 * 3 + 5 * 2)
    row, filters = lake_model(tmp_path, outcome.model_id)
    assert_filters(filters, TINY)
    assert {k: row[k] for k in ("name", "architecture", "task", "training_dataset", "license", "format")} == {
        "name": "org/tiny",
        "architecture": "resnet18",
        "task": "image classification",
        "training_dataset": "imagenet-1k",
        "license": "apache-2.0",
        "format": "safetensors",
    }
    assert row["source_uri"] == f"hf://org/tiny@{commit}/model.safetensors"
    assert json.loads(row["extra"]) == {"hf_repo": "org/tiny", "hf_commit": commit, **CARD_EXTRA}


def test_an_offline_sharded_checkpoint_is_one_model_of_its_index_and_shards(tmp_path, hf_cache, monkeypatch):
    commit = lay_out_cache(hf_cache, "org/sharded", sharded_repo(SHARDED))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    [outcome] = run(tmp_path, "hf://org/sharded")
    assert (outcome.status, outcome.source) == (
        INGESTED,
        f"hf://org/sharded@{commit}/model.safetensors.index.json",
    )
    row, filters = lake_model(tmp_path, outcome.model_id)
    assert_filters(filters, SHARDED)
    assert (row["n_files"], row["name"]) == (3, "org/sharded")
    # the reader opens the index beside hard links of the cached shards (the snapshot holds symlinks into blobs)
    snapshot = hf_cache / "models--org--sharded" / "snapshots" / commit
    linked = tmp_path / "filterlake-cache" / "hf" / "org--sharded" / commit
    for name in (
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ):
        assert (linked / name).stat().st_ino == (snapshot / name).resolve().stat().st_ino


def test_a_catalog_entry_picks_files_and_its_fields_win_over_the_repository(tmp_path, hf_cache, monkeypatch):
    commit = lay_out_cache(hf_cache, "org/tiny", single_repo(TINY))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    catalog = tmp_path / "hub.toml"
    catalog.write_text(
        f'[[model]]\nhf = "org/tiny"\nrevision = "{commit}"\nfiles = ["pytorch_model.bin"]\n'
        'name = "tiny (torch)"\nlicense = "MIT"\ndomain = "natural"\nteam = "vision"\n'
    )
    [outcome] = run(tmp_path, catalogs=(catalog,))
    assert (outcome.status, outcome.source) == (INGESTED, f"hf://org/tiny@{commit}/pytorch_model.bin")
    row, filters = lake_model(tmp_path, outcome.model_id)
    assert_filters(filters, TINY)
    assert {k: row[k] for k in ("name", "license", "domain", "architecture", "training_dataset")} == {
        "name": "tiny (torch)",
        "license": "MIT",
        "domain": "natural",
        "architecture": "resnet18",
        "training_dataset": "imagenet-1k",
    }
    assert row["format"].startswith("torch") and json.loads(row["extra"])["team"] == "vision"


def test_offline_a_missing_repository_or_file_is_one_line(tmp_path, hf_cache, monkeypatch):
    commit = lay_out_cache(hf_cache, "org/tiny", {"model.safetensors": save(TINY)})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    absent, no_file = run(tmp_path, "hf://org/absent", "hf://org/tiny/pytorch_model.bin")
    assert (absent.status, absent.message) == (
        FAILED,
        f"hf://org/absent: not in the Hugging Face cache ({hf_cache}) and HF_HUB_OFFLINE=1 forbids downloading it",
    )
    assert (no_file.status, no_file.message) == (
        FAILED,
        f"hf://org/tiny@{commit}/pytorch_model.bin: no file 'pytorch_model.bin' in the repository at this commit",
    )


def test_a_repository_without_a_3x3_conv_is_passed_over_with_nothing_downloaded(tmp_path, hub, hf_cache):
    [outcome] = run(tmp_path, "hf://org/flat")
    commit, weights = hub.repos["org/flat"].commit, hub.repos["org/flat"].files["model.safetensors"]
    assert (outcome.status, outcome.message) == (
        FAILED,
        f"hf://org/flat@{commit}/model.safetensors: no 3x3 convolution in the safetensors header; nothing downloaded",
    )
    served = hub.served("org/flat", "model.safetensors")
    assert [s.range for s in served] == ["bytes=0-100000"]  # one header read, never the whole file
    assert served[0].sent == 100_001 < len(weights)  # the header and the first 100 kB, not the weights whole
    assert not hub.served("org/flat", "model.safetensors", "HEAD")
    assert not (hf_cache / "models--org--flat" / "blobs" / etag(weights)).exists()
    assert not (tmp_path / "lake" / "models").exists() or not list((tmp_path / "lake" / "models").iterdir())


def test_a_gated_repository_needs_hf_token(tmp_path, hub, monkeypatch):
    [refused] = run(tmp_path, "hf://org/gated")
    assert (refused.status, refused.message) == (
        FAILED,
        "hf://org/gated: gated repository, set HF_TOKEN to a token with access (HTTP 401)",
    )
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    [outcome] = run(tmp_path, "hf://org/gated")
    assert outcome.status == INGESTED
    assert_filters(lake_model(tmp_path, outcome.model_id)[1], GATED)
    weights = hub.served("org/gated", "model.safetensors")
    assert weights[-1].authorization == f"Bearer {TOKEN}" and weights[-1].range is None


def test_safetensors_first_into_hf_hub_cache_and_a_second_ingest_adds_nothing(
    tmp_path, hub, hf_cache, monkeypatch
):
    repo = hub.repos["org/tiny"]
    [outcome] = run(tmp_path, "hf://org/tiny")
    assert (outcome.status, outcome.source) == (INGESTED, f"hf://org/tiny@{repo.commit}/model.safetensors")
    assert not hub.served("org/tiny", "pytorch_model.bin") and not hub.served(
        "org/tiny", "pytorch_model.bin", "HEAD"
    )
    [whole] = [s for s in hub.served("org/tiny", "model.safetensors") if s.range is None]
    assert whole.sent == len(repo.files["model.safetensors"])
    storage = hf_cache / "models--org--tiny"
    assert (storage / "refs" / "main").read_text() == repo.commit
    snapshot = storage / "snapshots" / repo.commit / "model.safetensors"
    assert snapshot.resolve() == (storage / "blobs" / etag(repo.files["model.safetensors"])).resolve()
    assert snapshot.read_bytes() == repo.files["model.safetensors"]
    lake_files = model_files(tmp_path)

    hub.log.clear()
    [again] = run(tmp_path, "hf://org/tiny")
    assert (again.status, again.model_id) == (PRESENT, outcome.model_id)
    assert [s.path for s in hub.log if "/resolve/" in s.path] == []  # only the listing was asked for
    assert model_files(tmp_path) == lake_files

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what the online run cached serves an offline one
    hub.log.clear()
    [offline] = run(tmp_path, "hf://org/tiny")
    assert (offline.status, offline.source, hub.log) == (PRESENT, outcome.source, [])


def test_shards_are_downloaded_beside_their_index_in_the_snapshot(tmp_path, hub, hf_cache):
    repo = hub.repos["org/sharded"]
    [outcome] = run(tmp_path, "hf://org/sharded")
    assert outcome.status == INGESTED
    assert_filters(lake_model(tmp_path, outcome.model_id)[1], SHARDED)
    snapshot = hf_cache / "models--org--sharded" / "snapshots" / repo.commit
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(repo.files)


def test_missing_repository_revision_and_file_are_one_line_each(tmp_path, hub):
    commit = hub.repos["org/tiny"].commit
    outcomes = run(tmp_path, "hf://org/nope", "hf://org/tiny@v9", "hf://org/tiny/model.onnx")
    assert [(o.status, o.message) for o in outcomes] == [
        (FAILED, "hf://org/nope: no such repository on the Hub, or a private one (set HF_TOKEN) (HTTP 404)"),
        (FAILED, "hf://org/tiny@v9: no such revision in the repository"),
        (FAILED, f"hf://org/tiny@{commit}/model.onnx: no file 'model.onnx' in the repository at this commit"),
    ]


def test_a_hub_that_is_down_or_failing_is_a_transient_error(tmp_path, hub, monkeypatch):
    hub.failing = 503
    with pytest.raises(
        TransientSourceError, match=r"^hf://org/tiny: the Hub answered HTTP 503, try again later$"
    ):
        hf.resolve(hf.parse_uri("hf://org/tiny"))
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HF_ENDPOINT", down)
    with pytest.raises(TransientSourceError) as raised:
        hf.resolve(hf.parse_uri("hf://org/tiny"))
    assert str(raised.value).startswith(f"hf://org/tiny: cannot reach the Hub at {down} (ConnectError: ")
    [outcome] = run(tmp_path, "hf://org/tiny")
    assert (outcome.status, outcome.message) == (FAILED, str(raised.value)) and "\n" not in outcome.message


def test_the_uri_and_catalog_forms():
    assert hf.parse_uri("hf://org/name") == hf.HubRef("org/name")
    assert hf.parse_uri("hf://org/name@v1.0/sub/model.onnx") == hf.HubRef(
        "org/name", "v1.0", ("sub/model.onnx",)
    )
    assert hf.parse_uri("hf://org/name@refs%2Fpr%2F3") == hf.HubRef("org/name", "refs/pr/3")
    assert hf.hub_uri("org/name", "refs/pr/3", "a.onnx") == "hf://org/name@refs%2Fpr%2F3/a.onnx"
    with pytest.raises(
        SourceError, match=r"^hf://org: not a Hub model; expected hf://ORG/NAME\[@REVISION\]\[/PATH\]$"
    ):
        hf.parse_uri("hf://org")
    assert hf.entry_ref({"hf": "org/name", "files": "a.onnx"}) == hf.HubRef("org/name", None, ("a.onnx",))
    with pytest.raises(SourceError, match=r"^field 'files': \[3\] is not a list of paths in the repository$"):
        hf.entry_ref({"hf": "org/name", "files": [3]})


def test_a_catalog_hf_entry_is_checked_alone(tmp_path, hf_cache):
    catalog = tmp_path / "bad.json"
    catalog.write_text(json.dumps([{"hf": "not-a-repo"}, {"hf": "org/x", "path": "a.pt"}]))
    bad_repo, two_sources = run(tmp_path, catalogs=(catalog,))
    assert (
        bad_repo.message
        == f"{catalog}: bad.json entry 1: field 'hf': 'not-a-repo' is not a repository ORG/NAME"
    )
    assert two_sources.message == (
        f"{catalog}: bad.json entry 2: field '(entry)': needs exactly one source: "
        "'path', 'url', 'wheel' with 'member', or 'hf'"
    )


def test_weight_files_are_chosen_one_format_per_repository():
    shards = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    files = ["README.md", "model.safetensors.index.json", *shards, "pytorch_model.bin", "onnx/model.onnx"]
    assert hf.choose(files, shards) == ["model.safetensors.index.json"]
    assert hf.choose(["pytorch_model.bin", "training_args.bin", "onnx/model.onnx"], set()) == [
        "pytorch_model.bin"
    ]
    assert hf.choose(["model.onnx", "model_fp16.onnx", "vocab.txt"], set()) == [
        "model.onnx",
        "model_fp16.onnx",
    ]
    assert hf.choose(["README.md", "tokenizer.json"], set()) == []


def test_the_header_check_uses_the_extraction_rule_in_both_layouts():
    assert hf.has_3x3_conv([64, 3, 3, 3], "F32") and hf.has_3x3_conv([64, 3, 3, 16], "BF16")  # OIHW, OHWI
    assert not hf.has_3x3_conv([64, 16, 1, 1], "F32") and not hf.has_3x3_conv([64, 3, 3, 3], "I8")
    assert not hf.has_3x3_conv([64, 16, 3], "F16") and not hf.has_3x3_conv([8, 8, 3, 3, 3], "F32")


def test_card_and_config_metadata():
    card = hf_card.front_matter(
        "---\nlicense: other\nlicense_name: custom\npipeline_tag: feature-extraction\n---\n# x"
    )
    meta = hf_card.repo_metadata("o/n", "c" * 40, card, {"architectures": ["ResNetForImageClassification"]})
    assert meta == {
        "architecture": "ResNetForImageClassification",
        "license": "custom",
        "extra": {"hf_repo": "o/n", "hf_commit": "c" * 40, "hf_pipeline_tag": "feature-extraction"},
    }
    assert hf_card.front_matter("# no front matter\n---\n") == {}


def test_the_cli_prints_one_line_per_outcome(tmp_path, hub, hf_cache):
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(hf_cache),
        "FILTERLAKE_CACHE": str(tmp_path),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "filterlake",
            "ingest",
            "hf://org/tiny",
            "hf://org/gated",
            "--lake",
            str(tmp_path / "lake"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("failed")]
    assert failed == [
        "failed hf://org/gated: gated repository, set HF_TOKEN to a token with access (HTTP 401)"
    ]
    assert "Traceback" not in done.stderr
    assert done.stdout.splitlines()[-1].startswith(
        "2 sources: 1 ingested, 0 already present, 0 metadata updated, 1 failed; new: 2 layers, 22 filters"
    )
