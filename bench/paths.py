"""Where the benchmark's inputs and scratch files live: the repository, ../shared/corpus and bench/out/."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"  # the real models whose filters the synthetic zoos resample
OUT = REPO / "bench" / "out"  # synthetic zoos, lakes and caches (gitignored)
