"""Where every table's files live inside a lake folder, base and derived, and how the lake folder is chosen.

The one owner of the lake's paths: the writers, the check, the DuckDB views (the `lake_glob` macro of the
generated `sql/init.sql` comes from `GLOBS`, see `paths_sql`) and the benchmark all take them from here;
`schemas/lake_tables.json` documents them.
"""

from __future__ import annotations

from pathlib import Path

from filterlake.lake.location import OBJECT_LAKE_COMMANDS, ObjectLake, parse_lake
from filterlake.lake.schema import TABLES, table_glob

STAGING = "_staging"  # per-process staging folders of writes in progress
LOCK = ".lock"  # the lake lock file (commits and repairs)
STATE = "analysis.json"  # what the last analysis used: basis, preset, spec
VERSION = "lake.json"  # the lake's schema version (lake/migrate.py)

# Each table's files relative to the lake folder, as a glob (the views of sql/ read exactly these), from the
# documented paths of schemas/lake_tables.json; the functions below build paths that match them (a test checks).
GLOBS: dict[str, str] = {table: table_glob(table) for table in TABLES}
PER_MODEL_DERIVED = ("layer_stats", "histograms", "extents")  # derived tables with one file per model
PER_MODEL_TABLES = ("models", "layers", *PER_MODEL_DERIVED)  # one file per model until compacted (compact.py)
COMPACTED = "compacted"  # the folder of a per-model folder's compacted part (lake/compact.py)
COMPACTED_PART = "part-0.parquet"
# The compacted parts of each per-model table, as a glob: `<folder>/compacted/part-0.parquet` beside the per-model
# files of the same folder (models/, layers/, layer_stats/, histograms/basis=B/spec=S/, extents/basis=B/).
COMPACTED_GLOBS: dict[str, str] = {
    table: GLOBS[table].rsplit("/", 1)[0] + f"/{COMPACTED}/*.parquet" for table in PER_MODEL_TABLES
}


def resolve_lake(lake: str | Path | None) -> Path:
    """`--lake` if given, else `$FILTERLAKE_LAKE`, else `./lake`, for the commands that need a local lake
    folder: an `s3://` lake is refused in one line (the commands that take one call location.parse_lake)."""
    from filterlake.errors import LakeError

    found = parse_lake(lake)
    if isinstance(found, ObjectLake):
        raise LakeError(
            f"{found.uri}: this command does not support an s3:// lake yet ({', '.join(OBJECT_LAKE_COMMANDS)} "
            "do); copy the lake to a folder for it"
        )
    return found


def require_lake(lake: Path | ObjectLake, must_exist: bool = True) -> Path | ObjectLake:
    """`lake` when it is a lake folder (or a reachable bucket); LakeError naming it when it is a file, or
    missing and `must_exist` (a typo'd lake must not look like an empty one)."""
    from filterlake.errors import LakeError

    if isinstance(lake, ObjectLake):
        from filterlake.lake.objects import require_bucket

        return require_bucket(lake)
    if lake.exists() and not lake.is_dir():
        raise LakeError(f"{lake}: not a lake folder (it is a file)")
    if must_exist and not lake.exists():
        raise LakeError(
            f"{lake}: no such lake folder (give --lake DIR or set $FILTERLAKE_LAKE; "
            f"`filterlake ingest` creates one)"
        )
    return lake


def table_dir(lake: Path, table: str) -> Path:
    """The top folder of a table."""
    return lake / GLOBS[table].split("/", 1)[0]


def table_files(lake: Path, table: str) -> list[Path]:
    """Every file of a table, in a stable order."""
    return sorted(lake.glob(GLOBS[table]))


def model_file(lake: Path, model_id: str) -> Path:
    """The one-row `models` file of a model: its presence is the commit mark of the model."""
    return lake / "models" / f"{model_id}.parquet"


def layers_file(lake: Path, model_id: str) -> Path:
    return lake / "layers" / f"{model_id}.parquet"


def filters_dir(lake: Path, model_id: str) -> Path:
    """The hive partition holding all filters of one model."""
    return lake / "filters" / f"model_id={model_id}"


def filters_part(lake: Path, model_id: str, part: int = 0) -> Path:
    return filters_dir(lake, model_id) / f"part-{part}.parquet"


def stats_file(lake: Path, model_id: str) -> Path:
    """A model's `layer_stats` rows."""
    return lake / "layer_stats" / f"{model_id}.parquet"


def basis_file(lake: Path, basis_id: str) -> Path:
    return lake / "basis" / f"{basis_id}.parquet"


def hist_dir(lake: Path, basis_id: str, spec_key: str) -> Path:
    """The histograms of every model for one basis and histogram spec (hive keys basis, spec)."""
    return lake / "histograms" / f"basis={basis_id}" / f"spec={spec_key}"


def hist_file(lake: Path, basis_id: str, spec_key: str, model_id: str) -> Path:
    return hist_dir(lake, basis_id, spec_key) / f"{model_id}.parquet"


def extents_file(lake: Path, basis_id: str, model_id: str) -> Path:
    return lake / "extents" / f"basis={basis_id}" / f"{model_id}.parquet"


def shifts_file(lake: Path, basis_id: str, preset: str, group_by: str) -> Path:
    """One grouping's stored pairwise shift matrix."""
    return lake / "shifts" / f"{basis_id}__{preset}__{group_by}.parquet"


def comparison_file(lake: Path, table: str, basis_id: str, preset: str) -> Path:
    """One stored comparison of a basis and preset (`family_shifts`, `medical_test`, `medical_components`)."""
    return lake / table / f"basis={basis_id}" / f"{preset}.parquet"


def per_model_derived_files(lake: Path, model_id: str) -> list[Path]:
    """Every derived file of one model (its layer statistics, histograms and extents in every basis)."""
    patterns = [GLOBS[table].rsplit("/", 1)[0] + f"/{model_id}.parquet" for table in PER_MODEL_DERIVED]
    return [path for pattern in patterns for path in lake.glob(pattern)]


def state_file(lake: Path) -> Path:
    return lake / STATE


def version_file(lake: Path) -> Path:
    return lake / VERSION


def staging_root(lake: Path) -> Path:
    return lake / STAGING


def lock_file(lake: Path) -> Path:
    return lake / LOCK


def compacted_part(folder: Path) -> Path:
    """The compacted part of a folder of per-model files (e.g. `LAKE/layers/compacted/part-0.parquet`)."""
    return folder / COMPACTED / COMPACTED_PART


def compacted_parts(lake: Path, table: str) -> list[Path]:
    """Every compacted part of a per-model table (one per folder: per basis and spec for histograms)."""
    return sorted(lake.glob(COMPACTED_GLOBS[table]))


def per_model_folders(lake: Path, table: str) -> list[Path]:
    """Every folder of a per-model table that holds per-model files or a compacted part."""
    files = lake.glob(GLOBS[table])
    parts = lake.glob(COMPACTED_GLOBS[table])
    return sorted({f.parent for f in files} | {p.parent.parent for p in parts})


def committed_ids(lake: Path | ObjectLake) -> set[str]:
    """Model ids whose `models` row exists, i.e. fully written models: a per-model `models` file (a new model
    or a metadata correction) or a row of the compacted `models` part."""
    from filterlake.lake.rows import compacted_models

    if isinstance(lake, ObjectLake):
        from filterlake.lake import object_commit

        return object_commit.committed_ids(lake)
    folder = table_dir(lake, "models")
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.parquet")} | compacted_models(lake)


def is_committed(lake: Path | ObjectLake, model_id: str) -> bool:
    """Whether the lake holds the model (the commit mark: its `models` row, per-model or compacted)."""
    from filterlake.lake.rows import compacted_models

    if isinstance(lake, ObjectLake):
        from filterlake.lake import object_commit

        return object_commit.is_committed(lake, model_id)
    return model_file(lake, model_id).exists() or model_id in compacted_models(lake)


def paths_sql() -> str:
    """The DuckDB macro `lake_glob(table)`: the glob of a table's files in the lake of the variable `lake`, and
    `lake_glob('<table>_compacted')` that of its compacted parts (part of the generated sql/init.sql)."""
    globs = {**GLOBS, **{f"{t}_compacted": g for t, g in COMPACTED_GLOBS.items()}}
    cases = "\n".join(f"    WHEN '{table}' THEN '/{glob}'" for table, glob in globs.items())
    return f"CREATE OR REPLACE MACRO lake_glob(t) AS getvariable('lake') || CASE t\n{cases}\n    END;\n"
