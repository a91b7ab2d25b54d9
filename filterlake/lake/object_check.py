"""`filterlake check` and the leftover repair of an object lake (the protocol: object_commit.py).

A committed model (one with a models row) is verified as on a local lake: one row of the right schema, as
many layers rows and filters rows as the row says, every file of its table's schema. Objects without a models
row are orphans of interrupted writes: removed by the repair once older than the grace period, reported as a
note while younger (they may belong to a write in progress, which no lock can tell on an object store).
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filterlake.errors import LakeError
from filterlake.lake import objects
from filterlake.lake.check import CheckReport, named_problems
from filterlake.lake.layout import PER_MODEL_DERIVED, filters_dir, layers_file, model_file, table_dir
from filterlake.lake.location import ROOT, ObjectLake, fsspec_filesystem, orphan_grace_seconds
from filterlake.lake.maintenance import pid_alive, schema_mismatch
from filterlake.lake.object_commit import STAGE_PREFIX, committed_ids, read_parquet_bytes, remove_objects
from filterlake.vocab import is_meta_only


def orphans(lake: ObjectLake) -> tuple[list[str], list[str]]:
    """(orphan objects older than the grace period, younger ones): layers, filters and per-model derived
    objects whose model has no models row, as paths relative to the lake."""
    ids = committed_ids(lake)
    cutoff = datetime.now(UTC) - timedelta(seconds=orphan_grace_seconds())
    old, young = [], []
    for table in ("layers", "filters", *PER_MODEL_DERIVED):
        for relative, modified in objects.listing(lake, table_dir(ROOT, table)).items():
            path = Path(relative)
            model_id = path.parent.name.removeprefix("model_id=") if table == "filters" else path.stem
            if model_id not in ids:
                (old if modified < cutoff else young).append(relative)
    return sorted(old), sorted(young)


def dead_stages() -> list[Path]:
    """Local staging folders of object-lake writers of this machine whose process is gone."""
    found = []
    for stage in Path(tempfile.gettempdir()).glob(f"{STAGE_PREFIX}*"):
        pid = stage.name.removeprefix(STAGE_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            found.append(stage)
    return sorted(found)


def repair(lake: ObjectLake) -> dict[str, int]:
    """Remove the orphan objects older than the grace period and the staging folders of dead local writers;
    how many of each."""
    old, _ = orphans(lake)
    remove_objects(lake, old)
    stages = dead_stages()
    for stage in stages:
        shutil.rmtree(stage, ignore_errors=True)
    return {"orphan_objects": len(old), "staging": len(stages)}


def _parquet_problem(lake: ObjectLake, relative: Path, table: str) -> tuple[str | None, int]:
    """(why an object is not a valid file of `table` or None, its row count), from its footer alone."""
    url = lake.url(relative)
    try:
        with fsspec_filesystem().open(url, "rb") as handle:
            metadata = pq.ParquetFile(handle).metadata
    except pa.ArrowException as exc:
        return f"{url}: unreadable Parquet ({str(exc).splitlines()[0][:160]})", 0
    except OSError as exc:
        raise LakeError(f"{url}: cannot be read ({str(exc).splitlines()[0][:160]})") from None
    return schema_mismatch(url, metadata.schema.to_arrow_schema(), table), metadata.num_rows


def _model_problems(lake: ObjectLake, model_id: str) -> tuple[list[str], int]:
    """Problems of one committed model, each naming the model, its source and the repair; its filters."""
    url = lake.url(model_file(ROOT, model_id))
    found = objects.get(lake, model_file(ROOT, model_id))
    if found is None:  # removed since the listing
        return [], 0
    try:
        table = read_parquet_bytes(found[0])
    except pa.ArrowException as exc:
        return [f"model {model_id[:12]}: {url}: unreadable Parquet ({str(exc).splitlines()[0][:160]})"], 0
    if problem := schema_mismatch(url, table.schema, "models"):
        return [f"model {model_id[:12]}: {problem}; `filterlake remove {model_id[:12]}` drops it"], 0
    rows = table.to_pylist()
    if len(rows) != 1 or rows[0]["model_id"] != model_id:
        return [f"{url}: must hold exactly one row for model {model_id}"], 0
    row = rows[0]
    n_filters = 0 if is_meta_only(row["extra"]) else row["n_filters_3x3"]
    problems = []
    layers = layers_file(ROOT, model_id)
    if not objects.exists(lake, layers):
        problems.append("layers file missing")
    else:
        problem, n_layers = _parquet_problem(lake, layers, "layers")
        if problem or n_layers != row["n_layers_3x3"]:
            problems.append(problem or f"{n_layers} layer rows, models says {row['n_layers_3x3']}")
    stored = 0
    for relative in sorted(objects.listing(lake, filters_dir(ROOT, model_id))):
        problem, n = _parquet_problem(lake, Path(relative), "filters")
        if problem:
            problems.append(problem)
        stored += n
    if stored != n_filters:
        problems.append(f"filters partition holds {stored} rows, models says {n_filters}")
    return named_problems(row, problems), n_filters


def check_lake(lake: ObjectLake, repair_leftovers: bool = True) -> CheckReport:
    """Check every committed model of an object lake; remove old orphans when `repair_leftovers`."""
    report = CheckReport()
    objects.require_bucket(lake)
    if repair_leftovers:
        report.repaired = repair(lake)
    old, young = orphans(lake)
    report.problems += [f"leftover orphan object: {lake.url(relative)}" for relative in old]
    if young:
        report.notes.append(
            f"{len(young)} objects without a models row, younger than the grace period of "
            f"{orphan_grace_seconds():g} s: a write in progress, or removed by a repair once older"
        )
    for model_id in sorted(committed_ids(lake)):
        problems, n_filters = _model_problems(lake, model_id)
        report.problems += problems
        report.models += 1
        report.filters += n_filters
    return report
