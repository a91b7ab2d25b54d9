"""How a synthetic zoo is planned: the models (family, size, domain, format) making up N filters."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.synthetic.architectures import BUILDERS

FORMATS = ("torch", "safetensors", "onnx")
FORMAT_WEIGHTS = (0.5, 0.25, 0.25)
DOMAINS = {  # domain -> (pool, modality, task)
    "natural": ("natural", "RGB photographs", "image classification"),
    "medical mri": ("medical", "MRI slices", "segmentation"),
    "medical ct": ("medical", "CT slices", "segmentation"),
    "medical microscopy": ("medical", "fluorescence microscopy", "segmentation"),
    "medical histology": ("medical", "H&E histology", "classification"),
    "medical x-ray": ("medical", "chest X-ray", "classification"),
    "faces": ("faces", "RGB photographs of faces", "face detection"),
    "street scenes": ("street", "RGB street scenes", "semantic segmentation"),
    "remote sensing": ("natural", "satellite imagery", "land-cover classification"),
    "handwriting": ("natural", "grayscale digits", "digit classification"),
}
# The domains models are drawn from (a repeat doubles a domain's weight): U-Nets segment, the others classify.
SEGMENTATION_DOMAINS = ("medical mri", "medical ct", "medical microscopy", "medical mri", "street scenes",
                        "remote sensing")  # fmt: skip
CLASSIFICATION_DOMAINS = ("natural", "natural", "natural", "faces", "medical x-ray", "medical histology",
                          "remote sensing", "street scenes", "handwriting")  # fmt: skip
FAMILY_WEIGHTS = {
    "vgg": 0.15,
    "resnet_cifar": 0.2,
    "resnet": 0.15,
    "resnet_bottleneck": 0.1,
    "unet": 0.2,
    "mobilenet": 0.04,
    "small_cnn": 0.16,
}


@dataclass
class ModelSpec:
    """Everything needed to write one model (deterministic from `seed`)."""

    index: int
    name: str
    family: str
    builder: str
    args: dict[str, Any]
    domain: str
    fmt: str
    seed: int
    n_filters: int
    n_layers: int
    wrap: str = "plain"  # torch only: "plain" state dict, "checkpoint" {'state_dict': ...}, "module" prefix


def _sample_arch(rng: np.random.Generator, family: str) -> tuple[str, dict[str, Any], str]:
    """(builder, kwargs, domain) of a random member of a family."""

    def pick(seq: Sequence[Any]) -> Any:
        """A uniformly drawn element."""
        return seq[int(rng.integers(len(seq)))]

    if family == "unet":
        domain = pick(SEGMENTATION_DOMAINS)
        in_ch = 1 if domain.startswith("medical") else 3
        args = {"levels": pick([3, 4, 4, 5]), "base": pick([8, 16, 16, 32, 32, 64]), "in_ch": in_ch}
        return "unet", {**args, "classes": pick([1, 2, 3, 4]), "up": pick(["transposed", "interp"])}, domain
    domain = pick(CLASSIFICATION_DOMAINS)
    in_ch = 1 if domain in ("medical x-ray", "handwriting") else 3
    classes = pick([2, 10, 100, 1000])
    if family == "vgg":
        args = {"depth": pick([11, 13, 16, 19]), "width": pick([0.125, 0.25, 0.5, 1.0]), "in_ch": in_ch}
        return "vgg", {**args, "batchnorm": bool(rng.integers(2)), "classes": classes}, domain
    if family == "resnet_cifar":
        args = {"depth": pick([20, 32, 44, 56, 110]), "width": pick([1, 1, 2, 4]), "in_ch": in_ch}
        return "resnet_cifar", {**args, "classes": pick([10, 100])}, domain
    if family in ("resnet", "resnet_bottleneck"):
        depth = pick([18, 34]) if family == "resnet" else pick([50, 50, 101])
        args = {"depth": depth, "width": pick([0.25, 0.5, 1.0]), "in_ch": in_ch, "classes": classes}
        return "resnet", args, domain
    if family == "mobilenet":
        args = {"width": pick([0.25, 0.5, 0.75, 1.0]), "in_ch": in_ch, "classes": classes}
        return "mobilenet", args, domain
    if family in ("small_cnn", "tiny"):
        base = pick([4, 8, 16, 32, 64]) if family == "small_cnn" else pick([2, 4, 8, 16])
        n_layers = int(rng.integers(2, 9 if family == "small_cnn" else 6))
        args = {"n_layers": n_layers, "base": base, "in_ch": in_ch, "classes": classes}
        return "small_cnn", {**args, "stem7": bool(rng.random() < 0.3)}, domain
    raise ValueError(f"unknown family {family!r}")


_SIZE_CACHE: dict[str, tuple[int, int]] = {}


def _size(builder: str, args: dict[str, Any]) -> tuple[int, int]:
    """(3x3 filters, 3x3 layers) of an architecture, built once per distinct argument set."""
    key = builder + json.dumps(args, sort_keys=True)
    if key not in _SIZE_CACHE:
        net = BUILDERS[builder](**args)
        _SIZE_CACHE[key] = (net.n_filters, net.n_layers)
    return _SIZE_CACHE[key]


def default_max_model_filters(n_filters: int) -> int:
    """The largest model of a budget: half of it, within [20k, 4M] (small zoos still hold several models)."""
    return int(min(max(n_filters // 2, 20_000), 4_000_000))


def plan(
    n_filters: int,
    seed: int = 0,
    n_models: int | None = None,
    max_model_filters: int | None = None,
    family: str | None = None,
    formats: Iterable[str] = FORMATS,
    prefix: str = "m",
) -> list[ModelSpec]:
    """The list of models of a zoo (deterministic in its arguments), before any weight is drawn.

    Budget mode (n_models None): draw models until the 3x3 filters reach `n_filters`. Count mode: exactly
    `n_models` models of about n_filters / n_models filters each (family 'tiny' by default).
    """
    rng = np.random.default_rng([seed, 7919])
    formats = tuple(formats)
    fweights = np.array([FORMAT_WEIGHTS[FORMATS.index(f)] for f in formats], float)
    fweights /= fweights.sum()
    families = [family] if family else list(FAMILY_WEIGHTS)
    famw = np.array([FAMILY_WEIGHTS.get(f, 1.0) for f in families], float)
    famw /= famw.sum()
    specs: list[ModelSpec] = []
    total = 0
    if n_models is not None:
        families, famw = ([family] if family else ["tiny"]), np.ones(1)
        per = max(n_filters // max(n_models, 1), 1)
        lo, hi = max(per // 4, 1), max(per * 2, 8)
    else:
        hi = max_model_filters or default_max_model_filters(n_filters)
        lo = 1
    while (len(specs) < n_models) if n_models is not None else (total < n_filters):
        # near the end of a budget the cap shrinks to what is left, but never below hi/8 (bounded overshoot)
        cap = hi if n_models is not None else min(hi, max(n_filters - total, hi // 8))
        for attempt in range(400):
            if attempt % 20 == 0:  # a family first (by weight), then up to 20 members of it that fit the cap
                fam = families[int(rng.choice(len(families), p=famw))]
            builder, args, domain = _sample_arch(rng, fam)
            size, layers = _size(builder, args)
            if lo <= size <= cap:
                break
        else:  # nothing of this budget: a tiny CNN shrunk to fit, or stop when even that is too big
            builder, args, domain = _sample_arch(rng, "tiny")
            args.update(n_layers=2, base=2, stem7=False)
            size, layers = _size(builder, args)
            if size > cap and n_models is None:
                break
        fmt = formats[int(rng.choice(len(formats), p=fweights))]
        wrap = ("plain", "plain", "checkpoint", "module")[int(rng.integers(4))] if fmt == "torch" else "plain"
        index = len(specs)
        name = f"{prefix}{seed}-{index:06d}-{builder}"
        seed_of_model = int(rng.integers(2**31))
        specs.append(
            ModelSpec(index, name, fam, builder, args, domain, fmt, seed_of_model, size, layers, wrap)
        )
        total += size
    return specs
