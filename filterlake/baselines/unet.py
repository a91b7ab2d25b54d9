"""A small, standard 2-D U-Net (Ronneberger et al. 2015, with batch normalisation), for untrained baselines.

torchvision has no U-Net, and the medical models of the lake are mostly U-Nets, so filterlake defines one: four
levels down and four up, each a double 3x3 conv (conv -> BatchNorm -> ReLU, twice; no conv bias), 2x2 max
pooling down, 2x2 transposed convs up with the skip connection concatenated, and a 1x1 conv head. With the
default 32 base features the widths are 32-64-128-256 and 512 at the bottleneck (7.8 M parameters; 18 3x3
convs). Every layer keeps PyTorch's default initialisation (nothing here re-initialises).
"""

from __future__ import annotations

import torch
from torch import nn

UNET = "unet"  # the architecture's name in `filterlake baseline` and in `models.architecture`
LEVELS, BASE_FEATURES, IN_CHANNELS, OUT_CHANNELS = 4, 32, 1, 2
INIT = (
    "PyTorch defaults, nothing re-initialised: Conv2d and ConvTranspose2d weights kaiming_uniform_(a=sqrt(5)), "
    "i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BatchNorm2d weight 1, bias 0; the 1x1 head's bias "
    "U(-1/sqrt(fan_in), 1/sqrt(fan_in))"
)


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convs (padding 1, no bias), each followed by BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with `levels` poolings; feature widths `base * 2**k` (k = 0..levels, the last at the bottleneck)."""

    def __init__(
        self,
        in_channels: int = IN_CHANNELS,
        out_channels: int = OUT_CHANNELS,
        base: int = BASE_FEATURES,
        levels: int = LEVELS,
    ):
        super().__init__()
        widths = [base * 2**k for k in range(levels + 1)]
        self.down = nn.ModuleList(
            double_conv(a, b) for a, b in zip([in_channels, *widths[:-2]], widths[:-1], strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(w * 2, w, 2, stride=2) for w in reversed(widths[:-1]))
        self.decode = nn.ModuleList(double_conv(w * 2, w) for w in reversed(widths[:-1]))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, decode, skip in zip(self.up, self.decode, reversed(skips), strict=True):
            x = decode(torch.cat([skip, up(x)], dim=1))
        return self.head(x)
