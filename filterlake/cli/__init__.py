"""`filterlake` command line: the parser and `main`; the subcommands (commands.py) are thin faces over the
package's public functions. User and environment errors end in one line and a non-zero exit, never a traceback;
SIGTERM and SIGHUP take the same clean path as Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from filterlake import __version__
from filterlake.cli.arguments import _analysis_args, _format_arg, _lake_arg, _medical_test_args, count
from filterlake.cli.commands import (
    cmd_analyze,
    cmd_baseline,
    cmd_basis,
    cmd_check,
    cmd_compact,
    cmd_import_cnn_filter_db,
    cmd_ingest,
    cmd_models,
    cmd_remove,
    cmd_report,
    cmd_shift,
    cmd_sql,
)
from filterlake.errors import FilterlakeError, describe_os_error

EPILOG = (
    "The lake is --lake, else $FILTERLAKE_LAKE, else ./lake: a folder, file:///PATH or s3://BUCKET/PREFIX "
    "(ingest, models, sql, check, remove). Docs: README.md."
)
GROUPINGS = (
    "a models column (domain, task, training_dataset, architecture, name, modality, license, format), "
    "model (one group per model, with a unique label), medical, task_kind, family (architecture family), "
    "depth_decile, or a key of the extra metadata"
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand and every argument with its help."""
    from filterlake.lake.init_sql import view_names

    parser = argparse.ArgumentParser(
        prog="filterlake",
        description="A columnar data lake of trained 3x3 convolution filters: ingest PyTorch, ONNX and "
        "safetensors checkpoints into hive-partitioned Parquet, query them with DuckDB, analyse "
        "filter distributions across models.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"filterlake {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "ingest",
        help="ingest checkpoints from files, folders, catalogs or URLs",
        description="Ingest checkpoints. Metadata comes from a catalog entry or a "
        "<checkpoint>.meta.json sidecar. Ingesting the same bytes twice adds nothing. Files and "
        "folders passed over are reported by reason. Exit 0 when every source was ingested or "
        "already present, 1 when any failed (the others are still ingested).",
        epilog=EPILOG,
    )
    p.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="a checkpoint file, a folder (searched recursively, symlinked folders followed), a "
        "catalog (.csv/.toml/.json), an http(s) URL or a Hugging Face Hub model hf://ORG/NAME[@REVISION][/PATH] "
        "(HF_TOKEN for gated ones; HF_HUB_OFFLINE=1 uses the Hugging Face cache alone)",
    )
    p.add_argument("--catalog", action="append", default=[], metavar="FILE", help="catalog file (repeatable)")
    p.add_argument(
        "--update-metadata",
        action="store_true",
        help="overwrite the metadata of models already in the lake with what the sources give "
        "(default: only fill missing fields); filters are never rewritten",
    )
    p.add_argument(
        "--workers",
        "-j",
        type=count(0),
        default=1,
        metavar="N",
        help="ingest N checkpoints at once in worker processes, each holding one checkpoint in memory "
        "(default 1; 0 = one per CPU core). Pays off for many large files",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rewrite models already in the lake whole (e.g. a damaged partition `check` names)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="print only failures, notes and the summary")
    _lake_arg(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "baseline",
        help="build untrained models (default initialisation, seeds 0..N-1) and ingest them",
        description="Build each architecture untrained, with its default initialisation, once per seed "
        "(torch.manual_seed(seed) right before construction), save it as safetensors in $FILTERLAKE_CACHE "
        "(default ./.cache) and ingest it with domain 'untrained' (its own group; left out of the medical "
        "vs non-medical test). Running it again adds nothing. Exit 1 when any failed.",
        epilog=EPILOG,
    )
    p.add_argument(
        "architectures",
        nargs="*",
        metavar="ARCH",
        help="a torchvision architecture (resnet18, vgg11, mobilenet_v2, ...: any name of "
        "torchvision.models.list_models()), unet (filterlake's 2-D U-Net) or timm:NAME (needs timm)",
    )
    p.add_argument("--seeds", type=count(1), default=1, metavar="N", help="seeds 0..N-1 (default 1)")
    p.add_argument("--list", action="store_true", help="print the architecture names it knows and exit")
    p.add_argument("--quiet", "-q", action="store_true", help="print only failures and the summary")
    _lake_arg(p)
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser(
        "models",
        help="list the models of the lake",
        description="One row per model: name, domain, task, architecture, format, 3x3 layers and "
        "filters, and the first 12 characters of its model id.",
        epilog=EPILOG,
    )
    _lake_arg(p)
    _format_arg(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "sql",
        help="run DuckDB SQL over the lake with the views of sql/ loaded",
        description=f"Run DuckDB SQL over the lake. Views: {', '.join(view_names())} "
        "(the analysis views hold rows once `filterlake analyze` ran; see sql/).",
        epilog=EPILOG,
    )
    p.add_argument(
        "query", metavar="QUERY", help='one DuckDB SQL statement, e.g. "SELECT count(*) FROM filters"'
    )
    _lake_arg(p)
    _format_arg(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser(
        "analyze",
        help="compute layer statistics, the basis, histograms and shifts",
        description="Compute and store (incrementally) the derived tables: layer_stats (sparsity, "
        "variance entropy, orthogonality, binary-likeness, sufficient statistics), the 9-component "
        "basis, per-layer coefficient histograms and the pairwise shift matrix of each --group-by "
        f"grouping: {GROUPINGS}.",
        epilog=EPILOG,
    )
    p.add_argument("--group-by", nargs="+", metavar="COL", help="groupings (default: domain)")
    _medical_test_args(p)
    _analysis_args(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "shift",
        help="print the pairwise shift matrices between the groups of columns",
        description="Print the distribution shift D between every pair of groups of each COL (rows "
        "sorted by ascending column mean). Reads only stored histograms; runs the incremental "
        "analysis first when the lake changed. With --test A [B] --permutations N, also a "
        "permutation test over models of one pair (B defaults to all other models).",
        epilog=EPILOG,
    )
    p.add_argument("--group-by", nargs="+", required=True, metavar="COL", help=f"groupings: {GROUPINGS}")
    p.add_argument(
        "--permutations", type=count(1), metavar="N", help="permutations of the test (needs --test)"
    )
    p.add_argument(
        "--test",
        nargs="+",
        metavar="GROUP",
        help="the groups of a permutation test, A [B] (needs --permutations and one --group-by)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the permutation test (default 0)")
    _analysis_args(p)
    _format_arg(p)
    p.set_defaults(func=cmd_shift)

    p = sub.add_parser(
        "report",
        help="write the HTML report (runs the analysis first)",
        description="Run the incremental analysis and write OUT/index.html (PNG figures beside it), "
        "OUT/summary.md and OUT/tables/*.csv: the lake at a glance, the basis, coefficient "
        "distributions, pairwise shift heatmaps, medical vs non-medical with a permutation test, "
        "and layer quality. The page opens from disk, without a server or network.",
        epilog=EPILOG,
    )
    p.add_argument("--out", default="report", metavar="DIR", help="output folder (default: ./report)")
    p.add_argument(
        "--group-by",
        nargs="+",
        default=["domain"],
        metavar="COL",
        help="groupings of the shift heatmaps (default: domain; medical and model are always computed)",
    )
    _medical_test_args(p)
    _analysis_args(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "remove",
        help="remove models from the lake, derived rows included",
        description="Remove models (their models row first, so no reader sees a partial model, then "
        "their layers, filters and derived rows). MODEL_ID may be the first characters of an id "
        "as `filterlake models` shows them.",
        epilog=EPILOG,
    )
    p.add_argument("model_ids", nargs="+", metavar="MODEL_ID", help="model id or a unique prefix of one")
    _lake_arg(p)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser(
        "check",
        help="verify the lake and repair what an interrupted write left behind",
        description="Verify that every model's filter partition holds exactly its filters, that "
        "no orphan partitions exist and that every file, base and derived, has the schema of "
        "schemas/lake_tables.json. Leftovers of interrupted writes and broken derived files (which "
        "the next analysis computes again) are removed unless --no-repair. Exit 0 when consistent.",
        epilog=EPILOG,
    )
    p.add_argument(
        "--no-repair", action="store_true", help="only report; change nothing (needs no write access)"
    )
    _lake_arg(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "basis",
        help="export the basis of the last analysis (for `analyze --basis FILE` on another lake)",
        description="Write the basis of the lake's last analysis: the `basis` table's row as Parquet when "
        "FILE ends in .parquet, else JSON (mean, components, explained_variance, evr, n, sign_rule).",
        epilog=EPILOG,
    )
    p.add_argument("action", choices=["export"])
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    _lake_arg(p)
    p.set_defaults(func=cmd_basis)

    p = sub.add_parser(
        "compact",
        help="fold the per-model files of models, layers and derived tables into a few large files",
        description="Rewrite the one-file-per-model tables (models, layers, layer_stats, histograms, "
        "extents) into one compacted part per folder, so that the views open in bounded time; readers "
        "keep seeing every model once and whole meanwhile. `ingest` and `analyze` do it by themselves "
        "past 100 per-model files of a table. Waits for a running analysis.",
        epilog=EPILOG,
    )
    _lake_arg(p)
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser(
        "import",
        help="import a published filter dataset (CNN Filter DB's dataset.h5)",
        description="Import a published dataset of 3x3 filters into the lake, one lake model per model of it.",
        epilog=EPILOG,
    )
    datasets = p.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    q = datasets.add_parser(
        "cnn-filter-db",
        help="CNN Filter DB's dataset.h5 (Gavrikov & Keuper, CVPR 2022)",
        description="Import CNN Filter DB's dataset.h5 (decompressed: xz -d dataset.h5.xz), streamed model by "
        "model with bounded memory. A killed import resumes where it stopped; importing again adds nothing. "
        "A model whose rows do not match the filters fails alone. Exit 0 when every model was imported or "
        "already present, 1 when any failed.",
        epilog=EPILOG,
    )
    q.add_argument("path", metavar="PATH", help="the dataset.h5 file")
    q.add_argument(
        "--meta-only",
        action="store_true",
        help="land only the models and layers rows (the model list), no filters; a later full import "
        "replaces them",
    )
    q.add_argument("--quiet", "-q", action="store_true", help="print only failures and the summary")
    _lake_arg(q)
    q.set_defaults(func=cmd_import_cnn_filter_db)
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Combinations argparse cannot express, reported with the subcommand's usage."""
    command = parser._subparsers._group_actions[0].choices[args.command]  # the subcommand's own parser
    if args.command == "ingest" and not args.sources and not args.catalog:
        command.error("give a SOURCE or --catalog FILE")
    if args.command == "baseline" and not args.architectures and not args.list:
        command.error("give an ARCH (e.g. resnet18) or --list")
    if args.command == "shift":
        if (args.test is None) != (args.permutations is None):
            command.error("--test and --permutations go together: --test A [B] --permutations N")
        if args.test is not None and len(args.test) > 2:
            command.error("--test takes one or two groups: A [B]")
        if args.test is not None and len(args.group_by) != 1:
            command.error("--test needs exactly one --group-by")


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every open write is discarded and staging is cleaned."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, _frame) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit 0 on success, 1 on a user or environment error, 130/143/129 on an interrupt."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    try:
        return args.func(args)
    except FilterlakeError as exc:
        print(f"filterlake: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"filterlake: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("filterlake: interrupted; the lake keeps only whole models", file=sys.stderr)
        return 130
    except Terminated as exc:
        name = signal.Signals(exc.signum).name
        print(f"filterlake: stopped by {name}; the lake keeps only whole models", file=sys.stderr)
        return 128 + exc.signum


if __name__ == "__main__":
    sys.exit(main())
