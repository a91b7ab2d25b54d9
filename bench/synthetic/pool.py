"""The corpus pool: the 3x3 layers of the real models of ../shared/corpus by visual domain, cached as .npz."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

from bench.paths import CORPUS, OUT

Pool = dict[str, list[list[np.ndarray]]]  # group -> models -> 3x3 layers as (n, 9) float32
POOL_OF = {"medical": "medical", "faces": "faces", "street scenes": "street", "natural": "natural"}


def _corpus_rows(corpus: Path) -> list[dict[str, str]]:
    """The rows of the corpus manifest."""
    with open(corpus / "MANIFEST.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _read_cache(cache: Path) -> Pool:
    """A pool from its .npz (arrays named group__model__layer)."""
    data = np.load(cache)
    pool: Pool = {}
    for name in sorted(data.files, key=lambda n: tuple(int(p) if p.isdigit() else p for p in n.split("__"))):
        group, model, _layer = name.split("__")
        models = pool.setdefault(group, [])
        while len(models) <= int(model):
            models.append([])
        models[int(model)].append(data[name])
    return pool


def load_pool(corpus: Path = CORPUS, cache: Path | None = None) -> Pool:
    """The 3x3 layers of the corpus models by pool ('medical', 'faces', 'street', 'natural'): lists of (n, 9).

    Read with filterlake's own readers (format twins are skipped); cached as an .npz beside the zoos.
    """
    rows = [
        r
        for r in _corpus_rows(corpus)
        if int(r["filters_3x3"] or 0) > 0 and r["format"] not in ("onnx", "torchscript")
    ]  # the ONNX/TorchScript twins repeat other files
    key = hashlib.sha256(json.dumps([(r["path"], r["sha256"]) for r in rows]).encode()).hexdigest()[:12]
    cache = cache or OUT / f"corpus-pool-{key}.npz"
    if cache.exists():
        return _read_cache(cache)
    from filterlake.extract import iter_filters, model_shape
    from filterlake.readers import open_checkpoint

    pool: Pool = {}
    for row in rows:
        domain = row["domain"]
        group = "medical" if domain.startswith("medical") else POOL_OF.get(domain, "natural")
        shape = model_shape(open_checkpoint(corpus / row["path"]))
        layers = [np.ascontiguousarray(f, np.float32) for _, f in iter_filters(shape) if len(f) >= 8]
        if layers:
            pool.setdefault(group, []).append(layers)
    cache.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        f"{g}__{m}__{i}": a
        for g, models in pool.items()
        for m, layers in enumerate(models)
        for i, a in enumerate(layers)
    }
    np.savez(cache, **arrays)
    return pool
