"""The stages a child process times: filterlake's ingest, analysis and regrouping; the stage registry."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run.import_stage import stage_import, stage_limit_import
from bench.run.limits import stage_limit_ingest, stage_limit_scan
from bench.run.measure import disk_usage, warm_up
from bench.run.object_store import stage_object_store
from bench.run.peers import stage_peer_notebook, stage_peer_tcq
from bench.run.scale_out import stage_scale_out


def _import_readers(_: int) -> None:
    """Run in each ingest worker before the clock starts: the same imports the parent does first."""
    import onnx  # noqa: F401
    import safetensors.numpy  # noqa: F401
    import torch  # noqa: F401

    time.sleep(0.5)  # keeps this worker busy so the next call starts (and warms) the other


def stage_ingest(zoo: str | Path, lake: str | Path, workers: str | int = 1) -> dict[str, Any]:
    """`filterlake.ingest.ingest` of a synthetic zoo in `workers` processes, checked against its manifest."""
    import pyarrow.dataset  # noqa: F401

    from bench.synthetic import read_manifest
    from filterlake.ingest import ingest, worker_pool

    _import_readers(0)  # imports first: not part of the throughput
    zoo, lake, workers = Path(zoo), Path(lake), int(workers)
    manifest = read_manifest(zoo)
    warm_up()
    with worker_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        if pool is not None:  # worker start-up (~1.5 s, a constant per run) is not throughput either
            list(pool.map(_import_readers, range(workers)))
        start = time.perf_counter()
        outcomes = ingest([str(zoo)], lake, pool=pool)
        seconds = time.perf_counter() - start
    failed = [f"{o.source}: {o.message}" for o in outcomes if o.status != "ingested"]
    n_filters = sum(o.n_filters for o in outcomes)
    if failed or n_filters != manifest["n_filters"] or len(outcomes) != manifest["n_models"]:
        raise SystemExit(
            f"ingest did not ingest the zoo exactly: {n_filters} filters of {manifest['n_filters']}, "
            f"{len(outcomes)} outcomes of {manifest['n_models']}; {failed[:3]}"
        )
    return {
        "seconds": seconds,
        "n_filters": n_filters,
        "n_models": len(outcomes),
        "bytes": manifest["bytes"],
        "lake_bytes": disk_usage(lake),
        "workers": workers,
    }


def stage_analyse(lake: str | Path, basis_file: str | Path | None = None) -> dict[str, Any]:
    """`filterlake.derived.analyze.analyze(lake, "medical", ("domain",))`, with the time of its parts; with
    `basis_file`, the one-read analysis in that frozen basis (`analyze --basis FILE`)."""
    import duckdb  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import scipy.integrate  # noqa: F401

    from filterlake.derived.analyze import analyze
    from filterlake.lake.layout import table_dir
    from filterlake.numeric.kernels import warm_up

    lake = Path(lake)
    jit_s = warm_up()  # the kernels' first call (compiled, or loaded from numba's cache): reported apart
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()
    analysis = analyze(
        lake,
        "medical",
        ("domain",),
        on_stage=lambda name, _n: marks.append((name, time.perf_counter() - start)),
        basis_file=Path(basis_file) if basis_file else None,
    )
    seconds = time.perf_counter() - start
    marks.append(("end", seconds))
    spans = {name: marks[i + 1][1] - at for i, (name, at) in enumerate(marks[:-1])}
    parts = {
        "layer statistics + basis fit": spans.get("layer statistics", 0.0),
        "layer statistics + histograms (one read)": spans.get(
            "layer statistics + histograms (one read)", 0.0
        ),
        "histograms + shifts": sum(v for k, v in spans.items() if k.startswith("histograms")),
        "comparisons and the rest": spans.get("comparisons", 0.0),
    }
    return {
        "seconds": seconds,
        "jit_s": jit_s,
        "core_s": dict(marks).get("comparisons", seconds),  # up to the stored shifts: the notebook's job
        "parts": parts,
        "basis_id": analysis.basis_id,
        "stats": analysis.stats,
        "histograms": analysis.histograms,
        "derived_bytes": disk_usage(lake) - disk_usage(table_dir(lake, "filters")),
    }


def stage_regroup(lake: str | Path, group_by: str = "name") -> dict[str, Any]:
    """The shift matrix of a regrouping from stored histograms, the lake's filters moved out of the lake."""
    import duckdb  # noqa: F401
    import numpy as np

    from filterlake.derived.basis import load_basis
    from filterlake.derived.histograms import HistSpec
    from filterlake.derived.shifts import grouped_counts, shift_table
    from filterlake.lake.duck import connect
    from filterlake.lake.layout import state_file, table_dir
    from filterlake.numeric.presets import PRESETS

    lake = Path(lake)
    state = json.loads(state_file(lake).read_text())
    spec = HistSpec.from_key(state["spec"])
    filters, away = table_dir(lake, "filters"), lake.parent / f"{lake.name}.filters-moved-away"
    os.rename(filters, away)
    try:
        assert not filters.exists()
        start = time.perf_counter()
        con = connect(lake)  # opening the lake's DuckDB views: timed apart (lake/duck.py)
        opened = time.perf_counter() - start
        start = time.perf_counter()
        grouped = grouped_counts(con, state["basis_id"], spec, group_by)
        weights = PRESETS[state["preset"]].weights_for(load_basis(lake, state["basis_id"]))
        labels, matrix = shift_table(grouped, spec, weights)
        seconds = time.perf_counter() - start
        filters_seen = con.execute("SELECT count(*) FROM filters").fetchone()[0]
    finally:
        os.rename(away, filters)
    return {
        "seconds": seconds,
        "open_views_s": opened,
        "with_views_s": seconds + opened,
        "groups": len(labels),
        "matrix": list(matrix.shape),
        "finite_pairs": int(np.isfinite(matrix).sum()),
        "filters_visible_during_stage": filters_seen,
        "n_hist_models": int(grouped.n_models.sum()),
    }


def stage_report(lake: str | Path, out: str | Path) -> dict[str, Any]:
    """`filterlake report` of an analysed lake (`analyze_and_report`: the groupings the report needs, then the
    page), with the time of the page apart and its size."""
    import duckdb  # noqa: F401
    import matplotlib.figure  # noqa: F401

    from filterlake.report.compose import analyze_and_report

    start = time.perf_counter()
    report = analyze_and_report(Path(lake), Path(out))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "page_bytes": report.index.stat().st_size,
        "figures": len(report.figures),
        "tables": len(report.tables),
    }


STAGES: dict[str, Callable[..., dict[str, Any]]] = {
    "ingest": stage_ingest,
    "limit-ingest": stage_limit_ingest,
    "analyse": stage_analyse,
    "limit-scan": stage_limit_scan,
    "regroup": stage_regroup,
    "report": stage_report,
    "import": stage_import,
    "limit-import": stage_limit_import,
    "peer-notebook": stage_peer_notebook,
    "peer-tcq": stage_peer_tcq,
    "scale-out": stage_scale_out,
    "object-store": stage_object_store,
}
