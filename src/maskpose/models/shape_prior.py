"""Shape Prior Network ψ (the paper's SPN, reference-facts §5): skeleton mask → physique mask.

A small U-Net: ``ψ(M_skel [B, 1, S, S]) -> M_phys [B, 1, S, S]`` in (0, 1) (sigmoid). It sees only the
rendered skeleton mask (no image), so it learns a generic skeleton → silhouette prior; the physique loss
back-propagates through it and the (non-detached) skeleton renderer into the detector.

Layout for ``channels = [c0, c1, ..., cL]`` (default ``[32, 64, 128]`` as in the authors' code, L = 2
downsamplings, so ``S`` must be divisible by ``2^L``)::

    encoder  level 0: conv(in → c0) → conv(c0 → c0)                      @ S
             level k: down(c_{k-1} → c_k, stride 2) → conv(c_k → c_k)    @ S / 2^k
    decoder  level k = L-1 … 0: up(c_{k+1} → c_k) (bilinear ×2 + conv) → + skip (encoder level k)
             → conv(c_k → c_k) (levels k ≥ 1 only)
    out      conv3x3(c0 → out) → sigmoid

This is the authors' layout (their decoder is conv(128→128) @S/4, up(128→64), conv(64→64), up(64→32),
output conv) with additive skips: the same cost and ~0.42 M parameters at the default channels.
Additive rather than concatenated skips keep the full-resolution level cheap (a concat + fuse conv
would cost ~33 % more compute, and the SPN is the expensive network at 64 px: see below).

"conv" = Conv3x3 → GroupNorm → LeakyReLU(0.01). Differences from the authors' code, on purpose:
GroupNorm instead of (Sync)BatchNorm (batch-size independent, matches the detector), and skip
connections (the paper calls it a "lightweight U-Net"; the authors' code is a plain encoder-decoder).
The final conv's bias starts at ``init_bias`` (default −2, i.e. sigmoid ≈ 0.12: masks are mostly
background), which speeds the first steps up.

Cost: most of it is at full resolution: 0.34 GMAC per 64 px mask forward at the default channels
(5.5× the default detector's 0.063 GMAC; 0.42 M parameters); ``channels=(16, 32, 64)`` costs a
quarter (0.086 GMAC, 0.10 M parameters) and is the sensible choice for CPU training.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _gn(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, groups), channels)


class ConvGN(nn.Sequential):
    """Conv3x3 (stride 1 or 2) → GroupNorm → LeakyReLU(0.01)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, groups: int = 8) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            _gn(c_out, groups),
            nn.LeakyReLU(0.01, inplace=True),
        )


class ShapePriorNet(nn.Module):
    """U-Net ψ: skeleton mask ``[B, in_channels, S, S]`` → physique mask ``[B, out_channels, S, S]`` in (0, 1).

    Args:
        channels: encoder channels per level (``len(channels) − 1`` stride-2 downsamplings).
        groups: GroupNorm groups (reduced to a divisor of the channel count where needed).
        in_channels, out_channels: 1 and 1 for the paper's use.
        init_bias: initial bias of the output logit.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128), groups: int = 8, in_channels: int = 1,
                 out_channels: int = 1, init_bias: float = -2.0) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) < 1 or any(c < 1 for c in channels):
            raise ValueError(f"ShapePriorNet: channels must be a non-empty list of positive ints, got {channels}")
        self.channels = channels
        self.levels = len(channels) - 1
        self.enc = nn.ModuleList()
        for k, c in enumerate(channels):
            first = ConvGN(in_channels, c, 1, groups) if k == 0 else ConvGN(channels[k - 1], c, 2, groups)
            self.enc.append(nn.Sequential(first, ConvGN(c, c, 1, groups)))
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for k in range(self.levels - 1, -1, -1):
            self.up.append(ConvGN(channels[k + 1], channels[k], 1, groups))
            # a conv after the skip addition on every level but the full-resolution one (as the
            # authors' decoder: the last up-conv feeds the output conv directly)
            self.fuse.append(ConvGN(channels[k], channels[k], 1, groups) if k > 0 else nn.Identity())
        self.out = nn.Conv2d(channels[0], out_channels, 3, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.01, mode="fan_out", nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.constant_(self.out.bias, init_bias)

    def logits(self, skeleton: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output ``[B, out, S, S]`` (use with a logit-space loss if wanted)."""
        k = 2 ** self.levels
        if not torch.jit.is_tracing() and (skeleton.dim() != 4 or skeleton.shape[-1] % k or skeleton.shape[-2] % k):
            raise ValueError(f"ShapePriorNet: expected [B, C, S, S] with S divisible by {k}, got {list(skeleton.shape)}")
        skips = []
        x = skeleton
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
        for i, (up, fuse) in enumerate(zip(self.up, self.fuse)):
            skip = skips[self.levels - 1 - i]
            x = up(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
            x = fuse(x + skip)
        return self.out(x)

    def forward(self, skeleton: torch.Tensor) -> torch.Tensor:
        """Physique mask in (0, 1), same spatial size as ``skeleton``."""
        return torch.sigmoid(self.logits(skeleton))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
