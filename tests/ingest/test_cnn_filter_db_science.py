"""The key science check of the importer: the same filters give the same analysis, whether they arrive as real
checkpoints (`filterlake.ingest.ingest`, lake A) or inside a CNN Filter DB dataset.h5 (float64, lake B).

Small torch models are built and saved as state dicts with sidecars; their 3x3 weights, cast to float64, are
written into a dataset.h5 in the published layout, with the conv depths lake A found. Both lakes must then have
the same basis (n, mean, components to 1e-12), the same layer statistics, the same domain shifts and the same
`weights_sha256` per model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import nn

from bench.synthetic.cnn_filter_db import Model, write_dataset
from filterlake.derived.analyze import analyze
from filterlake.ingest import ingest
from filterlake.ingest.cnn_filter_db import import_cnn_filter_db
from filterlake.lake.duck import connect

SPECS = {  # name: (domain, input channels, widths, 1x1 projection after the first conv)
    "natural_vgg": ("natural", 3, [8, 16, 16], True),
    "mri_unet": ("medical mri", 1, [4, 8, 8, 4], False),
    "xray_cnn": ("medical xray", 1, [6, 12], True),
    "faces_net": ("faces", 3, [5, 10, 20], False),
}
STAT_COLUMNS = ("n_filters", "n_sparse", "sparsity", "variance_entropy", "orthogonality", "binary_likeness")


def build(name: str, seed: int) -> nn.Sequential:
    """A small CNN: 3x3 convs of the spec's widths (plus a 1x1 conv, which the lake skips) with trained-like
    structure: each layer's filters are a smoothed random field, so the basis is not isotropic."""
    _domain, channels, widths, projection = SPECS[name]
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        if projection and i == 0:
            layers += [nn.Conv2d(width, width, 1)]
        channels = width
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for module in net:
            if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
                smooth = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) * (0.5 + seed % 3)
                module.weight.mul_(smooth).add_(0.01 * seed)
    return net


def test_the_same_filters_give_the_same_analysis_from_checkpoints_and_from_the_dataset(
    tmp_path: Path,
) -> None:
    folder, models = tmp_path / "checkpoints", {}
    folder.mkdir()
    for seed, name in enumerate(SPECS):
        net = build(name, seed)
        path = folder / f"{name}.pt"
        torch.save(net.state_dict(), path)
        meta = {"name": name, "domain": SPECS[name][0], "task": "Classification"}
        path.with_name(path.name + ".meta.json").write_text(json.dumps(meta))
        models[name] = [
            m.weight.detach().numpy() for m in net if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
        ]
    lake_a, lake_b = tmp_path / "lake_a", tmp_path / "lake_b"
    assert {o.status for o in ingest([str(folder)], lake_a)} == {"ingested"}

    depth = (
        connect(lake_a)
        .execute(
            "SELECT m.name, list(l.conv_depth ORDER BY l.layer_idx), list(l.conv_depth_norm ORDER BY l.layer_idx) "
            "FROM layers l JOIN models m USING (model_id) GROUP BY m.name"
        )
        .fetchall()
    )
    depth = {name: (d, n) for name, d, n in depth}
    dataset = [
        Model(
            name,
            [w.astype(np.float64) for w in weights],
            {"Visual Category": SPECS[name][0], "Task": "Classification"},
            conv_depth=depth[name][0],
            conv_depth_norm=depth[name][1],
        )
        for name, weights in models.items()
    ]
    write_dataset(tmp_path / "dataset.h5", dataset)
    result = import_cnn_filter_db(tmp_path / "dataset.h5", lake_b)
    assert {o.status for o in result.outcomes} == {"ingested"} and result.cast_changed == 0

    a, b = analyze(lake_a, "medical", ("domain",)), analyze(lake_b, "medical", ("domain",))
    assert a.basis.n == b.basis.n == sum(w.shape[0] * w.shape[1] for ws in models.values() for w in ws)
    np.testing.assert_allclose(a.basis.mean, b.basis.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.basis.components, b.basis.components, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.basis.evr, b.basis.evr, rtol=0, atol=1e-12)
    assert per_model(lake_a, "weights_sha256") == per_model(lake_b, "weights_sha256")
    assert None not in per_model(lake_a, "weights_sha256").values()
    assert layer_stats(lake_a) == layer_stats(lake_b)
    shifts_a, shifts_b = (pq.read_table(x.shifts["domain"]).to_pylist() for x in (a, b))
    assert [(r["group_a"], r["group_b"]) for r in shifts_a] == [
        (r["group_a"], r["group_b"]) for r in shifts_b
    ]
    np.testing.assert_allclose(
        [r["shift"] for r in shifts_a], [r["shift"] for r in shifts_b], rtol=0, atol=1e-12
    )
    assert any(r["shift"] > 0 for r in shifts_a)


def per_model(lake: Path, column: str) -> dict[str, object]:
    return dict(connect(lake).execute(f"SELECT name, {column} FROM models").fetchall())


def layer_stats(lake: Path) -> dict[tuple[str, int], tuple]:
    """The quality metrics of every layer, keyed by model name and layer index, rounded to 1e-12."""
    columns = ", ".join(f"s.{c}" for c in STAT_COLUMNS)
    rows = (
        connect(lake)
        .execute(
            f"SELECT m.name, s.layer_idx, l.conv_depth, {columns} FROM layer_stats s "
            "JOIN models m USING (model_id) JOIN layers l USING (model_id, layer_idx)"
        )
        .fetchall()
    )
    return {(r[0], r[1]): tuple(round(v, 12) if isinstance(v, float) else v for v in r[2:]) for r in rows}
