"""What training changed, layer by layer: the shift D between each layer of a trained model and the same layer of
the untrained baselines of its architecture (`filterlake baseline`), where one exists.

A trained layer is matched to a baseline layer of the same family (compared without case or punctuation, so
"ResNet-18" meets torchvision's "resnet18"), at the same position among the 3x3 layers (`layer_idx`) and with the
same (out, in) shape, in the baseline design (architecture) of the family that matches most of its layers; the
seeds of that design are pooled. D is the analysis's: same basis, histogram spec and component weights (methods.md §5).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from filterlake.derived.groupings import architecture_family
from filterlake.lake.files import staging, write_table_atomic
from filterlake.lake.layout import comparison_file
from filterlake.lake.schema import arrow_schema
from filterlake.numeric.shift import shift
from filterlake.vocab import is_untrained

if TYPE_CHECKING:
    from pathlib import Path

    from filterlake.derived.analyze import Analysis

BASELINE_SHIFTS = "baseline_shifts"
TABLES = (BASELINE_SHIFTS,)


def family_key(family: str) -> str:
    """The matching key of a family: lower case, letters and digits only ("U-Net" and "unet" meet)."""
    return re.sub(r"[^a-z0-9]", "", family.lower())


def _layer_counts(con: duckdb.DuckDBPyConnection, analysis: Analysis, model_ids: list[str]) -> dict:
    """(model_id, layer_idx) -> (9, B) counts of the analysis's histogram spec."""
    got = con.execute(
        "SELECT model_id, layer_idx, component, bin, count FROM histograms "
        "WHERE basis = ? AND spec = ? AND model_id IN (SELECT unnest(?::VARCHAR[]))",
        [analysis.basis_id, analysis.spec.key, model_ids],
    ).fetchnumpy()
    out: dict[tuple[str, int], np.ndarray] = {}
    for m, i, k, b, n in zip(
        *(got[c].tolist() for c in ("model_id", "layer_idx", "component", "bin", "count"))
    ):
        out.setdefault((m, i), np.zeros((9, analysis.spec.bins), np.int64))[k, b] += n
    return out


def _pooled(design: list[str], shapes: dict, counts: dict) -> dict[int, tuple[tuple[int, int], np.ndarray]]:
    """layer_idx -> (shape, counts summed over the design's baseline models) where they all share the shape."""
    pooled = {}
    for layer_idx in sorted({i for (m, i) in shapes if m in design}):
        found = {shapes.get((m, layer_idx)) for m in design}
        total = sum(counts.get((m, layer_idx), 0) for m in design)
        if len(found) == 1 and None not in found and np.any(total):
            pooled[layer_idx] = (found.pop(), total)
    return pooled


def baseline_rows(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> list[dict[str, Any]]:
    """One row per matched trained layer: D from the pooled baseline layer, and what it was matched with.

    A family may hold several baseline designs (e.g. vgg11 and vgg16): each trained model is read against the
    design whose layers match most of its own (position and shape), that design's seeds pooled."""
    models = con.execute(
        "SELECT model_id, architecture, json_extract_string(extra, '$.family'), domain FROM models"
    ).fetchall()
    designs: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    trained = defaultdict(list)
    for model_id, architecture, family, domain in models:
        key = family_key(architecture_family(architecture, family))
        if is_untrained(domain):
            designs[key][architecture or ""].append(model_id)
        else:
            trained[key].append(model_id)
    keys = sorted(k for k in designs if k in trained)
    if not keys:
        return []
    involved = [m for k in keys for m in (*trained[k], *(b for d in designs[k].values() for b in d))]
    shapes = {
        (m, i): (o, n)
        for m, i, o, n in con.execute(
            "SELECT model_id, layer_idx, out_channels, in_channels FROM layers "
            "WHERE model_id IN (SELECT unnest(?::VARCHAR[]))",
            [involved],
        ).fetchall()
    }
    counts = _layer_counts(con, analysis, involved)
    edges, weights = analysis.spec.edges, analysis.weights()
    rows = []
    for key in keys:
        pooled = {name: _pooled(design, shapes, counts) for name, design in sorted(designs[key].items())}
        for model_id in trained[key]:

            def matched(layers: dict, model_id: str = model_id) -> list[int]:
                return [
                    i
                    for i, (shape, _) in layers.items()
                    if shapes.get((model_id, i)) == shape and np.any(counts.get((model_id, i), 0))
                ]

            name = max(pooled, key=lambda n: len(matched(pooled[n])))
            for layer_idx in matched(pooled[name]):
                d, _ = shift(counts[(model_id, layer_idx)], pooled[name][layer_idx][1], edges, weights)
                rows.append(
                    {
                        "model_id": model_id,
                        "layer_idx": layer_idx,
                        "family": key,
                        "baseline_architecture": name,
                        "n_baselines": len(designs[key][name]),
                        "shift": float(d),
                    }
                )
    return rows


def store_baseline_shifts(analysis: Analysis) -> Path:
    """Compute and store `baseline_shifts` for the analysis (an empty table when nothing matches)."""
    rows = baseline_rows(analysis.connect(), analysis)
    context = {"basis_id": analysis.basis_id, "preset": analysis.preset.name}
    table = pa.Table.from_pylist([{**r, **context} for r in rows], schema=arrow_schema(BASELINE_SHIFTS))
    path = comparison_file(analysis.lake, BASELINE_SHIFTS, analysis.basis_id, analysis.preset.name)
    with staging(analysis.lake) as stage:
        write_table_atomic(table, path, BASELINE_SHIFTS, stage)
    return path
