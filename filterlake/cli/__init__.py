"""`filterlake` command line: a thin face over the plain functions of the package."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from filterlake.errors import FilterlakeError

EPILOG = "The lake folder is --lake, else $FILTERLAKE_LAKE, else ./lake. Docs: README.md."


def _lake_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lake", metavar="DIR", help="lake folder (default: $FILTERLAKE_LAKE or ./lake)")


def _format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")


def cmd_ingest(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from filterlake.ingest import ingest
    from filterlake.lake.layout import resolve_lake
    from filterlake.lake.maintenance import repair

    lake = resolve_lake(args.lake)
    err = Console(stderr=True, soft_wrap=True)
    if lake.is_dir():
        repair(lake)
    start = time.perf_counter()
    with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err, transient=True,
                  disable=args.quiet) as progress:
        task = progress.add_task("discovering", total=None)
        outcomes = ingest(
            args.sources, lake, [Path(c) for c in args.catalog],
            on_start=lambda sources: progress.update(task, total=len(sources), description=""),
            on_result=lambda o: (progress.advance(task),
                                 progress.update(task, description=o.name or o.source),
                                 _report(err, o, args.quiet)),
            update_metadata=args.update_metadata, workers=args.workers or os.cpu_count() or 1,
        )
    _summary(err, outcomes, time.perf_counter() - start)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _report(console, outcome, quiet: bool) -> None:
    if outcome.status == "failed":
        console.print(f"[red]failed[/red] {outcome.message}", highlight=False)
    elif not quiet:
        console.print(f"{outcome.status:>8}  {outcome.name}  ({outcome.n_layers} layers, {outcome.n_filters:,} "
                      f"filters){'  ' + outcome.message if outcome.message else ''}", highlight=False)


def _summary(console, outcomes, seconds: float) -> None:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ingested", "present", "updated", "failed")}
    new = [o for o in outcomes if o.status == "ingested"]
    skipped = sum(sum(o.skipped.values()) for o in new)
    console.print(
        f"{len(outcomes)} sources: {counts['ingested']} ingested, {counts['present']} already present, "
        f"{counts['updated']} metadata updated, {counts['failed']} failed; new: "
        f"{sum(o.n_layers for o in new)} layers, {sum(o.n_filters for o in new):,} filters, "
        f"{skipped} layers skipped (not 2-D 3x3); {seconds:.1f} s", highlight=False)


def cmd_models(args: argparse.Namespace) -> int:
    return _query(args, "SELECT name, domain, task, architecture, format, n_layers_3x3, n_filters_3x3, "
                        "left(model_id, 12) AS model_id FROM models ORDER BY name, model_id")


def cmd_sql(args: argparse.Namespace) -> int:
    return _query(args, args.query)


def _query(args: argparse.Namespace, sql: str) -> int:
    import duckdb

    from filterlake.cli.output import emit
    from filterlake.lake.duck import connect
    from filterlake.lake.layout import resolve_lake

    con = connect(resolve_lake(args.lake))  # base and analysis views, as sql/init.sql in the DuckDB CLI
    try:
        result = con.execute(sql)
    except duckdb.Error as exc:
        raise FilterlakeError(f"SQL error: {exc}") from exc
    if result.description is None:
        return 0
    emit([d[0] for d in result.description], result.fetchall(), args.format)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from filterlake.lake.layout import resolve_lake
    from filterlake.lake.maintenance import check_lake

    report = check_lake(resolve_lake(args.lake), repair_leftovers=not args.no_repair)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def _progress(args: argparse.Namespace):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True, disable=getattr(args, "quiet", False))


def _refresh(args: argparse.Namespace):
    """Run the incremental analysis with a progress bar per stage."""
    from filterlake.derived.analyze import analyze
    from filterlake.lake.layout import resolve_lake
    from filterlake.numeric.params import QualityParams

    with _progress(args) as progress:
        state = {}

        def stage(name: str, total: int) -> None:
            if "task" in state:
                progress.remove_task(state["task"])
            state["task"] = progress.add_task(name, total=total)

        return analyze(resolve_lake(args.lake), args.preset, tuple(args.group_by), args.basis_on,
                       QualityParams().with_(eps=args.sparsity_eps), on_stage=stage,
                       on_model=lambda _: progress.advance(state["task"]))


def cmd_analyze(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    args.group_by_given = args.group_by is not None
    args.group_by = args.group_by or ["domain"]
    analysis = _refresh(args)
    evr = ", ".join(f"{v:.3f}" for v in analysis.basis.evr)
    print(f"basis {analysis.basis_id}: N = {analysis.basis.n:,} filters; EVR = [{evr}]")
    print(f"layer statistics: {analysis.stats['computed']} models computed, {analysis.stats['reused']} reused; "
          f"histograms: {analysis.histograms['computed']} models computed, {analysis.histograms['reused']} reused")
    print(f"preset {analysis.preset.name}: {analysis.spec.bins} bins over "
          f"({analysis.spec.lo:.4g}, {analysis.spec.hi:.4g}), {analysis.preset.weights} weights")
    for column, path in analysis.shifts.items():
        print(f"shifts by {column}: {path}")
    if analysis.unlabelled and not args.group_by_given:  # the default grouping: a note, not an error
        print(f"note: no model has a {analysis.unlabelled[0]}; give metadata or choose --group-by", file=sys.stderr)
    else:
        _warn_unlabelled(analysis)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 1 if analysis.unlabelled and args.group_by_given else 0


def _warn_unlabelled(analysis) -> None:
    for column in analysis.unlabelled:
        print(f"filterlake: error: --group-by {column}: no model has a value for it (a models column, 'medical', "
              f"'depth_decile' or a key of the extra metadata)", file=sys.stderr)


def cmd_shift(args: argparse.Namespace) -> int:
    from filterlake.cli.output import emit
    from filterlake.derived.shifts import permutation
    from filterlake.lake.duck import connect
    from filterlake.lake.layout import resolve_lake

    args.quiet = True
    analysis = _refresh(args)
    if analysis.unlabelled:
        _warn_unlabelled(analysis)
        return 1
    con = connect(resolve_lake(args.lake))
    rows = con.execute("SELECT * FROM read_parquet(?)", [str(analysis.shifts[args.group_by[0]])]).fetchall()
    columns = [d[0] for d in con.description]
    if args.format == "table":
        labels = list(dict.fromkeys(r[0] for r in rows))
        value = {(r[0], r[1]): r[2] for r in rows}
        emit(["group", *labels], [[a, *(round(value[a, b], 4) for b in labels)] for a in labels], "table")
    else:
        emit(columns, rows, args.format)
    if args.permutations:
        groups = list(dict.fromkeys(r[0] for r in rows))
        a, b = (args.test[0], args.test[1] if len(args.test) > 1 else None) if args.test else (groups[0], None)
        result = permutation(con, analysis.basis_id, analysis.spec, args.group_by[0], a, b, analysis.weights(),
                             args.permutations, args.seed)
        print(f"{a} vs {b or 'rest'}: D = {result.observed:.4f}, permutation p = {result.p_value:.4g} "
              f"({result.n_permutations} permutations of models), bootstrap {int(result.confidence * 100)}% "
              f"interval [{result.ci_low:.4f}, {result.ci_high:.4f}]", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from filterlake.report.command import cmd_report as run

    return run(args)


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
