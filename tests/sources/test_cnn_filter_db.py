"""Reading CNN Filter DB's dataset.h5 (sources/cnn_filter_db.py) from synthetic files in the published layout:
both spellings of the filters dataset, ragged layers, the inclusive end of `filter_ids` up to N-1, blocks that
cut layers anywhere, and every bad file or bad range named in one line."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from bench.synthetic.cnn_filter_db import Model, write_dataset
from filterlake.errors import CheckpointError
from filterlake.sources.cnn_filter_db import open_dataset


def ragged_models(seed: int = 0) -> list[Model]:
    """Three models of ragged layers, float32-exact float64 values."""
    rng = np.random.default_rng(seed)

    def layer(out_channels: int, in_channels: int) -> np.ndarray:
        return rng.standard_normal((out_channels, in_channels, 3, 3), np.float32).astype(np.float64)

    return [
        Model("resnet_a", [layer(4, 3), layer(5, 4), layer(7, 5)], {"Visual Category": "natural"}),
        Model(
            "unet_b", [layer(2, 1), layer(3, 2)], {"Visual Category": "medical ct", "Task": "Segmentation"}
        ),
        Model("tiny_c", [layer(6, 3), layer(1, 6)], {"Visual Category": "faces"}),
    ]


def expected_filters(models: list[Model]) -> np.ndarray:
    return np.concatenate([w.reshape(-1, 9) for m in models for w in m.layers])


@pytest.mark.parametrize("key", ["filters", "filter"])
def test_both_spellings_read_every_filter_in_blocks_that_cut_layers(tmp_path: Path, key: str) -> None:
    models = ragged_models()
    counts = write_dataset(tmp_path / "dataset.h5", models, key=key, chunk_rows=7)
    with open_dataset(tmp_path / "dataset.h5") as ds:
        assert (ds.key, ds.n, ds.version) == (key, counts["filters"], "v1.0.0")
        assert ds.dtype == (np.float64 if key == "filters" else np.float32)
        assert [m.name for m in ds.models] == ["resnet_a", "unet_b", "tiny_c"]
        assert ds.models[-1].layers[-1].stop == ds.n  # "start:N-1", inclusive, reaches the last filter
        assert [layer.n_filters for layer in ds.models[0].layers] == [12, 20, 35]
        for chunk in (1, 5, 13, 1000):
            read = []
            for model in ds.models:
                per_layer: dict[int, list[np.ndarray]] = {}
                for k, first, block in ds.blocks(model, chunk):
                    assert first == sum(len(b) for b in per_layer.get(k, [])) and len(block) <= chunk
                    per_layer.setdefault(k, []).append(block)
                assert sorted(per_layer) == list(range(len(model.layers)))
                read += [b for k in sorted(per_layer) for b in per_layer[k]]
            np.testing.assert_array_equal(np.concatenate(read), expected_filters(models))
    assert all(m.problem is None for m in ds.models)


def test_metadata_columns_and_index_levels(tmp_path: Path) -> None:
    write_dataset(tmp_path / "dataset.h5", ragged_models())
    with open_dataset(tmp_path / "dataset.h5") as ds:
        unet = ds.models[1]
        assert unet.columns["Visual Category"] == "medical ct" and unet.columns["Framework"] == "PyTorch"
        first = unet.layers[0]
        assert (first.conv_depth, first.conv_depth_norm, first.layer_depth, first.in_channels) == (
            0,
            0.0,
            1,
            1,
        )
        assert (unet.layers[1].conv_depth_norm, unet.layers[1].out_channels) == (1.0, 3)


def rewrite_meta(path: Path, edit) -> None:
    """Replace `meta` by `edit(frame)` (the index reset: plain columns), written back as pandas writes it."""
    frame = pd.read_hdf(path, "meta").reset_index()
    frame = edit(frame)
    with h5py.File(path, "a") as h5:
        del h5["meta"]
    frame = frame.set_index(
        [c for c in ("model_id", "conv_depth", "conv_depth_norm", "layer_id") if c in frame]
    )
    frame = frame.astype({c: object for c in frame.columns if frame[c].dtype.kind not in "iuf"})
    with warnings.catch_warnings():  # PyTables pickles the object columns, as in the published file
        warnings.simplefilter("ignore")
        frame.to_hdf(path, key="meta")


def set_ids(row: int, text: str):
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, "filter_ids"] = text
        return frame

    return edit


@pytest.mark.parametrize(
    ("edit", "bad", "reason"),
    [
        (set_ids(4, "94:99"), {"unet_b"}, "reaches beyond the 99 filters"),  # N = 99: rows 0..98
        (set_ids(4, "-1:4"), {"unet_b"}, "is not a range"),
        (set_ids(5, "75:81"), {"tiny_c"}, "holds 7 filters, out_channels x in_channels = 6 x 3 = 18"),
        (set_ids(3, "60:61"), {"unet_b", "resnet_a"}, "overlap"),
        (set_ids(6, "80:85"), {"tiny_c"}, "overlap another of its layers"),
        (set_ids(0, "x"), {"resnet_a"}, "is not 'start:end'"),
    ],
)
def test_ranges_that_do_not_match_the_filters_fail_their_model_alone(tmp_path, edit, bad, reason) -> None:
    path = tmp_path / "dataset.h5"
    write_dataset(path, ragged_models())
    rewrite_meta(path, edit)
    with open_dataset(path) as ds:
        problems = {m.name: m.problem for m in ds.models if m.problem}
    assert set(problems) == bad, problems
    assert all(p.startswith(f"{path}: model ") and reason in p for p in problems.values()), problems


def test_a_file_that_cannot_be_read_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    write_dataset(path, ragged_models())
    cases = {
        "no such file": tmp_path / "missing.h5",
        "not a dataset.h5": tmp_path,
    }
    for reason, where in cases.items():
        with pytest.raises(CheckpointError, match=reason):
            open_dataset(where)
    with h5py.File(path, "a") as h5:
        del h5["filters"]
    with pytest.raises(CheckpointError, match="no filters dataset"):
        open_dataset(path)

    write_dataset(path, ragged_models())
    with h5py.File(path, "a") as h5:
        del h5["meta"]
    with pytest.raises(CheckpointError, match="no 'meta' frame"):
        open_dataset(path)

    write_dataset(path, ragged_models())
    rewrite_meta(path, lambda frame: frame.drop(columns=["layer_id"]))
    with pytest.raises(CheckpointError, match="index lacks layer_id"):
        open_dataset(path)

    write_dataset(path, ragged_models())
    rewrite_meta(path, lambda frame: frame.drop(columns=["filter_ids"]))
    with pytest.raises(CheckpointError, match="lacks the column filter_ids"):
        open_dataset(path)


def test_a_truncated_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    write_dataset(path, ragged_models())
    data = path.read_bytes()
    for keep in (0.1, 0.5, 0.9, 0.99):
        cut = tmp_path / f"cut-{keep}.h5"
        cut.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(CheckpointError) as caught, open_dataset(cut) as ds:
            for model in ds.models:
                list(ds.blocks(model))
        assert str(caught.value).startswith(str(cut)) and "\n" not in str(caught.value)


class _Payload:
    """Unpickling this runs a shell command (the attack a hostile dataset.h5 would carry)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_object_column_never_runs_code(tmp_path: Path) -> None:
    """pandas pickles object columns; a global other than numpy's array reconstruction is refused."""
    path = tmp_path / "dataset.h5"
    write_dataset(path, ragged_models())
    marker = tmp_path / "pwned"

    def poison(frame: pd.DataFrame) -> pd.DataFrame:
        frame["Comment"] = [_Payload(marker)] * len(frame)
        return frame

    rewrite_meta(path, poison)
    with pytest.raises(CheckpointError) as exc:
        open_dataset(path)
    assert "refused" in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)
    assert not marker.exists()
    write_dataset(path, ragged_models())  # the plain object columns of the published layout still read
    assert len(open_dataset(path).models) == 3
