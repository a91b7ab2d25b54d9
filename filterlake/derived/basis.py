"""`basis/`: the 9-component filter basis fitted on any selection of models, summed from `layer_stats`.

No filter is read: the sufficient statistics of every layer are stored, so a basis for any selection is one
DuckDB aggregation over layer_stats (methods.md §3, exact streaming equivalent of sklearn PCA).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from filterlake.errors import FilterlakeError
from filterlake.lake.files import read_table, staging, write_table_atomic
from filterlake.lake.layout import basis_file
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
    record = {
        "basis_id": basis_id,
        "selection": selection or DEFAULT_SELECTION,
        "subset": subset,
        "n_models": len(models),
        "created_at": datetime.now(UTC).isoformat(),
        "basis": json.dumps(basis.to_dict()),
        "n": basis.n,
        "evr": list(map(float, basis.evr)),
        "mean": list(map(float, basis.mean)),
    }
    with staging(lake) as stage:
        write_table_atomic(pa.Table.from_pylist([record], schema=arrow_schema("basis")), path, "basis", stage)
    return basis_id, basis


def load_basis(lake: Path, basis_id: str) -> Basis:
    """A stored basis by id."""
    row = read_table(basis_file(lake, basis_id), columns=["basis"]).to_pylist()[0]
    return Basis.from_dict(json.loads(row["basis"]))
