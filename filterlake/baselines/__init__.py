"""Untrained baselines: architectures with their default initialisation, saved as checkpoints and ingested.

The papers compare trained filters with each other, never with the same architecture before training.
`ingest_baselines` builds each architecture once per seed (`torch.manual_seed(seed)` right before
construction), saves its state dict as safetensors in the cache and ingests that file through the ordinary
pipeline (`filterlake.ingest.pipeline`), with `domain = vocab.UNTRAINED` and `extra.baseline = true`.
Same torch version, architecture and seed give the same bytes, so a re-run adds nothing.
"""

from __future__ import annotations

from filterlake.baselines.build import Baseline, baseline_metadata, build_checkpoint, ingest_baselines

__all__ = ["Baseline", "baseline_metadata", "build_checkpoint", "ingest_baselines"]
