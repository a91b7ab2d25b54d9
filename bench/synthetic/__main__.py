"""`python -m bench.synthetic OUT --filters N ...`: write one synthetic zoo, print its manifest's summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bench.synthetic
from bench.synthetic import FAMILY_WEIGHTS, FORMATS, generate


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, generate the zoo, print everything of its manifest but the model list."""
    description = (bench.synthetic.__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic", description=description)
    parser.add_argument("out", type=Path)
    parser.add_argument("--filters", type=int, required=True, help="3x3 filters in total (budget)")
    parser.add_argument("--models", type=int, help="exactly this many models (default family: tiny)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-model-filters", type=int)
    parser.add_argument("--family", choices=[*FAMILY_WEIGHTS, "tiny"])
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--parts", type=int, default=1, help="this many independent zoos of --filters each")
    args = parser.parse_args(argv)
    manifest = generate(
        args.out,
        args.filters,
        args.seed,
        parts=args.parts,
        jobs=args.jobs,
        n_models=args.models,
        max_model_filters=args.max_model_filters,
        family=args.family,
        formats=args.formats.split(","),
    )
    summary = {k: v for k, v in manifest.items() if k != "models"}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
