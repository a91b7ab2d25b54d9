"""`basis/`: the 9-component filter basis fitted on any selection of models, summed from `layer_stats`.

No filter is read: the sufficient statistics of every layer are stored, so a basis for any selection is one
DuckDB aggregation over layer_stats (methods.md §3, exact streaming equivalent of sklearn PCA).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from filterlake.errors import FilterlakeError
from filterlake.lake.files import read_table, staging, write_table_atomic
from filterlake.lake.layout import basis_file, state_file
from filterlake.lake.schema import arrow_schema, moment_columns
from filterlake.numeric.basis import Basis, fit_basis
from filterlake.numeric.moments import Moments
from filterlake.numeric.params import fingerprint
from filterlake.vocab import untrained_sql

SUBSETS = {"all": "sc", "nonsparse": "scn"}


DEFAULT_SELECTION = (
    "all trained models"  # untrained baselines are projected on the basis, never fitted into it
)


def selected_models(con: duckdb.DuckDBPyConnection, selection: str | None) -> list[str]:
    """Model ids matching a SQL condition over `models` columns (every trained model when None: the basis of
    the trained filters, on which the untrained baselines are read)."""
    where = f"WHERE {selection}" if selection else f"WHERE NOT {untrained_sql()}"
    try:
        return [
            r[0] for r in con.execute(f"SELECT model_id FROM models {where} ORDER BY model_id").fetchall()
        ]
    except duckdb.Error as exc:
        raise FilterlakeError(f"--basis-on {selection!r} is not a valid condition on models: {exc}") from exc


def fit_from_lake(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    stats_id: str,
    selection: str | None = None,
    subset: str = "all",
) -> tuple[str, Basis]:
    """Fit (or reuse) the basis of the selected models' scaled filters; returns (basis_id, basis).

    `stats_id` is the fingerprint of the quality parameters whose layer_stats the basis is summed from.
    """
    models = selected_models(con, selection)
    basis_id = fingerprint({"models": models, "subset": subset, "stats": stats_id})
    path = basis_file(lake, basis_id)
    if path.exists():
        return basis_id, load_basis(lake, basis_id)
    columns = ", ".join(f"sum({c})" for c in moment_columns(SUBSETS[subset]))
    con.execute(
        "SET threads = 1"
    )  # one summation order: the same lake always gives the same basis, bit for bit
    try:
        row = con.execute(
            f"SELECT {columns} FROM layer_stats WHERE model_id IN (SELECT unnest(?::VARCHAR[]))", [models]
        ).fetchone()
    finally:
        con.execute("RESET threads")
    if row[0] is None or row[0] < 2:
        raise FilterlakeError(
            f"the basis needs at least 2 filters; the selection {selection or DEFAULT_SELECTION} "
            f"has {int(row[0] or 0)}"
        )
    basis = fit_basis(Moments.from_flat([float(v) for v in row]))
    _write_basis(lake, path, basis_id, basis, selection or DEFAULT_SELECTION, subset, len(models))
    return basis_id, basis


def _write_basis(
    lake: Path, path: Path, basis_id: str, basis: Basis, selection: str, subset: str, n_models: int
) -> None:
    """Store one row of the `basis` table."""
    record = {
        "basis_id": basis_id,
        "selection": selection,
        "subset": subset,
        "n_models": n_models,
        "created_at": datetime.now(UTC).isoformat(),
        "basis": json.dumps(basis.to_dict()),
        "n": basis.n,
        "evr": list(map(float, basis.evr)),
        "mean": list(map(float, basis.mean)),
    }
    with staging(lake) as stage:
        write_table_atomic(pa.Table.from_pylist([record], schema=arrow_schema("basis")), path, "basis", stage)


def load_basis(lake: Path, basis_id: str) -> Basis:
    """A stored basis by id."""
    return read_basis_file(basis_file(lake, basis_id))


def read_basis_file(path: Path) -> Basis:
    """A basis from a file: a row of the `basis` table as Parquet (`filterlake basis export --out X.parquet`, or
    `LAKE/basis/<basis_id>.parquet` of another lake) or the JSON of `Basis.to_dict` (any other name)."""
    try:
        if path.suffix == ".parquet":
            return Basis.from_dict(json.loads(read_table(path, columns=["basis"]).to_pylist()[0]["basis"]))
        return Basis.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, IndexError, TypeError, pa.ArrowException) as exc:
        raise FilterlakeError(
            f"{path}: not a basis file (a basis-table row as Parquet, or its JSON): {exc}"
        ) from exc


def export_basis(lake: Path, out: Path) -> Path:
    """Write the basis of the lake's last analysis to `out`: the `basis` table's row as Parquet when `out` ends
    in .parquet, else the JSON of `Basis.to_dict` (mean, components, explained variance, EVR, n, sign rule)."""
    try:
        basis_id = json.loads(state_file(lake).read_text())["basis_id"]
    except (OSError, ValueError, KeyError) as exc:
        raise FilterlakeError(f"{lake}: no analysis yet (run `filterlake analyze` first)") from exc
    if out.suffix == ".parquet":
        shutil.copyfile(basis_file(lake, basis_id), out)
    else:
        out.write_text(json.dumps(load_basis(lake, basis_id).to_dict(), indent=1) + "\n")
    return out


def store_frozen(lake: Path, basis: Basis, source: str) -> str:
    """Store a basis given from outside (`analyze --basis FILE`) in the lake's `basis` table; returns its id, a
    fingerprint of its values, so the same file always maps to the same histograms."""
    basis_id = fingerprint({"frozen": basis.to_dict()})
    path = basis_file(lake, basis_id)
    if not path.exists():
        _write_basis(lake, path, basis_id, basis, f"frozen: {source}", "all", 0)
    return basis_id
