"""The CNN Filter DB import flow: one task over `filterlake.ingest.cnn_filter_db.import_cnn_filter_db`, then the
refresh of the analysis tables when models with filters arrived.

The import streams the dataset model by model and commits each atomically, so a crashed or cancelled run is
resumed by the next one (models already in the lake are skipped without reading their filters): the task is
never cached and never retried on its own. A model that fails is named in the summary; the run still ends
Completed. A file that cannot be read fails the run with its one-line reason.

Run once: `python -m flows.import_cnn_filter_db PATH [--lake DIR|s3://BUCKET/PREFIX] [--meta-only] [--no-refresh]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from filterlake.lake.location import parse_lake
from filterlake.vocab import INGESTED
from flows.ingest import refresh_line
from flows.refresh import refresh_flow
from flows.tasks import add_lake_argument, import_dataset


@flow(name="filterlake-import-cnn-filter-db")
def import_cnn_filter_db_flow(
    path: str, lake: str | None = None, meta_only: bool = False, refresh: bool = True
) -> dict[str, Any]:
    """Import CNN Filter DB's dataset.h5 into the lake; refresh the analysis when models with filters are new."""
    found = parse_lake(lake)
    lake_dir = found.resolve() if isinstance(found, Path) else found
    summary = import_dataset(str(Path(path).resolve()), str(lake_dir), meta_only)
    new = any(row["status"] == INGESTED for row in summary["models"])
    summary["refresh"] = refresh_flow(str(lake_dir)) if refresh and new and not meta_only else None
    create_markdown_artifact(
        key="filterlake-import-cnn-filter-db",
        markdown="\n".join(
            [
                f"# CNN Filter DB import into `{lake_dir}`",
                "",
                summary["line"],
                "",
                f"## Failures ({len(summary['failures'])})",
                "",
            ]
            + [f"- {message}" for message in summary["failures"]]
        ),
        description="Counts and failures of this import",
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m flows.import_cnn_filter_db`: 0 when every model is in the lake, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.import_cnn_filter_db",
        description="Run the Prefect flow importing CNN Filter DB's dataset.h5 once; prints the summary line and "
        "one line per failed model.",
    )
    parser.add_argument("path", metavar="PATH", help="the dataset.h5 file")
    add_lake_argument(parser)
    parser.add_argument(
        "--meta-only", action="store_true", help="only the models and layers rows, no filters"
    )
    parser.add_argument(
        "--no-refresh", action="store_true", help="do not refresh the analysis tables afterwards"
    )
    args = parser.parse_args(argv)
    state = import_cnn_filter_db_flow(
        args.path, args.lake, args.meta_only, not args.no_refresh, return_state=True
    )
    if not state.is_completed():
        print(f"flows.import_cnn_filter_db: {state.message}", file=sys.stderr)
        return 1
    summary = state.result()
    print("\n".join([summary["line"], *(f"failed: {m}" for m in summary["failures"])]))
    if summary["refresh"]:
        print(refresh_line(summary["refresh"]))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
