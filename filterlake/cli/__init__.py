"""`filterlake` command line: the parser and `main`; the subcommands (commands.py) are thin faces over the
package's public functions."""
from __future__ import annotations

import argparse
import sys

from filterlake.cli.commands import (
    cmd_analyze,
    cmd_check,
    cmd_ingest,
    cmd_models,
    cmd_report,
    cmd_shift,
    cmd_sql,
)
from filterlake.errors import FilterlakeError

EPILOG = "The lake folder is --lake, else $FILTERLAKE_LAKE, else ./lake. Docs: README.md."


def _lake_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lake", metavar="DIR", help="lake folder (default: $FILTERLAKE_LAKE or ./lake)")


def _format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")


def _analysis_args(parser: argparse.ArgumentParser) -> None:
    from filterlake.numeric.presets import PRESETS

    parser.add_argument("--preset", choices=sorted(PRESETS), default="medical",
                        help="medical: 70 bins over (-3, 3), uniform weights (the seed paper); cnn-filter-db: 70 "
                             "bins over the global coefficient range, EVR weights (default: medical)")
    parser.add_argument("--basis-on", metavar="SQL", help="fit the basis on the models matching this SQL "
                        "condition on models columns, e.g. \"domain = 'natural'\" (default: all models)")
    parser.add_argument("--sparsity-eps", type=float, default=0.01, metavar="EPS",
                        help="a filter is sparse when all |w| < EPS * max|w| of its layer (default 0.01)")
    _lake_arg(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="filterlake",
        description="A columnar data lake of trained 3x3 convolution filters: ingest PyTorch, ONNX and "
                    "safetensors checkpoints into hive-partitioned Parquet, query them with DuckDB, analyse "
                    "filter distributions across models.",
        epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="ingest checkpoints from files, folders, catalogs or URLs",
                       description="Ingest checkpoints. SOURCE is a checkpoint file, a folder (searched "
                       "recursively), a catalog (.csv/.toml/.json) or an http(s) URL. Metadata comes from a "
                       "catalog entry or a <checkpoint>.meta.json sidecar. Ingesting the same bytes twice adds "
                       "nothing. Exit 0 when every source was ingested or already present, 1 when any failed "
                       "(the others are still ingested).", epilog=EPILOG)
    p.add_argument("sources", nargs="*", metavar="SOURCE")
    p.add_argument("--catalog", action="append", default=[], metavar="FILE", help="catalog file (repeatable)")
    p.add_argument("--update-metadata", action="store_true",
                   help="overwrite the metadata of models already in the lake with what the sources give "
                        "(default: only fill missing fields); filters are never rewritten")
    p.add_argument("--workers", "-j", type=int, default=1, metavar="N",
                   help="ingest N checkpoints at once in worker processes, each holding one checkpoint in memory "
                        "(default 1; 0 = one per CPU core). Pays off for many large files")
    p.add_argument("--quiet", "-q", action="store_true", help="print only failures and the summary")
    _lake_arg(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("models", help="list the models of the lake", epilog=EPILOG)
    _lake_arg(p)
    _format_arg(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("sql", help="run DuckDB SQL over the lake with the views of sql/ loaded",
                       description="Run DuckDB SQL over the lake. Views: models, layers, filters, "
                       "filters_scaled, filter_arrays, filters_meta, skipped_layers (see sql/).", epilog=EPILOG)
    p.add_argument("query", metavar="QUERY")
    _lake_arg(p)
    _format_arg(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("analyze", help="compute layer statistics, the basis, histograms and shifts",
                       description="Compute and store (incrementally) the derived tables: layer_stats (sparsity, "
                       "variance entropy, orthogonality, binary-likeness, sufficient statistics), the 9-component "
                       "basis, per-layer coefficient histograms and the pairwise shift matrix of each --group-by "
                       "column. Groupings: domain, task, training_dataset, architecture, name, modality, format, "
                       "medical, depth_decile, or any key of the extra metadata.", epilog=EPILOG)
    p.add_argument("--group-by", nargs="+", metavar="COL", help="groupings (default: domain)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _analysis_args(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("shift", help="print the pairwise shift matrix between the groups of a column",
                       description="Print the distribution shift D between every pair of groups of COL (rows sorted "
                       "by ascending column mean). Reads only stored histograms; runs the incremental analysis "
                       "first when the lake changed. With --permutations, also a permutation test over models "
                       "of one pair (--test A [B]; B defaults to all other models).", epilog=EPILOG)
    p.add_argument("--group-by", nargs=1, required=True, metavar="COL")
    p.add_argument("--permutations", type=int, default=0, metavar="N", help="permutation test with N permutations")
    p.add_argument("--test", nargs="+", metavar="GROUP", help="the groups of the permutation test: A [B]")
    p.add_argument("--seed", type=int, default=0)
    _analysis_args(p)
    _format_arg(p)
    p.set_defaults(func=cmd_shift)

    p = sub.add_parser("report", help="write the HTML report (runs the analysis first)",
                       description="Run the incremental analysis and write OUT/index.html (PNG figures beside it), "
                       "OUT/summary.md and OUT/tables/*.csv: the lake at a glance, the basis, coefficient "
                       "distributions, pairwise shift heatmaps, medical vs non-medical with a permutation test, "
                       "and layer quality. The page opens from disk, without a server or network.", epilog=EPILOG)
    p.add_argument("--out", default="report", metavar="DIR", help="output folder (default: ./report)")
    p.add_argument("--group-by", nargs="+", default=["domain"], metavar="COL",
                   help="groupings of the shift heatmaps (default: domain; medical and name are always computed)")
    p.add_argument("--permutations", type=int, default=2000, metavar="N",
                   help="permutations of the medical vs non-medical test (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutation test (default 0)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _analysis_args(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("check", help="verify the lake and repair what an interrupted write left behind",
                       description="Verify that every model's filter partition holds exactly its filters, that "
                       "no orphan partitions exist and that every file has the schema of schemas/. Leftovers of "
                       "interrupted writes are removed unless --no-repair. Exit 0 when consistent.", epilog=EPILOG)
    p.add_argument("--no-repair", action="store_true", help="only report, change nothing")
    _lake_arg(p)
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ingest" and not args.sources and not args.catalog:
        build_parser().error("ingest needs a SOURCE or --catalog FILE")
    if args.command == "ingest" and args.workers < 0:
        build_parser().error("--workers must be 0 (one per core) or more")
    try:
        return args.func(args)
    except FilterlakeError as exc:
        print(f"filterlake: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("filterlake: interrupted; the lake keeps only whole models", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
