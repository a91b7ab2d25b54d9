"""The argument types and the argument groups several subcommands share (lake, output format, analysis,
medical test), defined once for the parser in `cli/__init__.py`."""

from __future__ import annotations

import argparse
from pathlib import Path

from filterlake.lake.location import OBJECT_LAKE_COMMANDS


def count(minimum: int):
    """argparse type: an integer of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def share(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {value:g}")
    return value


def _lake_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lake",
        metavar="DIR",
        help=f"lake folder or file:///PATH, or s3://BUCKET/PREFIX for {', '.join(OBJECT_LAKE_COMMANDS)} "
        "(endpoint and credentials from the AWS environment; default: $FILTERLAKE_LAKE or ./lake)",
    )


def _format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)"
    )


def _analysis_args(parser: argparse.ArgumentParser) -> None:
    from filterlake.numeric.params import DEFAULT_QUALITY
    from filterlake.numeric.presets import PRESETS

    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="medical",
        help="medical: 70 bins over (-3, 3), uniform weights (the seed paper); cnn-filter-db: 70 "
        "bins over the global coefficient range, EVR weights (default: medical)",
    )
    parser.add_argument(
        "--basis-on",
        metavar="SQL",
        help="fit the basis on the models matching this SQL "
        "condition on models columns, e.g. \"domain = 'natural'\" (default: all models)",
    )
    parser.add_argument(
        "--basis",
        type=Path,
        metavar="FILE",
        help="use this basis instead of fitting one (`filterlake basis export --out FILE` of another lake, "
        "or its LAKE/basis/<id>.parquet): layer statistics and histograms then come from one read",
    )
    parser.add_argument(
        "--sparsity-eps",
        type=share,
        default=DEFAULT_QUALITY.eps,
        metavar="EPS",
        help="a filter is sparse when all |w| < EPS * max|w| of its layer; 0 < EPS < 1 "
        f"(default {DEFAULT_QUALITY.eps:g})",
    )
    parser.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="count every model, also models whose 3x3 filters are identical to another's (default: each "
        "distinct weight set counts once; see the duplicate_weights view)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _lake_arg(parser)


def _medical_test_args(parser: argparse.ArgumentParser) -> None:
    from filterlake.numeric.params import PERMUTATIONS, SEED

    parser.add_argument(
        "--permutations",
        type=count(1),
        default=PERMUTATIONS,
        metavar="N",
        help=f"permutations of the stored medical vs non-medical test (default {PERMUTATIONS})",
    )
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of that test (default {SEED})")
