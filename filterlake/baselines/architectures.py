"""Which untrained architectures `filterlake baseline` can build, and how each initialises its weights.

Three libraries of architecture definitions, all installed as code (no download; `weights=None`): torchvision
(any name `torchvision.models.list_models()` knows), timm when it is installed (`timm:NAME`), and filterlake's
own U-Net (`unet`, baselines/unet.py). A name is matched exactly (case-insensitive, "-" read as "_"), else
ignoring "-" and "_" when that is unambiguous ("ResNet-18" -> resnet18, "mobilenetv2" -> mobilenet_v2).
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from torch import nn

from filterlake.baselines import unet
from filterlake.errors import FilterlakeError

TORCHVISION, TIMM, FILTERLAKE = "torchvision", "timm", "filterlake"
TIMM_PREFIXES = ("timm:", "timm/")
LIST_HINT = "`filterlake baseline --list` lists the valid names"
PYTORCH_DEFAULT = (
    "PyTorch defaults, nothing re-initialised: Conv2d weights kaiming_uniform_(a=sqrt(5)), i.e. "
    "U(-1/sqrt(fan_in), 1/sqrt(fan_in))"
)
FAN_OUT_RELU = "Conv2d kaiming_normal_(mode='fan_out', nonlinearity='relu')"
# The default init of each torchvision classification module, as its source (torchvision 0.28) writes it.
TORCHVISION_INIT = {
    "alexnet": PYTORCH_DEFAULT,
    "shufflenetv2": PYTORCH_DEFAULT,
    "resnet": f"{FAN_OUT_RELU}; BatchNorm2d/GroupNorm weight 1, bias 0; Linear PyTorch default",
    "vgg": f"{FAN_OUT_RELU}, bias 0; BatchNorm2d weight 1, bias 0; Linear normal_(0, 0.01), bias 0",
    "mnasnet": f"{FAN_OUT_RELU}, bias 0; BatchNorm2d 1/0; Linear kaiming_uniform_(mode='fan_out', "
    "nonlinearity='sigmoid'), bias 0",
    "mobilenetv2": "Conv2d kaiming_normal_(mode='fan_out'), bias 0; BatchNorm2d/GroupNorm 1/0; Linear "
    "normal_(0, 0.01), bias 0",
    "mobilenetv3": "Conv2d kaiming_normal_(mode='fan_out'), bias 0; BatchNorm2d/GroupNorm 1/0; Linear "
    "normal_(0, 0.01), bias 0",
    "efficientnet": "Conv2d kaiming_normal_(mode='fan_out'), bias 0; BatchNorm2d/GroupNorm 1/0; Linear "
    "uniform_(-1/sqrt(out_features), 1/sqrt(out_features)), bias 0",
    "densenet": "Conv2d kaiming_normal_() (fan_in, leaky_relu a=0); BatchNorm2d 1/0; Linear bias 0",
    "regnet": "Conv2d normal_(0, sqrt(2 / fan_out)) with fan_out = kH*kW*out_channels; BatchNorm2d 1/0; "
    "Linear normal_(0, 0.01), bias 0",
    "squeezenet": "Conv2d kaiming_uniform_() (fan_in, leaky_relu a=0), the final 1x1 conv normal_(0, 0.01); "
    "conv biases 0",
    "googlenet": "Conv2d and Linear trunc_normal_(0, 0.01, a=-2, b=2); BatchNorm2d 1/0",
    "inception": "Conv2d and Linear trunc_normal_(0, stddev, a=-2, b=2), stddev 0.1 unless the layer sets "
    "one (0.01 / 0.001 in the aux head); BatchNorm2d 1/0",
    "convnext": "Conv2d and Linear trunc_normal_(std=0.02), bias 0",
    "maxvit": "Conv2d normal_(std=0.02), bias 0; BatchNorm2d 1/0; Linear normal_(std=0.02), bias 0",
    "swin_transformer": "Conv2d PyTorch default (kaiming_uniform_(a=sqrt(5))); Linear trunc_normal_(std=0.02), "
    "bias 0",
    "vision_transformer": "patchify Conv2d trunc_normal_(std=sqrt(1 / fan_in)), bias 0 (a conv stem's last 1x1 "
    "conv normal_(0, sqrt(2 / out_channels)), its other convs PyTorch default); MLP Linear xavier_uniform_",
}


@dataclass(frozen=True)
class Architecture:
    """One buildable architecture: its library and its name there (also `models.architecture`)."""

    library: str
    name: str

    @property
    def source(self) -> str:
        """How it is constructed, as Python."""
        if self.library == TORCHVISION:
            options = "".join(f", {k}=None" for k in _torchvision_options(self.name))
            return f"torchvision.models.get_model({self.name!r}{options})"
        if self.library == TIMM:
            return f"timm.create_model({self.name!r}, pretrained=False)"
        return "filterlake.baselines.unet.UNet()"


def import_torchvision() -> ModuleType:
    """`torchvision.models`, also when torchvision's compiled ops cannot load with this torch build.

    A torchvision wheel built for another torch (here the CUDA build of torchvision 0.28.0 beside the CPU build
    of torch 2.13.0) fails on import: its `_meta_registrations` registers fake kernels for the `torchvision::nms`
    and `torchvision::qnms` ops that its unloadable C++ library would have defined. Defining those two op
    schemas first (no kernels) lets the pure-Python architecture definitions import; the ops stay unusable,
    and building an architecture never calls them.
    """
    _define_missing_ops()
    import torchvision.models

    return torchvision.models


@cache
def _define_missing_ops() -> object | None:
    """The two op schemas torchvision's import needs, defined only when its C++ library does not load (the
    returned Library must stay alive, hence the cache)."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        raise FilterlakeError("torchvision is not installed (`make setup` installs it)")
    try:
        torch.ops.load_library(next(Path(spec.submodule_search_locations[0]).glob("_C.*")))
        return None
    except (OSError, StopIteration):
        library = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        return library


def torchvision_names() -> list[str]:
    """Every architecture name of torchvision.models (classification, detection, segmentation, video, ...)."""
    return sorted(import_torchvision().list_models())


def known_names() -> list[str]:
    """Every name `resolve` accepts without the timm prefix."""
    return sorted([*torchvision_names(), unet.UNET])


def resolve(given: str) -> Architecture:
    """The architecture a user's name stands for; raises FilterlakeError in one line naming how to find names."""
    text = given.strip()
    if text.lower().startswith(TIMM_PREFIXES):
        name = text[len(TIMM_PREFIXES[0]) :]
        if importlib.util.find_spec("timm") is None:
            raise FilterlakeError(
                f"{given}: timm is not installed; `pip install timm` adds its architectures "
                f"(torchvision's and unet work without it; {LIST_HINT})"
            )
        import timm

        if not timm.is_model(name):
            raise FilterlakeError(f"{given}: timm has no such architecture (see timm.list_models())")
        return Architecture(TIMM, name)
    names = known_names()
    exact = text.lower().replace("-", "_")
    if exact in names:
        return _in_library(exact)
    loose = {}
    for name in names:
        loose.setdefault(_loose(name), []).append(name)
    found = loose.get(_loose(text), [])
    if len(found) == 1:
        return _in_library(found[0])
    why = f"ambiguous ({' or '.join(found)})" if found else "unknown architecture"
    close = difflib.get_close_matches(exact, names, n=3, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close and not found else ""
    raise FilterlakeError(f"{given}: {why}{hint}; {LIST_HINT}")


def _loose(name: str) -> str:
    return re.sub(r"[-_\s]", "", name.lower())


def _in_library(name: str) -> Architecture:
    return Architecture(FILTERLAKE if name == unet.UNET else TORCHVISION, name)


def construct(architecture: Architecture) -> nn.Module:
    """The untrained model, built with the architecture's own default initialisation (no weights fetched)."""
    if architecture.library == FILTERLAKE:
        return unet.UNet()
    if architecture.library == TIMM:
        import timm

        return timm.create_model(architecture.name, pretrained=False)
    builder = import_torchvision().get_model_builder(architecture.name)
    return builder(**_torchvision_options(architecture.name))


def _torchvision_options(name: str) -> dict[str, None]:
    """No weights, and for detection and segmentation models no pretrained backbone either (nothing fetched)."""
    parameters = inspect.signature(import_torchvision().get_model_builder(name)).parameters
    return {key: None for key in ("weights", "weights_backbone") if key in parameters}


def init_description(architecture: Architecture) -> str:
    """The default initialisation scheme of the architecture, in one line."""
    if architecture.library == FILTERLAKE:
        return unet.INIT
    if architecture.library == TIMM:
        return "timm's default initialisation of this architecture (not summarised here)"
    builder = import_torchvision().get_model_builder(architecture.name)
    module = builder.__module__.removeprefix("torchvision.models.")
    described = TORCHVISION_INIT.get(module)
    return described or f"the default initialisation of torchvision.models.{module} (not summarised here)"
