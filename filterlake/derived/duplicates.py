"""Distinct weight sets: models whose 3x3 filters are identical (the `duplicate_weights` view) count once.

Two exports of one network, or two copies of a file with different bytes, would otherwise weigh twice in the
basis, the histograms of a group, the shifts and the tests, and look like a perfect agreement between "two
models". The view owns the rule (the same `weights_sha256`; the smallest model_id is kept); this module reads it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class DuplicateSet:
    """One set of models holding identical 3x3 filters: the model kept for the analysis and those merged."""

    weights_sha256: str
    kept: str
    merged: tuple[str, ...]
    names: tuple[str, ...]  # every member's name, the kept model first
    formats: tuple[str, ...]
    n_filters: int
    labels_differ: bool  # the members are labelled with different domains


def duplicate_sets(con: duckdb.DuckDBPyConnection) -> list[DuplicateSet]:
    """The duplicate weight sets among the models the connection sees, largest first."""
    rows = con.execute(
        "SELECT weights_sha256, kept_model_id, model_ids, names, formats, n_filters, labels_differ "
        "FROM duplicate_weights ORDER BY n_models DESC, n_filters DESC, kept_model_id"
    ).fetchall()
    return [
        DuplicateSet(
            digest, kept, tuple(m for m in ids if m != kept), tuple(names), tuple(formats), n, differ
        )
        for digest, kept, ids, names, formats, n, differ in rows
    ]


def counted_models(model_ids: Collection[str], sets: list[DuplicateSet]) -> frozenset[str]:
    """The models an analysis counts: all but the merged members of each duplicate set."""
    merged = {m for s in sets for m in s.merged}
    return frozenset(m for m in model_ids if m not in merged)
