"""Synthetic model zoos of any size for the benchmark, as real checkpoint files of all three formats.

A synthetic zoo is a folder of checkpoints (PyTorch state dicts via `torch.save`, ONNX graphs built with
`onnx.helper`, safetensors via `safetensors.numpy.save_file`), each with a `<file>.meta.json` sidecar, plus
`synthetic.json` describing what was generated. Models are stacks of convolutions of real architecture
families with their channel counts (VGG, CIFAR and ImageNet ResNets with 1x1 projections and 7x7 stems,
bottleneck ResNets, U-Nets with transposed 2x2 or interpolation + 1x1 up-paths, MobileNet with depthwise 3x3
and pointwise 1x1, small CNNs), with width multipliers; BatchNorm and linear heads are stored as well, so file
sizes are realistic.

Trained-like 3x3 filters: every 3x3 layer draws whole filters (with replacement) from one layer of a real
model of `../shared/corpus` at the same relative depth, from a model of a matching visual domain (medical
models for U-Nets of medical domains, face detectors for faces, ...). The draw is rescaled to a He-like
magnitude for its fan-in (times a log-normal per-layer factor) and gets 5% Gaussian noise; about 3% of the
layers are "degenerated" (a share of their filters zeroed, as pruned or dead filters). Other weights (1x1,
7x7, 2x2 transposed, linear, BatchNorm) are Gaussian with their usual initialisation scales.

    python -m bench.synthetic OUT --filters 1000000 [--seed 0] [--max-model-filters N] [--jobs 2]
    python -m bench.synthetic OUT --models 1000 --filters 200000 --family tiny      # many tiny models

Sizes: in budget mode (`--filters` only) models are drawn until the 3x3 filter count reaches the budget; a
model larger than `max_model_filters` is redrawn (default: half the budget, within [20k, 4M]), so a small CI
zoo still holds several models and a large one holds realistic ImageNet-sized ones. The 3x3 filter count of a
model is the same in every format (no 3x3 transposed convs are generated), so `synthetic.json` gives the exact
expected counts.

Modules: `graph` (the net builder), `architectures` (the families' layer plans), `plan` (which models make up
a zoo), `pool` (the corpus' filters), `sampler` (the weights), `writers` (the files), `generator` (a whole
zoo).
"""

from bench.synthetic.generator import MANIFEST, checkpoint_files, generate, read_manifest
from bench.synthetic.plan import FAMILY_WEIGHTS, FORMATS, default_max_model_filters, plan
from bench.synthetic.pool import load_pool

__all__ = [
    "FAMILY_WEIGHTS",
    "FORMATS",
    "MANIFEST",
    "checkpoint_files",
    "default_max_model_filters",
    "generate",
    "load_pool",
    "plan",
    "read_manifest",
]
