"""The filterlake benchmark: each stage's throughput against this machine's own limit, measured in the same run.

    python -m bench.run --filters N [--scales 1,10,100] [--regroup-models 1000] [--out bench/results/NAME.json]

For every scale s (a zoo of about N*s filters made by `bench.zoo`) the runner measures, each in its own
subprocess (`python -m bench.run stage ...`, so the peak RSS of a stage is the child's ru_maxrss from wait4):

* **ingest**: `filterlake.ingest.ingest([zoo_dir], lake)` in `--ingest-workers` worker processes (default one
  per core, as `filterlake ingest --workers 0`): filters/s and checkpoint MB/s. Its limit,
  `limit-ingest`, is bare pyarrow: read every checkpoint file's bytes, view them as float32, take as many
  values as the zoo has filter values (9 per filter) and write them as 9 float32 columns with
  `pq.write_table(..., compression="zstd", use_dictionary=False)` (in 1M-row tables, like the lake's row groups).
* **analysis**: `filterlake.derived.analyze.analyze(lake, "medical", ("domain",))` on the fresh lake (layer
  statistics + basis + per-layer histograms + shifts). Its limit, `limit-scan`, is one bare DuckDB scan
  `SELECT sum(w0), ..., sum(w8) FROM read_parquet('LAKE/filters/*/*.parquet')` of the same lake.
* **regroup-all** (informational): the pairwise shift matrix grouped by model `name` over all models of the
  scale's lake, with `LAKE/filters` moved away.

Then a separate zoo of `--regroup-models` (1,000) small models is ingested and analysed, and the **regroup**
stage times `grouped_counts(..., "name")` + `shift_table` while `LAKE/filters` has been moved out of the lake
(it can only succeed by reading the stored histograms; the `filters` view is checked to be empty). Opening the
lake's DuckDB views first (`connect`, which binds views over every per-model file) is timed and
reported apart.

Times are measured inside the child around the call, after its imports (torch, onnx, duckdb, ... are imported
first: a constant ~2 s per process that is not throughput; the ingest workers are started and do the same
imports before the clock starts); the child's whole wall time is recorded too.
Zoo files and lakes are fresh in the page cache for both a stage and its limit (same conditions). The load
average before and after the run is recorded: on a shared machine, other processes slow every stage.

Targets (each printed PASS / NOT MET; judged at the largest scale, the others are printed for reference):
ingest >= 50% of the limit's filters/s; analysis <= 3x the bare scan time and its peak RSS <= 2 GB; cost per
filter of ingest and analysis flat within 20% between the two largest scales (10x -> 100x for
`make bench-large`); regrouping 1,000 models < 2 s. An extrapolation to CNN Filter DB's 1.46 billion filters
uses the per-filter costs measured at the largest scale (linear, which the flatness target checks).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
RESULTS = REPO / "bench" / "results"
CNN_FILTER_DB_FILTERS = 1_460_000_000
LIMIT_ROWS = 1 << 20
TARGETS = {"ingest_ratio": 0.5, "analysis_ratio": 3.0, "analysis_rss_mb": 2048, "flat": 0.2, "regroup_s": 2.0}


# ==============================================================================================================
# Stages (run in a child process each)
# ==============================================================================================================

def _warm_up() -> None:
    """Load pyarrow's Parquet writer and zstd codec once (lazy initialisation is not throughput)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"w": pa.array([0.0], pa.float32())}), io.BytesIO(), compression="zstd")


def _files(zoo: Path) -> tuple[list[tuple[Path, int]], dict[str, Any]]:
    manifest = json.loads((zoo / "zoo.json").read_text())
    return [(zoo / m["path"], m["n_filters"]) for m in manifest["models"]], manifest


def _import_readers(_: int) -> None:
    """Run in each ingest worker before the clock starts: the same imports the parent does first."""
    import onnx  # noqa: F401
    import safetensors.numpy  # noqa: F401
    import torch  # noqa: F401

    time.sleep(0.5)  # keeps this worker busy so the next call starts (and warms) the other


def stage_ingest(zoo: str | Path, lake: str | Path, workers: str | int = 1) -> dict[str, Any]:
    import pyarrow.dataset  # noqa: F401

    from filterlake.ingest import ingest, worker_pool

    _import_readers(0)  # imports first: not part of the throughput
    zoo, lake, workers = Path(zoo), Path(lake), int(workers)
    manifest = _files(zoo)[1]
    _warm_up()
    with worker_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        if pool is not None:  # worker start-up (~1.5 s, a constant per run) is not throughput either
            list(pool.map(_import_readers, range(workers)))
        start = time.perf_counter()
        outcomes = ingest([str(zoo)], lake, pool=pool)
        seconds = time.perf_counter() - start
    failed = [f"{o.source}: {o.message}" for o in outcomes if o.status != "ingested"]
    n_filters = sum(o.n_filters for o in outcomes)
    if failed or n_filters != manifest["n_filters"] or len(outcomes) != manifest["n_models"]:
        raise SystemExit(f"ingest did not ingest the zoo exactly: {n_filters} filters of {manifest['n_filters']}, "
                         f"{len(outcomes)} outcomes of {manifest['n_models']}; {failed[:3]}")
    return {"seconds": seconds, "n_filters": n_filters, "n_models": len(outcomes), "bytes": manifest["bytes"],
            "lake_bytes": _du(lake), "workers": workers}


def stage_limit_ingest(zoo: str | Path, target: str | Path) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    zoo, target = Path(zoo), Path(target)
    files, manifest = _files(zoo)
    need = manifest["n_filters"] * 9
    names = [f"w{i}" for i in range(9)]
    _warm_up()
    start = time.perf_counter()
    pending: list[np.ndarray] = []
    have = nbytes = rows = 0
    writer = None

    def write(values: np.ndarray) -> None:
        nonlocal writer
        block = values.reshape(9, -1)  # 9 contiguous columns (the values are arbitrary checkpoint floats)
        table = pa.table({n: block[i] for i, n in enumerate(names)})
        if writer is None:
            writer = pq.ParquetWriter(target, table.schema, compression="zstd", use_dictionary=False)
        writer.write_table(table)

    for path, _n in files:
        data = path.read_bytes()
        nbytes += len(data)
        values = np.frombuffer(data, np.float32, len(data) // 4)
        take = values[: max(need - rows * 9 - have, 0)]
        pending.append(take)
        have += len(take)
        while have >= LIMIT_ROWS * 9:
            joined = np.concatenate(pending)
            write(joined[: LIMIT_ROWS * 9])
            rows += LIMIT_ROWS
            rest = joined[LIMIT_ROWS * 9:]
            pending, have = [rest], len(rest)
    if have:
        joined = np.concatenate(pending)
        joined = joined[: have - have % 9]
        write(joined)
        rows += len(joined) // 9
    if rows * 9 < need:  # checkpoints always hold more floats than their filters; never taken in practice
        raise SystemExit(f"the zoo's bytes hold only {rows} filters' worth of float32 values")
    writer.close()
    seconds = time.perf_counter() - start
    flush = time.perf_counter()  # not part of the limit: how long making the same bytes durable takes
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())
    return {"seconds": seconds, "rows": rows, "bytes": nbytes, "parquet_bytes": target.stat().st_size,
            "fsync_s": time.perf_counter() - flush}


def stage_analyse(lake: str | Path) -> dict[str, Any]:
    import duckdb  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import scipy.integrate  # noqa: F401

    from filterlake.derived.analyze import analyze

    lake = Path(lake)
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()
    analysis = analyze(lake, "medical", ("domain",), on_stage=lambda name, _n: marks.append(
        (name, time.perf_counter() - start)))
    seconds = time.perf_counter() - start
    marks.append(("end", seconds))
    spans = {name: marks[i + 1][1] - at for i, (name, at) in enumerate(marks[:-1])}
    parts = {"layer statistics + basis fit": spans.get("layer statistics", 0.0),
             "histograms + shifts": sum(v for k, v in spans.items() if k.startswith("histograms"))}
    return {"seconds": seconds, "parts": parts, "basis_id": analysis.basis_id, "stats": analysis.stats,
            "histograms": analysis.histograms, "derived_bytes": _du(lake) - _du(lake / "filters")}


def stage_limit_scan(lake: str | Path) -> dict[str, Any]:
    import duckdb

    lake = Path(lake)
    sums = ", ".join(f"sum(w{i})" for i in range(9))
    con = duckdb.connect()
    start = time.perf_counter()
    row = con.execute(f"SELECT count(*), {sums} FROM read_parquet('{lake}/filters/*/*.parquet')").fetchone()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": row[0], "threads": con.execute("SELECT current_setting('threads')").fetchone()[0]}


def stage_regroup(lake: str | Path, group_by: str = "name") -> dict[str, Any]:
    """The shift matrix of a regrouping from stored histograms, with LAKE/filters moved out of the lake."""
    import duckdb  # noqa: F401
    import numpy as np

    from filterlake.derived.basis import load_basis
    from filterlake.derived.histograms import HistSpec
    from filterlake.derived.shifts import grouped_counts, shift_table
    from filterlake.lake.duck import connect
    from filterlake.numeric.presets import PRESETS

    lake = Path(lake)
    state = json.loads((lake / "analysis.json").read_text())
    spec = HistSpec.from_key(state["spec"])
    away = lake.parent / f"{lake.name}.filters-moved-away"
    os.rename(lake / "filters", away)
    try:
        assert not (lake / "filters").exists()
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
        os.rename(away, lake / "filters")
    return {"seconds": seconds, "open_views_s": opened, "with_views_s": seconds + opened, "groups": len(labels),
            "matrix": list(matrix.shape),
            "finite_pairs": int(np.isfinite(matrix).sum()), "filters_visible_during_stage": filters_seen,
            "n_hist_models": int(grouped.n_models.sum())}


STAGES = {"ingest": stage_ingest, "limit-ingest": stage_limit_ingest, "analyse": stage_analyse,
          "limit-scan": stage_limit_scan, "regroup": stage_regroup}


def _du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def run_stage(name: str, *args: str | Path) -> dict[str, Any]:
    """Run one stage in a child process; its result plus the child's peak RSS (wait4) and wall time."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("r", suffix=".json", dir=OUT, delete=False) as tmp:
        result_file = Path(tmp.name)
    cmd = [sys.executable, "-m", "bench.run", "stage", name, *map(str, args), "--result", str(result_file)]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    try:
        if child.returncode != 0:
            raise RuntimeError(f"stage {name} failed with exit code {child.returncode}: {' '.join(cmd)}")
        result = json.loads(result_file.read_text())
    finally:
        result_file.unlink(missing_ok=True)
    result.update(peak_rss_mb=round(usage.ru_maxrss / 1024, 1), wall_s=round(wall, 3),
                  cpu_s=round(usage.ru_utime + usage.ru_stime, 3))
    return result


# ==============================================================================================================
# The benchmark
# ==============================================================================================================

def machine() -> dict[str, Any]:
    import duckdb
    import numpy
    import pyarrow

    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
               platform.processor())
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "filterlake"], cwd=REPO, capture_output=True,
                               text=True, check=False).stdout.strip()
        commit += "+uncommitted changes in filterlake/" if dirty else ""
    except OSError:
        commit = ""
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {"nproc": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "cpu": cpu,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "memory_gb": round(mem_kb / 1024 ** 2, 1), "python": platform.python_version(),
            "duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__, "numpy": numpy.__version__,
            "torch": torch_version, "platform": platform.platform(), "git_commit": commit}


def _rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def measure_scale(scale: int, args: argparse.Namespace, work: Path, log) -> dict[str, Any]:
    from bench.zoo import default_max_model_filters, generate

    n = args.filters * scale
    zoo, lake, limit_file = work / f"zoo-x{scale}", work / f"lake-x{scale}", work / f"limit-x{scale}.parquet"
    for path in (zoo, lake, limit_file):
        _remove(path)
    _check_disk(work, n * 36 * 3.2)
    log(f"x{scale}: generating a zoo of {n:,} filters ...")
    manifest = generate(zoo, args.filters, seed=args.seed, parts=scale, jobs=args.jobs,
                        max_model_filters=args.max_model_filters or default_max_model_filters(args.filters))
    nf = manifest["n_filters"]
    log(f"x{scale}: {manifest['n_models']} models, {nf:,} filters, {manifest['bytes'] / 1e6:.1f} MB "
        f"({manifest['formats']}) in {manifest['seconds']:.1f} s; measuring ...")
    result: dict[str, Any] = {"scale": scale, "requested_filters": n,
                              "zoo": {k: v for k, v in manifest.items() if k != "models"}}
    stages = result["stages"] = {}
    stages["limit_ingest"] = run_stage("limit-ingest", zoo, limit_file)
    _remove(limit_file)
    stages["ingest"] = run_stage("ingest", zoo, lake, args.ingest_workers)
    log(f"x{scale}: ingest {stages['ingest']['seconds']:.2f} s, limit {stages['limit_ingest']['seconds']:.2f} s")
    if not args.keep:
        _remove(zoo)
    stages["limit_scan"] = run_stage("limit-scan", lake)
    stages["analysis"] = run_stage("analyse", lake)
    log(f"x{scale}: analysis {stages['analysis']['seconds']:.2f} s, scan {stages['limit_scan']['seconds']:.2f} s")
    stages["regroup_all"] = run_stage("regroup", lake, "name")
    if not args.keep:
        _remove(lake)
    ing, lim, ana, scan = (stages[k] for k in ("ingest", "limit_ingest", "analysis", "limit_scan"))
    result["metrics"] = {
        "filters": nf, "models": manifest["n_models"], "checkpoint_mb": manifest["bytes"] / 1e6,
        "ingest_filters_per_s": _rate(nf, ing["seconds"]), "ingest_mb_per_s": _rate(manifest["bytes"] / 1e6,
                                                                                   ing["seconds"]),
        "limit_filters_per_s": _rate(nf, lim["seconds"]), "limit_mb_per_s": _rate(lim["bytes"] / 1e6, lim["seconds"]),
        "ingest_ratio": lim["seconds"] / ing["seconds"],
        "analysis_filters_per_s": _rate(nf, ana["seconds"]), "scan_filters_per_s": _rate(nf, scan["seconds"]),
        "analysis_ratio": ana["seconds"] / scan["seconds"],
        "ingest_s_per_mfilter": ing["seconds"] / nf * 1e6, "analysis_s_per_mfilter": ana["seconds"] / nf * 1e6,
        "limit_ingest_s_per_mfilter": lim["seconds"] / nf * 1e6, "scan_s_per_mfilter": scan["seconds"] / nf * 1e6,
        "lake_bytes_per_filter": ing["lake_bytes"] / nf,
    }
    return result


def measure_regroup(args: argparse.Namespace, work: Path, log) -> dict[str, Any]:
    from bench.zoo import generate

    zoo, lake = work / "zoo-regroup", work / "lake-regroup"
    for path in (zoo, lake):
        _remove(path)
    log(f"regroup: generating {args.regroup_models:,} small models ({args.regroup_filters:,} filters) ...")
    manifest = generate(zoo, args.regroup_filters, seed=args.seed + 99_991, n_models=args.regroup_models,
                        jobs=args.jobs, prefix="r")
    out: dict[str, Any] = {"zoo": {k: v for k, v in manifest.items() if k != "models"}}
    out["ingest"] = run_stage("ingest", zoo, lake, args.ingest_workers)
    out["analysis"] = run_stage("analyse", lake)
    out["regroup"] = run_stage("regroup", lake, "name")
    log(f"regroup: ingest {out['ingest']['seconds']:.1f} s, analysis {out['analysis']['seconds']:.1f} s, "
        f"regroup {out['regroup']['seconds']:.2f} s ({out['regroup']['groups']} groups)")
    if not args.keep:
        _remove(zoo)
        _remove(lake)
    return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _check_disk(work: Path, need: float) -> None:
    free = shutil.disk_usage(work).free
    if free < need + 2e9:
        raise SystemExit(f"not enough disk for this scale: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free")


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    scales = results["scales"]
    top = scales[-1]["metrics"]
    top_stages = scales[-1]["stages"]
    targets = []

    def add(name: str, ok: bool, value: str, detail: str) -> None:
        targets.append({"target": name, "status": "PASS" if ok else "NOT MET", "value": value, "detail": detail})

    add("ingest >= 50% of the bare read-and-write limit", top["ingest_ratio"] >= TARGETS["ingest_ratio"],
        f"{top['ingest_ratio']:.0%}", f"at x{scales[-1]['scale']}: {top['ingest_filters_per_s'] / 1e6:.2f}M vs "
        f"{top['limit_filters_per_s'] / 1e6:.2f}M filters/s; ingest in {top_stages['ingest'].get('workers', 1)} "
        f"worker processes, the limit in one")
    add("analysis of the largest lake <= 3x the bare DuckDB scan",
        top["analysis_ratio"] <= TARGETS["analysis_ratio"], f"{top['analysis_ratio']:.1f}x",
        f"{top_stages['analysis']['seconds']:.1f} s vs {top_stages['limit_scan']['seconds']:.2f} s")
    rss = top_stages["analysis"]["peak_rss_mb"]
    add("analysis peak RSS <= 2 GB", rss <= TARGETS["analysis_rss_mb"], f"{rss:.0f} MB",
        f"at x{scales[-1]['scale']} ({top['filters']:,} filters)")
    if len(scales) >= 2:
        a, b = scales[-2], scales[-1]
        for stage in ("ingest", "analysis"):
            ca, cb = a["metrics"][f"{stage}_s_per_mfilter"], b["metrics"][f"{stage}_s_per_mfilter"]
            change = cb / ca - 1
            add(f"{stage} cost per filter flat x{a['scale']} -> x{b['scale']} (within 20%)",
                abs(change) <= TARGETS["flat"], f"{change:+.0%}", f"{ca:.3f} -> {cb:.3f} s per million filters")
    if results.get("regroup"):
        reg = results["regroup"]["regroup"]
        add(f"regrouping {reg['groups']:,} models < 2 s (no filters read)",
            reg["seconds"] < TARGETS["regroup_s"] and reg["filters_visible_during_stage"] == 0,
            f"{reg['seconds']:.2f} s", f"grouped_counts + shift_table, {reg['groups']}x{reg['groups']} matrix, "
            f"LAKE/filters moved away; opening the DuckDB views first adds {reg['open_views_s']:.2f} s")
    return targets


def extrapolate(results: dict[str, Any]) -> dict[str, Any]:
    """CNN Filter DB size from the per-filter costs at the largest scale (linear; see the flatness target)."""
    top = results["scales"][-1]["metrics"]
    n = CNN_FILTER_DB_FILTERS
    out = {"filters": n, "basis": f"x{results['scales'][-1]['scale']} ({top['filters']:,} filters)"}
    for stage in ("ingest", "analysis", "limit_ingest", "scan"):
        out[f"{stage}_hours"] = top[f"{stage}_s_per_mfilter"] * n / 1e6 / 3600
    out["lake_gb"] = top["lake_bytes_per_filter"] * n / 1e9
    out["checkpoint_gb"] = top["checkpoint_mb"] * 1e6 / top["filters"] * n / 1e9
    return out


def _fmt_rate(v: float) -> str:
    return f"{v / 1e6:.2f}M"


def table(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [(f"filterlake benchmark {results['date']} | {results['name']} | {m['nproc']} cores ({m['cpu']}), "
             f"{m['memory_gb']} GB | Python {m['python']}, DuckDB {m['duckdb']}, pyarrow {m['pyarrow']}, "
             f"numpy {m['numpy']}, torch {m['torch']} | commit {m['git_commit']} | load average "
             f"{m['load_average'][0]:.1f} -> {m.get('load_average_end', [0])[0]:.1f}"), ""]
    head = ("scale", "filters", "models", "ckpt MB", "ingest s", "filt/s", "MB/s", "limit s", "ingest/limit",
            "analysis s", "scan s", "analysis/scan", "regroup-all s")
    rows = []
    for s in results["scales"]:
        mt, st = s["metrics"], s["stages"]
        rows.append((f"x{s['scale']}", f"{mt['filters']:,}", str(mt["models"]), f"{mt['checkpoint_mb']:.0f}",
                     f"{st['ingest']['seconds']:.2f}", _fmt_rate(mt["ingest_filters_per_s"]),
                     f"{mt['ingest_mb_per_s']:.0f}", f"{st['limit_ingest']['seconds']:.2f}",
                     f"{mt['ingest_ratio']:.0%}", f"{st['analysis']['seconds']:.2f}",
                     f"{st['limit_scan']['seconds']:.2f}", f"{mt['analysis_ratio']:.1f}x",
                     f"{st['regroup_all']['seconds']:.2f} ({st['regroup_all']['groups']})"))
    lines += _grid(head, rows)
    lines.append("")
    head = ("scale", "s/Mfilter: ingest", "limit", "analysis", "scan", "peak RSS MB: ingest", "limit", "analysis",
            "scan", "regroup-all")
    rows = []
    for s in results["scales"]:
        mt, st = s["metrics"], s["stages"]
        rows.append((f"x{s['scale']}", f"{mt['ingest_s_per_mfilter']:.3f}", f"{mt['limit_ingest_s_per_mfilter']:.3f}",
                     f"{mt['analysis_s_per_mfilter']:.3f}", f"{mt['scan_s_per_mfilter']:.3f}",
                     *(f"{st[k]['peak_rss_mb']:.0f}" for k in ("ingest", "limit_ingest", "analysis", "limit_scan",
                                                                "regroup_all"))))
    lines += _grid(head, rows)
    if results.get("regroup"):
        r = results["regroup"]
        lines += ["", (f"regroup zoo: {r['zoo']['n_models']:,} models, {r['zoo']['n_filters']:,} filters: ingest "
                      f"{r['ingest']['seconds']:.1f} s, analysis {r['analysis']['seconds']:.1f} s (peak RSS "
                      f"{r['analysis']['peak_rss_mb']:.0f} MB); regroup by name {r['regroup']['seconds']:.2f} s "
                      f"(views {r['regroup']['open_views_s']:.2f} s), peak RSS {r['regroup']['peak_rss_mb']:.0f} MB, "
                      f"filters visible: {r['regroup']['filters_visible_during_stage']}")]
    lines += ["", "targets:"]
    width = max(len(t["target"]) for t in results["targets"])
    for t in results["targets"]:
        lines.append(f"  {t['status']:<8} {t['target']:<{width}}  {t['value']:>8}  ({t['detail']})")
    e = results["extrapolation"]
    lines += ["", (f"extrapolation to CNN Filter DB ({e['filters'] / 1e9:.2f} billion filters) on this machine: "
                  f"1.46e9 x the cost per filter measured at {e['basis']}, linear as the flatness targets check:")]
    for stage, name in (("ingest", "ingest"), ("limit_ingest", "  bare read+write limit"), ("analysis", "analysis"),
                        ("scan", "  bare DuckDB scan")):
        lines.append(f"  {name:<24} {e[f'{stage}_hours']:6.2f} h ({e[f'{stage}_hours'] * 60:.0f} min)")
    lines.append(f"  (checkpoints ~{e['checkpoint_gb']:.0f} GB and a lake of ~{e['lake_gb']:.0f} GB of filters at this "
                 f"zoo's bytes per filter: more than the page cache, so reading and writing them at the disk's speed "
                 f"is a floor under these times; regrouping reads only histograms and stays at the regroup time above)")
    return "\n".join(lines)


def _grid(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) for c, w in zip(row, widths))

    return [fmt(head), fmt(tuple("-" * w for w in widths)), *map(fmt, rows)]


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    name = args.name or (args.out.stem if args.out else f"bench-{args.filters}")
    work = args.work or OUT / f"run-{name}"
    work.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "name": name, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "args": {"filters": args.filters, "scales": args.scales, "regroup_models": args.regroup_models,
                 "regroup_filters": args.regroup_filters, "max_model_filters": args.max_model_filters,
                 "seed": args.seed, "jobs": args.jobs},
        "targets_definition": TARGETS, "scales": [],
    }
    for scale in args.scales:
        results["scales"].append(measure_scale(scale, args, work, log))
    if args.regroup_models:
        results["regroup"] = measure_regroup(args, work, log)
    results["targets"] = judge(results)
    results["extrapolation"] = extrapolate(results)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    text = table(results)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        args.out.with_suffix(".txt").write_text(text + "\n")
        log(f"wrote {args.out} and {args.out.with_suffix('.txt')}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stage"]:
        parser = argparse.ArgumentParser(prog="python -m bench.run stage")
        parser.add_argument("name", choices=list(STAGES))
        parser.add_argument("args", nargs="+", help="the stage function's arguments (paths, then options)")
        parser.add_argument("--result", type=Path, required=True)
        a = parser.parse_args(argv[1:])
        result = STAGES[a.name](*a.args)
        a.result.write_text(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--filters", type=int, required=True, help="base zoo size in 3x3 filters")
    parser.add_argument("--scales", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100])
    parser.add_argument("--regroup-models", type=int, default=1000, help="models of the regrouping zoo (0: skip)")
    parser.add_argument("--regroup-filters", type=int, help="filters of the regrouping zoo (default: --filters)")
    parser.add_argument("--max-model-filters", type=int, default=0, help="largest model (default: bench.zoo's)")
    parser.add_argument("--out", type=Path, help="write the results JSON here (and the table beside it as .txt)")
    parser.add_argument("--name")
    parser.add_argument("--work", type=Path, help=f"where zoos and lakes are made (default {OUT}/run-NAME)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="processes generating the zoo (not measured)")
    parser.add_argument("--keep", action="store_true", help="keep zoos and lakes")
    parser.add_argument("--ingest-workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes of the ingest stage, as `filterlake ingest --workers` (default: one "
                             "per core; the limit is one bare process, as the target defines it)")
    args = parser.parse_args(argv)
    args.regroup_filters = args.regroup_filters or args.filters
    benchmark(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
