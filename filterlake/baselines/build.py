"""Build untrained baselines as safetensors checkpoints in the cache, and ingest them with their metadata.

A checkpoint lives at `CACHE/baselines/torch-<version>_<library>-<version>/<architecture>/seed-<n>.safetensors`
and is written atomically, so a file there is complete and is reused as it is: the same torch version,
architecture and seed give bit-identical weights and safetensors writes them byte-deterministically (the
tests check both), so reusing the file gives the model id a rebuild would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filterlake.baselines.architectures import (
    TIMM,
    Architecture,
    construct,
    import_torchvision,
    init_description,
    resolve,
)
from filterlake.errors import FilterlakeError
from filterlake.ingest.pipeline import Outcome, ingest_file, prepare_lake
from filterlake.resources import cache_dir
from filterlake.sources.metadata import split, validate
from filterlake.vocab import FAILED, UNTRAINED

HEADER_KEY = "filterlake_baseline"  # the safetensors metadata key that describes the baseline
NONE_UNTRAINED = "none (untrained)"  # the task and the training dataset of every baseline
SEEDED = (
    "torch.manual_seed(seed) right before construction: it seeds torch's default CPU generator, from which "
    "every init draws (the model is built on the CPU in float32); Python's random and numpy are not seeded, "
    "construction does not use them"
)


@dataclass(frozen=True)
class Baseline:
    """One untrained model to build: an architecture and the seed of its initialisation."""

    architecture: Architecture
    seed: int

    @property
    def name(self) -> str:
        """Its `models.name`."""
        return f"{self.architecture.name} untrained, seed {self.seed}"


def versions(architecture: Architecture) -> dict[str, str]:
    """The versions recorded with a baseline: torch (the generator and the init functions), torchvision (the
    architecture code, recorded for every baseline) and timm for its architectures."""
    import torch

    import_torchvision()
    import torchvision

    found = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    if architecture.library == TIMM:
        import timm

        found["timm"] = timm.__version__
    return found


def checkpoint_path(baseline: Baseline, cache: Path | None = None) -> Path:
    """Where the baseline's checkpoint is cached (the versions in the path: another torch builds anew)."""
    tag = "_".join(f"{k}-{v}" for k, v in versions(baseline.architecture).items())
    folder = (cache or cache_dir()) / "baselines" / tag / baseline.architecture.name
    return folder / f"seed-{baseline.seed}.safetensors"


def build_checkpoint(baseline: Baseline, cache: Path | None = None) -> Path:
    """The baseline's safetensors checkpoint: built and written atomically when the cache does not hold it."""
    import torch
    from safetensors.torch import save_model

    target = checkpoint_path(baseline, cache)
    if target.is_file():
        return target
    torch.manual_seed(baseline.seed)
    try:
        model = construct(baseline.architecture)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise FilterlakeError(f"{baseline.architecture.name}: cannot build it ({exc})") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    # one header key: safetensors writes the keys of its metadata in an arbitrary order, which would make the
    # bytes (and so the model id) differ between runs
    about = {
        "architecture": baseline.architecture.name,
        "seed": baseline.seed,
        **versions(baseline.architecture),
    }
    try:
        save_model(model, str(part), metadata={HEADER_KEY: json.dumps(about, sort_keys=True)})
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
    return target


def baseline_metadata(baseline: Baseline) -> dict[str, Any]:
    """The baseline's metadata in the normalised form of sources.metadata (validated against its schema)."""
    architecture = baseline.architecture
    entry = {
        "name": baseline.name,
        "architecture": architecture.name,
        "task": NONE_UNTRAINED,
        "domain": UNTRAINED,
        "training_dataset": NONE_UNTRAINED,
        "extra": {
            "baseline": True,
            "seed": baseline.seed,
            "seeded": SEEDED,
            "init": init_description(architecture),
            "library": architecture.library,
            "constructor": architecture.source,
            **versions(architecture),
        },
    }
    validate(entry, baseline.name)
    return split(entry)


def ingest_baselines(
    architectures: Iterable[str],
    seeds: int,
    lake: Path,
    cache: Path | None = None,
    on_result: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Build (or reuse) and ingest seeds 0..seeds-1 of every architecture named; one outcome each, in order.

    Every name is resolved before anything is built, so a misspelt one fails at once (FilterlakeError). A
    baseline that cannot be built or ingested becomes a failed outcome and the others go on.
    """
    chosen = [resolve(name) for name in dict.fromkeys(architectures)]
    prepare_lake(lake)
    outcomes = []
    for architecture in dict.fromkeys(chosen):
        for seed in range(seeds):
            baseline = Baseline(architecture, seed)
            try:
                path = build_checkpoint(baseline, cache)
                outcome = ingest_file(path, lake, meta=baseline_metadata(baseline))
            except FilterlakeError as exc:
                outcome = Outcome(source=baseline.name, status=FAILED, name=baseline.name, message=str(exc))
            outcomes.append(outcome)
            if on_result:
                on_result(outcome)
    return outcomes
