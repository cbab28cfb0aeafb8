"""Pose detector: a small ResNet-style backbone with GroupNorm, a deconvolution head and an
integral (soft-argmax) 3D heatmap read-out (DESIGN.md §4 "Detector").

Pipeline::

    images [B, C, S, S] ─ stem conv3x3 stride 2 ─ stage 0 (depth BasicBlocks)
        ─ (num_stages − 1) × (BasicBlock stride 2 + depth − 1 BasicBlocks)
        ─ deconv head (ConvTranspose2d k4 s2 + lateral 1x1 skip + GN + ReLU) up to stride ``heatmap_stride``
        ─ 1x1 conv → J·D channels → logits [B, J, D, H', W']  (+ fixed template logit prior)
        ─ softmax over D·H'·W' per joint ─ expectations → (x, y, z) per joint

Coordinate conventions (DESIGN.md §3)
-------------------------------------
* Network coordinates are normalised *input-image* coordinates in [-1, 1]: input pixel centre
  ``i ↦ 2 i / (S − 1) − 1``; ``x`` = column (to the right), ``y`` = row (down).
* A heatmap of ``H'`` cells over an input of ``S`` pixels has stride ``s = S / H'``. Cell ``i``
  covers the input pixels ``s·i … s·i + s − 1``; its centre is the input-pixel position
  ``c_i = s·i + (s − 1) / 2`` (e.g. stride 4: cell 0 ↦ pixel 1.5, the centre of the 4×4 block),
  so in normalised coordinates::

      u_i = 2 (s·i + (s − 1)/2) / (S − 1) − 1          (see :func:`cell_centres`)

  This is the same "block centre" convention as average pooling / ``align_corners=False``
  resizing. The soft-argmax of a delta at cell ``(row i, column j)`` is exactly
  ``(x, y) = (u_j, u_i)``; the reachable range is ``[u_0, u_{H'-1}] = ±(1 − (s − 1)/(S − 1))``
  (within ``(s − 1)/2`` px of the border).
  Note: the authors' code divides by the heatmap size instead (``x/64·2 − 1``, reference-facts
  §6), a small scale bias against the pixel-centre convention; we use the exact mapping.
* Depth: ``D`` bins uniform in [-1, 1], bin ``d ↦ 2 d / (D − 1) − 1`` (both ends included), so
  ``z ∈ [-1, 1]`` is a root-relative depth in normalised units; the caller scales it to mm.

The fixed, label-free *template logit prior* (pilot 3) adds ``−|p − μ_j|² / (2 σ²)`` to joint j's
logits at every depth, with ``μ_j`` a standing figure centred in the crop (left joints at +x, head
at the top, feet at the bottom, see :func:`template_joints2d`). Together with a small-std init of
the last layer, the untrained network outputs that centred, upright template with ``z ≈ 0``.

The girth head (global average pool of the deepest features → zero-initialised linear) gives a
per-sample girth scale ``exp(0.3 · tanh(logit))`` bounded to ``exp(±0.3)``; ``girth = 1`` at init.
Multi-view callers average ``girth_logit`` over views and apply :func:`girth_from_logit`.

``forward`` has no data-dependent Python control flow (only shape arithmetic), so it can be
traced (``torch.jit.trace(..., strict=False)`` for the dict output) and exported to ONNX.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..skeleton import JointSet, get_joint_set

INPUT_MODES = {"rgb": 3, "rgb_mask": 3, "mask": 1, "rgb+mask": 4}

# Template figure: arms abducted by this angle (an A-pose) so that the hands start outside the
# torso's silhouette (a hanging arm hides inside it and its mask gradient vanishes, DESIGN §4).
TEMPLATE_ARM_ABDUCTION_DEG = 20.0
GIRTH_LOG_BOUND = 0.3


@dataclass
class DetectorConfig:
    """Detector hyper-parameters.

    input: ``"rgb"`` (3 ch), ``"rgb_mask"`` (RGB × mask, 3 ch), ``"mask"`` (1 ch) or ``"rgb+mask"``
        (RGB and mask stacked, 4 ch); build the tensor with :func:`make_input`.
    width: stem channels. The stem (conv3x3, stride 2) is the first downsampling; stage k
        (0..num_stages-1) works at stride ``2^(k+1)`` with ``width · 2^k`` channels (capped at
        ``max_width``); stages k ≥ 1 start with a stride-2 BasicBlock.
    depth: residual BasicBlocks per stage.
    num_stages: stride-2 downsamplings (stem included); the input size must be divisible by
        ``2^num_stages``.
    depth_bins: D, bins of the root-relative depth in [-1, 1].
    heatmap_stride: heatmap stride relative to the input (a power of two ≤ ``2^num_stages``).
    head_width: channels of the deconvolution head.
    head_skip: add a 1x1 lateral projection of the backbone feature at each head resolution.
    groups: GroupNorm groups (reduced to a divisor of the channel count where needed).
    template_sigma: σ of the template logit prior in normalised units (None disables it).
    template_height: head-top-to-ankle height of the template figure in normalised units.
    head_init_std: std of the last 1x1 conv's weights at init (small, so the prior dominates).
    joint_set: name of the joint set (``skeleton.get_joint_set``); gives ``num_joints``.
    """

    input: str = "mask"
    width: int = 32
    depth: int = 1
    num_stages: int = 3
    depth_bins: int = 16
    heatmap_stride: int = 4
    head_width: int = 64
    head_skip: bool = True
    max_width: int = 256
    groups: int = 8
    template_sigma: Optional[float] = 0.3
    template_height: float = 1.5
    head_init_std: float = 0.01
    joint_set: str = "h36m18"

    def __post_init__(self) -> None:
        if self.input not in INPUT_MODES:
            raise ValueError(f"DetectorConfig.input must be one of {sorted(INPUT_MODES)}, got {self.input!r}")
        for name in ("width", "depth", "num_stages", "head_width", "groups", "max_width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DetectorConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.depth_bins < 2:
            raise ValueError(f"DetectorConfig.depth_bins must be >= 2, got {self.depth_bins}")
        s = self.heatmap_stride
        if s < 1 or (s & (s - 1)) != 0 or s > 2 ** self.num_stages:
            raise ValueError(
                f"DetectorConfig.heatmap_stride must be a power of two <= 2^num_stages = {2 ** self.num_stages}, got {s}")
        if self.template_sigma is not None and not self.template_sigma > 0:
            raise ValueError(f"DetectorConfig.template_sigma must be > 0 or None, got {self.template_sigma}")

    @property
    def in_channels(self) -> int:
        return INPUT_MODES[self.input]

    @property
    def num_joints(self) -> int:
        return get_joint_set(self.joint_set).num_joints


def make_input(mode: str, rgb: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Build the detector input for ``mode`` from ``rgb [B,3,S,S]`` (0..1) and ``mask [B,1,S,S]`` (0..1)."""
    if mode not in INPUT_MODES:
        raise ValueError(f"unknown detector input mode {mode!r}; known: {sorted(INPUT_MODES)}")
    if mode != "mask" and rgb is None:
        raise ValueError(f"detector input mode {mode!r} needs the RGB image")
    if mode != "rgb" and mask is None:
        raise ValueError(f"detector input mode {mode!r} needs the mask")
    if mode == "rgb":
        return rgb
    if mode == "mask":
        return mask
    if mode == "rgb_mask":
        return rgb * mask
    return torch.cat([rgb, mask], dim=1)


# ----------------------------------------------------------------------------- coordinates
def cell_centres(num_cells: int, size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised input coordinates ``[num_cells]`` of the centres of heatmap cells.

    A heatmap of ``num_cells`` cells spans an input of ``size`` pixels at stride ``s = size / num_cells``;
    cell ``i`` is the block of input pixels ``s·i … s·i + s − 1`` with centre ``s·i + (s − 1)/2``, which
    maps to ``2 (s·i + (s − 1)/2) / (size − 1) − 1``. With ``num_cells == size`` this is ``2 i/(S−1) − 1``.
    """
    s = size / num_cells
    i = torch.arange(num_cells, device=device, dtype=dtype)
    return (2.0 * s * i + (s - 1.0)) / (size - 1.0) - 1.0


def depth_bin_centres(num_bins: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Depth of the ``num_bins`` bins, uniform in [-1, 1] with both ends included: ``2 d/(D−1) − 1``."""
    d = torch.arange(num_bins, device=device, dtype=dtype)
    return 2.0 * d / (num_bins - 1.0) - 1.0


def integral_regression(logits: torch.Tensor, image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Soft-argmax of 3D heatmap logits ``[B, J, D, H', W']`` over an input of ``image_size = (S_h, S_w)``.

    Returns ``joints2d [B,J,2]`` (x = column, y = row, normalised input coordinates, see
    :func:`cell_centres`), ``depth [B,J]`` (z in [-1, 1], :func:`depth_bin_centres`),
    ``heatmaps_2d [B,J,H',W']`` (probabilities, marginal over depth), ``depth_marginal [B,J,D]`` and
    ``confidence [B,J]`` = 1 − H(p_2d) / log(H'·W'), the normalised entropy of the 2D marginal
    subtracted from 1: 0 for a uniform heatmap, 1 for a single cell.
    """
    b, j, d, h, w = logits.shape
    prob = torch.softmax(logits.reshape(b, j, d * h * w), dim=-1).reshape(b, j, d, h, w)
    p2d = prob.sum(dim=2)                     # [B,J,H,W]
    px = p2d.sum(dim=2)                       # [B,J,W]
    py = p2d.sum(dim=3)                       # [B,J,H]
    pz = prob.sum(dim=(3, 4))                 # [B,J,D]
    cx = cell_centres(w, image_size[1], logits.device, logits.dtype)
    cy = cell_centres(h, image_size[0], logits.device, logits.dtype)
    cz = depth_bin_centres(d, logits.device, logits.dtype)
    x = (px * cx).sum(-1)
    y = (py * cy).sum(-1)
    z = (pz * cz).sum(-1)
    entropy = -(p2d * torch.log(p2d.clamp_min(1e-30))).sum(dim=(2, 3))
    log_cells = torch.log((torch.ones_like(entropy) * (h * w)).clamp_min(2.0))  # traceable log(H'·W')
    confidence = 1.0 - entropy / log_cells
    return {
        "joints2d": torch.stack([x, y], dim=-1),
        "depth": z,
        "heatmaps_2d": p2d,
        "depth_marginal": pz,
        "confidence": confidence,
    }


def girth_from_logit(logit: torch.Tensor) -> torch.Tensor:
    """Girth scale ``exp(0.3 · tanh(logit))``, bounded to ``[exp(−0.3), exp(0.3)]``."""
    return torch.exp(GIRTH_LOG_BOUND * torch.tanh(logit))


# ----------------------------------------------------------------------------- template
def _bone_kind(name: str) -> str:
    return name.split("-", 1)[1] if name[:2] in ("L-", "R-") else name


def template_joints2d(joint_set: JointSet, height: float = 1.5,
                      arm_abduction_deg: float = TEMPLATE_ARM_ABDUCTION_DEG) -> torch.Tensor:
    """A standing, front-facing figure ``[J, 2]`` in normalised crop coordinates (x right, y down).

    Bone lengths are the joint set's anthropometric template proportions
    (``JointSet.template_lengths``, fractions of stature). Left joints are at +x, the head at the
    top (−y), the ankles at the bottom; arms hang with ``arm_abduction_deg`` of abduction. The
    figure is centred horizontally on the pelvis and vertically on the midpoint of its extent,
    scaled to ``height`` (head top to ankles). Bones are laid out by *kind* (``thigh``, ``shin`` ↓;
    ``spine``, ``chest``, ``neck``, ``face``, ``skull`` ↑; ``pelvis-hip``, ``shoulder`` sideways;
    ``upper-arm``, ``forearm`` ↓ and slightly out); unknown kinds follow their group (legs and arms
    down, the rest up). The sign of a sideways offset comes from the ``L-``/``R-`` name prefix.
    """
    n = joint_set.num_joints
    pos: list[Optional[tuple[float, float]]] = [None] * n
    pos[joint_set.root] = (0.0, 0.0)
    a = math.radians(arm_abduction_deg)
    bones = list(joint_set.bones)
    for _ in range(len(bones) + 1):
        progressed = False
        for bone in bones:
            if pos[bone.child] is not None or pos[bone.parent] is None:
                continue
            kind = _bone_kind(bone.name)
            side = 1.0 if bone.name.startswith("L-") else (-1.0 if bone.name.startswith("R-") else 0.0)
            length = float(joint_set.template_lengths.get(bone.name, 0.0)) or 0.05
            if kind in ("pelvis-hip", "shoulder"):
                direction = (side, 0.0)
            elif kind in ("upper-arm", "forearm") or bone.group == "arm":
                direction = (side * math.sin(a), math.cos(a))
            elif bone.group == "leg":
                direction = (0.0, 1.0)
            else:
                direction = (0.0, -1.0)
            px, py = pos[bone.parent]
            pos[bone.child] = (px + length * direction[0], py + length * direction[1])
            progressed = True
        if not progressed:
            break
    # joints not reached by a bone (none in the built-in sets) sit at the root
    xy = torch.tensor([p if p is not None else (0.0, 0.0) for p in pos], dtype=torch.float32)
    top, bottom = xy[:, 1].min(), xy[:, 1].max()
    extent = float(bottom - top)
    scale = height / extent if extent > 0 else 1.0
    xy[:, 1] -= 0.5 * (top + bottom)
    xy[:, 0] -= xy[joint_set.root, 0]
    return xy * scale


def _debiased_means(target: torch.Tensor, centres: torch.Tensor, sigma: float, iters: int = 6) -> torch.Tensor:
    """Gaussian means ``m`` whose soft-argmax over the 1D grid ``centres`` equals ``target`` ``[J]``.

    A Gaussian truncated by the heatmap border has its expectation pulled toward the centre (by up to
    ~0.1 normalised units for the feet at σ = 0.3); a fixed number of Newton steps on
    ``f(m) = E_{softmax(−(c − m)²/2σ²)}[c]`` (``f' = Var(c)/σ²``) removes that bias. Fixed iteration
    count, no data-dependent control flow.
    """
    m = target
    for _ in range(iters):
        p = torch.softmax(-((centres[None, :] - m[:, None]) ** 2) / (2.0 * sigma * sigma), dim=-1)
        mean = (p * centres).sum(-1)
        var = (p * centres * centres).sum(-1) - mean * mean
        m = (m + (target - mean) * (sigma * sigma) / var.clamp_min(1e-6)).clamp(-3.0, 3.0)
    return m


def template_logit_prior(mu: torch.Tensor, sigma: float, h: int, w: int, image_size: tuple[int, int],
                         debias: bool = True) -> torch.Tensor:
    """``−|p − μ'_j|² / (2σ²)`` at the heatmap cell centres: ``[J, 1, H', W']`` (broadcast over depth).

    With ``debias`` the means ``μ'`` are shifted (per axis, :func:`_debiased_means`) so that the
    soft-argmax of the prior alone is exactly the template ``μ`` despite the heatmap border.
    """
    cx = cell_centres(w, image_size[1], mu.device, mu.dtype)
    cy = cell_centres(h, image_size[0], mu.device, mu.dtype)
    mx, my = mu[:, 0], mu[:, 1]
    if debias:
        mx = _debiased_means(mx, cx, sigma)
        my = _debiased_means(my, cy, sigma)
    dx2 = (cx[None, :] - mx[:, None]) ** 2            # [J, W]
    dy2 = (cy[None, :] - my[:, None]) ** 2            # [J, H]
    return (-(dy2[:, :, None] + dx2[:, None, :]) / (2.0 * sigma * sigma))[:, None]


# ----------------------------------------------------------------------------- layers
def _gn(channels: int, groups: int) -> nn.GroupNorm:
    g = math.gcd(channels, groups)
    return nn.GroupNorm(g, channels)


class BasicBlock(nn.Module):
    """ResNet BasicBlock (two 3x3 convs) with GroupNorm; a 1x1 conv + GN shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _gn(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _gn(c_out, groups)
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _gn(c_out, groups))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class UpBlock(nn.Module):
    """ConvTranspose2d(k4, s2, p1) (+ 1x1 lateral skip) → GN → ReLU."""

    def __init__(self, c_in: int, c_out: int, c_skip: int, groups: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
        self.lateral = nn.Conv2d(c_skip, c_out, 1, bias=False) if c_skip > 0 else None
        self.norm = _gn(c_out, groups)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        y = self.deconv(x)
        if self.lateral is not None:
            y = y + self.lateral(skip)
        return F.relu(self.norm(y))


# ----------------------------------------------------------------------------- detector
class Detector(nn.Module):
    """Backbone + deconvolution head + integral 3D heatmap read-out; see the module docstring.

    ``forward(images [B, C, S, S]) -> dict`` with

    * ``joints2d [B, J, 2]``: (x, y) normalised input-image coordinates in [-1, 1];
    * ``depth [B, J]``: root-relative depth z in [-1, 1] (normalised units, caller scales to mm);
    * ``heatmaps_2d [B, J, H', W']``: 2D probabilities (marginal over depth), ``H' = S / heatmap_stride``;
    * ``depth_marginal [B, J, D]``: depth probabilities;
    * ``confidence [B, J]``: 1 − normalised entropy of the 2D marginal (0 uniform … 1 one cell);
    * ``girth_logit [B]`` and ``girth [B] = exp(0.3 · tanh(girth_logit))``;
    * ``logits [B, J, D, H', W']``: heatmap logits including the template prior;
    * ``features [B, head_width, H', W']``: the head's last feature map.

    ``S`` must be divisible by ``2^num_stages``; works on CPU and CUDA in float32.
    """

    def __init__(self, config: Optional[DetectorConfig] = None, joint_set: Optional[JointSet] = None) -> None:
        super().__init__()
        cfg = config if config is not None else DetectorConfig()
        self.config = cfg
        self.joint_set = joint_set if joint_set is not None else get_joint_set(cfg.joint_set)
        self.num_joints = self.joint_set.num_joints
        self.depth_bins = cfg.depth_bins
        self.in_channels = cfg.in_channels
        self.template_sigma = cfg.template_sigma
        g = cfg.groups

        # stem: conv3x3 stride 2 (the first downsampling, as ResNet's conv7x7/2 stem), then stage 0 at
        # stride 2; stages 1..num_stages-1 each halve the resolution and double the channels.
        w = cfg.width
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, w, 3, 2, 1, bias=False), _gn(w, g), nn.ReLU(inplace=True))
        chans = [min(w * 2 ** k, cfg.max_width) for k in range(cfg.num_stages)]
        self.stage_channels = chans           # channels at stride 2, 4, ..., 2^num_stages
        stages = []
        for k in range(cfg.num_stages):
            c_in, stride = (w, 1) if k == 0 else (chans[k - 1], 2)
            blocks = [BasicBlock(c_in, chans[k], stride, g)]
            blocks += [BasicBlock(chans[k], chans[k], 1, g) for _ in range(cfg.depth - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)

        # deconvolution head from stride 2^num_stages up to heatmap_stride; up block u outputs
        # stride 2^(num_stages-1-u) and adds a 1x1 projection of the stage feature at that stride.
        n_up = cfg.num_stages - int(round(math.log2(cfg.heatmap_stride)))
        ups = []
        c = chans[-1]
        for u in range(n_up):
            skip = cfg.num_stages - 2 - u      # index into the stage features (-1: stride 1, none)
            ups.append(UpBlock(c, cfg.head_width, chans[skip] if (cfg.head_skip and skip >= 0) else 0, g))
            c = cfg.head_width
        self.ups = nn.ModuleList(ups)
        self.head_out_channels = c
        self.final = nn.Conv2d(c, self.num_joints * cfg.depth_bins, 1)
        self.girth_fc = nn.Linear(chans[-1], 1)

        mu = template_joints2d(self.joint_set, cfg.template_height)
        self.register_buffer("template_mu", mu, persistent=False)
        self._prior_cache: dict = {}
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.final.weight, std=self.config.head_init_std)
        nn.init.zeros_(self.final.bias)
        nn.init.zeros_(self.girth_fc.weight)
        nn.init.zeros_(self.girth_fc.bias)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        b, c, s_h, s_w = images.shape
        k = 2 ** len(self.stages)
        if not torch.jit.is_tracing() and (c != self.in_channels or s_h % k != 0 or s_w % k != 0):
            raise ValueError(
                f"Detector: expected images [B, {self.in_channels}, S, S] with S divisible by {k} "
                f"(input mode {self.config.input!r}), got {list(images.shape)}")
        x = self.stem(images)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        girth_logit = self.girth_fc(x.mean(dim=(2, 3))).squeeze(-1)
        n = len(feats)
        for u, up in enumerate(self.ups):
            skip = n - 2 - u
            x = up(x, feats[skip] if skip >= 0 else x)
        logits = self.final(x)
        h, w = logits.shape[-2], logits.shape[-1]
        logits = logits.reshape(b, self.num_joints, self.depth_bins, h, w)
        if self.template_sigma is not None:
            logits = logits + self._template_prior(h, w, s_h, s_w, logits)[None]
        out = integral_regression(logits, (s_h, s_w))
        out["logits"] = logits
        out["girth_logit"] = girth_logit
        out["girth"] = girth_from_logit(girth_logit)
        out["features"] = x
        return out

    def _template_prior(self, h: int, w: int, s_h: int, s_w: int, like: torch.Tensor) -> torch.Tensor:
        """The template logit prior ``[J, 1, H', W']``, a constant; cached per size/device/dtype in eager
        mode (recomputed — a few small ops — while tracing or scripting)."""
        tracing = torch.jit.is_tracing() or torch.jit.is_scripting()
        key = (h, w, s_h, s_w, like.device, like.dtype)
        if not tracing and key in self._prior_cache:
            return self._prior_cache[key]
        with torch.no_grad():
            prior = template_logit_prior(self.template_mu.to(like.dtype), float(self.template_sigma), h, w, (s_h, s_w))
        if not tracing:
            self._prior_cache[key] = prior
        return prior

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
