"""Write a whole synthetic zoo (in parallel if asked) and its manifest `synthetic.json`; read them back."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.paths import CORPUS
from bench.synthetic.plan import ModelSpec, default_max_model_filters, plan
from bench.synthetic.pool import Pool, load_pool
from bench.synthetic.writers import write_model

MANIFEST = "synthetic.json"  # what a generated folder holds: every model with its expected counts

_WORKER_POOL: Pool | None = None


def _init_worker(corpus: str) -> None:
    """Load the (cached) corpus pool once per worker process."""
    global _WORKER_POOL
    _WORKER_POOL = load_pool(Path(corpus))


def _write_one(args: tuple[ModelSpec, str]) -> dict[str, Any]:
    """Write one model in a worker process."""
    spec, out = args
    assert _WORKER_POOL is not None
    return write_model(spec, Path(out), _WORKER_POOL)


def _count(values: Iterable[str]) -> dict[str, int]:
    """How often each value occurs, by value."""
    return dict(sorted(Counter(values).items()))


def generate(
    out: Path,
    n_filters: int,
    seed: int = 0,
    parts: int = 1,
    corpus: Path = CORPUS,
    jobs: int = 1,
    **options: Any,
) -> dict[str, Any]:
    """Write a zoo to `out` (not holding one yet) and return its manifest (also written as `synthetic.json`).

    `options` are `plan`'s (n_models, max_model_filters, family, formats, prefix). `parts` > 1 makes the zoo
    out of that many independent zoos of `n_filters` each (seeds seed .. seed+parts-1): a zoo of scale s is s
    base zoos, so every scale has the same distribution of models and layers, and the zoo of scale 1 is the
    first part of the zoo of scale 10.
    """
    start = time.perf_counter()
    out = Path(out)
    if (out / MANIFEST).exists():
        raise FileExistsError(f"{out} already holds a synthetic zoo; delete it first")
    out.mkdir(parents=True, exist_ok=True)
    specs = [spec for part in range(parts) for spec in plan(n_filters, seed + part, **options)]
    load_pool(corpus)  # build the cache once before workers start
    if jobs > 1 and len(specs) > 1:
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(str(corpus),)) as ex:
            tasks = [(spec, str(out)) for spec in specs]
            entries = list(ex.map(_write_one, tasks, chunksize=max(1, len(specs) // 64)))
    else:
        pool = load_pool(corpus)
        entries = [write_model(spec, out, pool) for spec in specs]
    n_models = options.get("n_models")
    largest = options.get("max_model_filters") or default_max_model_filters(n_filters)
    manifest = {
        "n_models": len(entries),
        "n_filters": sum(e["n_filters"] for e in entries),
        "n_layers_3x3": sum(e["n_layers_3x3"] for e in entries),
        "bytes": sum(e["bytes"] for e in entries),
        "requested_filters": n_filters * parts,
        "requested_models": n_models,
        "seed": seed,
        "parts": parts,
        "max_model_filters": None if n_models is not None else largest,  # a cap of budget mode only
        "family": options.get("family"),
        "formats": _count(e["format"] for e in entries),
        "families": _count(e["family"] for e in entries),
        "domains": _count(e["domain"] for e in entries),
        "seconds": round(time.perf_counter() - start, 3),
        "models": entries,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest a synthetic zoo was written with (`generate`'s return value)."""
    return json.loads((Path(folder) / MANIFEST).read_text())


def checkpoint_files(folder: Path, manifest: dict[str, Any]) -> list[Path]:
    """The checkpoint files of a synthetic zoo, in the order of its manifest."""
    return [Path(folder) / m["path"] for m in manifest["models"]]
