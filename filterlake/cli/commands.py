"""The `filterlake` subcommands: each parses nothing, calls the package's public functions and prints."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from filterlake.errors import FilterlakeError
from filterlake.vocab import FAILED, INGESTED, PRESENT, STATUS_WORDS, UPDATED


def cmd_ingest(args: argparse.Namespace) -> int:
    from rich.console import Console

    from filterlake.cli.progress import progress_bar
    from filterlake.ingest import ingest
    from filterlake.lake.location import parse_lake

    lake = parse_lake(args.lake)
    err = Console(stderr=True, soft_wrap=True)
    start = time.perf_counter()
    with progress_bar(args.quiet, "ingest", rate=True) as progress:
        task = progress.add_task("discovering", total=None)
        outcomes = ingest(
            args.sources,
            lake,
            [Path(c) for c in args.catalog],
            on_start=lambda sources: progress.update(task, total=len(sources), description=""),
            on_result=lambda o: (
                progress.advance(task),
                progress.update(task, description=o.name or o.source),
                _report(err, o, args.quiet),
            ),
            update_metadata=args.update_metadata,
            workers=args.workers or os.cpu_count() or 1,
            on_note=lambda line: err.print(f"[yellow]note[/yellow] {line}", highlight=False),
            force=args.force,
        )
    _summary(Console(soft_wrap=True), outcomes, time.perf_counter() - start)
    return 1 if any(o.status == FAILED for o in outcomes) else 0


def _report(console, outcome, quiet: bool) -> None:
    if outcome.status == FAILED:
        console.print(f"[red]failed[/red] {outcome.message}", highlight=False)
    elif not quiet or outcome.message and outcome.status != INGESTED:
        console.print(
            f"{outcome.status:>8}  {outcome.name}  ({outcome.n_layers} layers, {outcome.n_filters:,} "
            f"filters){'  ' + outcome.message if outcome.message else ''}",
            highlight=False,
        )


def _summary(console, outcomes, seconds: float) -> None:
    counts = {s: sum(o.status == s for o in outcomes) for s in (INGESTED, PRESENT, UPDATED, FAILED)}
    new = [o for o in outcomes if o.status == INGESTED]
    skipped = sum(sum(o.skipped.values()) for o in new)
    console.print(
        f"{len(outcomes)} sources: "
        + ", ".join(f"{n} {STATUS_WORDS[s]}" for s, n in counts.items())
        + f"; new: {sum(o.n_layers for o in new)} layers, {sum(o.n_filters for o in new):,} filters, "
        f"{skipped} layers skipped (not 2-D 3x3); {seconds:.1f} s",
        highlight=False,
    )


def cmd_import_cnn_filter_db(args: argparse.Namespace) -> int:
    from rich.console import Console

    from filterlake.cli.progress import progress_bar
    from filterlake.ingest.cnn_filter_db import import_cnn_filter_db
    from filterlake.lake.location import parse_lake

    err = Console(stderr=True, soft_wrap=True)
    with progress_bar(args.quiet, "import", rate=True) as progress:  # filters/s (models/s with --meta-only)
        task = progress.add_task("reading meta", total=None)
        result = import_cnn_filter_db(
            Path(args.path),
            parse_lake(args.lake),
            args.meta_only,
            on_start=lambda models, filters: progress.update(
                task, total=models if args.meta_only else filters, description=""
            ),
            on_filters=lambda n: progress.advance(task, n),
            on_result=lambda o: (
                progress.advance(task, 1 if args.meta_only else 0),
                progress.update(task, description=o.name),
                _report(err, o, args.quiet),
            ),
        )
    print(result.summary_line())
    return 1 if result.failed else 0


MODELS_TEXT_WIDTH = 15  # in the table, long free text is shortened so that a row fits 120 columns


def cmd_models(args: argparse.Namespace) -> int:
    short = args.format == "table"  # csv and json keep the full text and the lake's column names
    layers, filters = ("layers", "filters") if short else ("n_layers_3x3", "n_filters_3x3")
    return _query(
        args,
        f"SELECT name, domain, task, architecture, format, n_layers_3x3 AS {layers}, "
        f"n_filters_3x3 AS {filters}, left(model_id, 12) AS model_id FROM models "
        "ORDER BY name, model_id",
        max_width=MODELS_TEXT_WIDTH if short else None,
    )


def cmd_sql(args: argparse.Namespace) -> int:
    return _query(args, args.query)


def _query(args: argparse.Namespace, sql: str, max_width: int | None = None) -> int:
    import duckdb

    from filterlake.cli.output import emit
    from filterlake.lake.duck import connect
    from filterlake.lake.location import parse_lake

    con = connect(parse_lake(args.lake), on_note=lambda line: print(f"note: {line}", file=sys.stderr))
    try:
        result = con.execute(sql)
    except duckdb.Error as exc:
        raise FilterlakeError(f"SQL error: {exc}") from exc
    if result.description is None:
        return 0
    emit([d[0] for d in result.description], result.fetchall(), args.format, max_width)
    return 0


MIN_ID_PREFIX = (
    6  # a shorter prefix of a model id is refused by `remove`: too easy to hit a model by accident
)


def cmd_remove(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from filterlake.lake.layout import committed_ids, require_lake
    from filterlake.lake.location import parse_lake
    from filterlake.lake.rows import model_row
    from filterlake.lake.writer import remove_model

    lake = require_lake(parse_lake(args.lake))
    present = sorted(committed_ids(lake))
    chosen = []
    for given in args.model_ids:
        if len(given) < MIN_ID_PREFIX:
            raise FilterlakeError(f"{given}: give at least {MIN_ID_PREFIX} characters of a model id")
        matches = [m for m in present if m.startswith(given.lower())]
        if len(matches) != 1:
            why = (
                "no model has this id"
                if not matches
                else f"{len(matches)} models start with it; give more of it"
            )
            raise FilterlakeError(f"{given}: {why} (`filterlake models` lists the ids)")
        chosen.append(matches[0])
    for model_id in dict.fromkeys(chosen):
        try:
            row = model_row(lake, model_id, ["name", "source_uri"])
            what = f"'{row['name']}' from {row['source_uri']}" if row else "(its models row is missing)"
        except (OSError, pa.ArrowException):  # a damaged models row is what one removes
            what = "(its models row is unreadable)"
        remove_model(lake, model_id)
        print(f"removed {model_id[:12]} {what}")
    print("run `filterlake analyze` (or report) to bring the derived tables up to date")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from filterlake.lake.check import check_lake
    from filterlake.lake.location import parse_lake

    report = check_lake(parse_lake(args.lake), repair_leftovers=not args.no_repair)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def cmd_compact(args: argparse.Namespace) -> int:
    from filterlake.lake.compact import compact
    from filterlake.lake.layout import require_lake, resolve_lake

    report = compact(require_lake(resolve_lake(args.lake)))
    assert report is not None  # compact() waits for running analyses
    for note in report.kept:
        print(f"note: {note}")
    print(report.line())
    return 0


def run_analysis(args: argparse.Namespace):
    """The incremental analysis the options ask for, with a progress bar per stage."""
    from filterlake.cli.progress import stages
    from filterlake.derived.analyze import analyze
    from filterlake.lake.location import parse_lake
    from filterlake.numeric.params import QualityParams

    with stages(getattr(args, "quiet", False)) as bar:
        extra = {"permutations": args.permutations, "seed": args.seed} if args.command == "analyze" else {}
        return analyze(
            parse_lake(args.lake),
            args.preset,
            tuple(args.group_by),
            args.basis_on,
            QualityParams().with_(eps=args.sparsity_eps),
            on_stage=bar.on_stage,
            on_model=bar.on_item,
            merge_duplicates=not args.keep_duplicates,
            basis_file=args.basis,
            **extra,
        )


def cmd_basis(args: argparse.Namespace) -> int:
    from filterlake.derived.basis import export_basis
    from filterlake.derived.object_lake import local_copy
    from filterlake.lake.location import ObjectLake, parse_lake

    lake = parse_lake(args.lake)
    folder = local_copy(lake, filters=False) if isinstance(lake, ObjectLake) else lake
    print(f"basis written to {export_basis(folder, args.out)}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    given = args.group_by is not None
    args.group_by = args.group_by or ["domain"]
    analysis = run_analysis(args)
    evr = ", ".join(f"{v:.3f}" for v in analysis.basis.evr)
    print(f"basis {analysis.basis_id}: N = {analysis.basis.n:,} filters; EVR = [{evr}]")
    print(
        f"layer statistics: {analysis.stats['computed']} models computed, {analysis.stats['reused']} reused; "
        f"histograms: {analysis.histograms['computed']} models computed, {analysis.histograms['reused']} reused"
    )
    print(
        f"preset {analysis.preset.name}: {analysis.spec.bins} bins over "
        f"({analysis.spec.lo:.4g}, {analysis.spec.hi:.4g}), {analysis.preset.weights} weights"
    )
    for column, path in analysis.shifts.items():
        print(f"shifts by {column}: {analysis.where(path)}")
    for model_id in analysis.unreadable:
        print(
            f"note: model {model_id[:12]} left out: its models row cannot be read (`filterlake check` names "
            f"it, `filterlake remove {model_id[:12]}` drops it)",
            file=sys.stderr,
        )
    if analysis.meta_only:
        print(
            f"note: {len(analysis.meta_only)} models imported with --meta-only left out (no filters; a full "
            "`filterlake import` adds them)",
            file=sys.stderr,
        )
    if analysis.unlabelled and not given:  # the default grouping: a note, not an error
        print(
            f"note: no model has a {analysis.unlabelled[0]}; give metadata or choose --group-by",
            file=sys.stderr,
        )
    else:
        _warn_unlabelled(analysis)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 1 if analysis.unlabelled and given else 0


def _warn_unlabelled(analysis) -> None:
    for column in analysis.unlabelled:
        print(
            f"filterlake: error: --group-by {column}: no model has a value for it (a models column, model, "
            f"medical, task_kind, family, depth_decile or a key of the extra metadata)",
            file=sys.stderr,
        )


def cmd_shift(args: argparse.Namespace) -> int:
    from filterlake.cli.output import emit
    from filterlake.derived.shifts import permutation

    args.quiet = True
    analysis = run_analysis(args)
    if analysis.unlabelled:
        _warn_unlabelled(analysis)
        return 1
    con = analysis.connect()
    for column in args.group_by:
        rows = con.execute("SELECT * FROM read_parquet(?)", [str(analysis.shifts[column])]).fetchall()
        if args.format == "table":
            labels = list(dict.fromkeys(r[0] for r in rows))
            value = {(r[0], r[1]): r[2] for r in rows}
            if len(args.group_by) > 1:
                print(f"shift D by {column}")
            emit([column, *labels], [[a, *(round(value[a, b], 4) for b in labels)] for a in labels], "table")
        else:
            emit([d[0] for d in con.description], rows, args.format)
    if args.test:
        a, b = args.test[0], args.test[1] if len(args.test) > 1 else None
        result = permutation(
            con,
            analysis.basis_id,
            analysis.spec,
            args.group_by[0],
            a,
            b,
            analysis.weights(),
            args.permutations,
            args.seed,
        )
        print(
            f"{a} vs {b or 'rest'}: D = {result.observed:.4f}, permutation p = {result.p_value:.4g} "
            f"({result.n_permutations} permutations of models), bootstrap {int(result.confidence * 100)}% "
            f"interval [{result.ci_low:.4f}, {result.ci_high:.4f}]",
            file=sys.stderr,
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Analyse what the report needs, build it in --out and print where it is and its key numbers."""
    from filterlake.cli.progress import stages
    from filterlake.lake.location import parse_lake
    from filterlake.numeric.params import QualityParams
    from filterlake.report.compose import analyze_and_report

    with stages(args.quiet) as bar:
        report = analyze_and_report(
            parse_lake(args.lake),
            Path(args.out),
            tuple(args.group_by),
            args.preset,
            args.permutations,
            basis_on=args.basis_on,
            params=QualityParams().with_(eps=args.sparsity_eps),
            seed=args.seed,
            merge_duplicates=not args.keep_duplicates,
            on_stage=bar.on_stage,
            on_model=bar.on_item,
        )
    n = report.numbers
    print(f"report: {report.index.resolve()}")
    print(
        f"  {n.get('models', 0)} models, {n.get('layers', 0):,} 3x3 layers, {n.get('filters', 0):,} "
        f"filters; basis N = {n.get('basis_n', 0):,}, EVR[0] = {n.get('evr', [float('nan')])[0]:.3f}"
    )
    if "medical_shift" in n:
        low, high = n["medical_ci"]
        print(
            f"  medical ({n['medical_models']}) vs non-medical ({n['other_models']}) models: D = "
            f"{n['medical_shift']:.4f} nats, permutation p = {n['medical_p']:.3g}, bootstrap interval "
            f"[{low:.4f}, {high:.4f}]"
        )
    else:
        print("  medical vs non-medical: not tested (the lake needs models of both groups)")
    print(
        f"  {n.get('degenerated_layers', 0)} degenerated layers, {n.get('binary_like_layers', 0)} binary-like; "
        f"{len(report.figures)} figures, {len(report.tables)} tables (summary: {report.summary}); "
        f"{report.seconds:.1f} s"
    )
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """Build and ingest untrained baselines (filterlake.baselines), or list the architecture names."""
    from rich.console import Console

    from filterlake.baselines import ingest_baselines
    from filterlake.baselines.architectures import TIMM_PREFIXES, known_names
    from filterlake.cli.progress import progress_bar
    from filterlake.lake.layout import resolve_lake

    if args.list:
        print("\n".join(known_names()))
        print(f"{TIMM_PREFIXES[0]}NAME  (any timm architecture, when timm is installed)")
        return 0
    lake = resolve_lake(args.lake)
    err = Console(stderr=True, soft_wrap=True)
    start = time.perf_counter()
    with progress_bar(args.quiet, "baseline") as progress:
        task = progress.add_task("building", total=None)
        outcomes = ingest_baselines(
            args.architectures,
            args.seeds,
            lake,
            on_result=lambda o: (
                progress.advance(task),
                progress.update(task, description=o.name or o.source),
                _report(err, o, args.quiet),
            ),
        )
    _summary(Console(soft_wrap=True), outcomes, time.perf_counter() - start)
    return 1 if any(o.status == FAILED for o in outcomes) else 0
