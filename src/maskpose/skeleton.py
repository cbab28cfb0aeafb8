"""Joint sets, bones, flip pairs and renderable body segments.

A :class:`JointSet` is plain data: joint names, kinematic bones (child -> parent) that carry a
name and a group (``torso``, ``leg``, ``arm``, ``head``), left/right flip pairs, optional fill
links, and the *segments* that the renderer draws.

Segments are defined by their two end points as fixed linear combinations of joints, so that
derived points (a hand tip beyond the wrist, a head-sphere centre, a chest capsule that ends
before the thorax) are expressed without code: ``a = W_a @ joints``, ``b = W_b @ joints``. A
segment whose two end points coincide is a sphere (a blob). Everything a loss or a cascade stage
selects is selected by *name or group*, never by list position.

The default joint set is H36M-18 (the 17 Human3.6M joints plus a thorax = shoulder midpoint)::

    0 pelvis, 1 RHip, 2 RKnee, 3 RAnkle, 4 LHip, 5 LKnee, 6 LAnkle, 7 spine, 8 neck, 9 nose,
    10 head, 11 LShoulder, 12 LElbow, 13 LWrist, 14 RShoulder, 15 RElbow, 16 RWrist, 17 thorax

H36M-17 (no thorax) is built from the same description with :func:`make_h36m17`; nothing else in
the package needs to change for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

GROUPS = ("torso", "leg", "arm", "head", "extremity")


@dataclass(frozen=True)
class Bone:
    """A kinematic bone ``child -> parent`` (joint indices)."""

    name: str
    child: int
    parent: int
    group: str
    width: float = 1.0  # multiplier on the profile width (paper: arms are thinner, 1/sqrt(2))


@dataclass(frozen=True)
class Segment:
    """A renderable segment whose end points are linear combinations of joints.

    ``a`` and ``b`` map joint index -> weight (weights of a point sum to 1, so the point moves
    rigidly with the joints). ``radius_mm`` is the typical adult radius of the capsule profile.
    """

    name: str
    a: Mapping[int, float]
    b: Mapping[int, float]
    group: str
    radius_mm: float
    width: float = 1.0  # Gaussian-profile width multiplier


@dataclass(frozen=True)
class JointSet:
    name: str
    joints: tuple[str, ...]
    bones: tuple[Bone, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    fill_links: tuple[Bone, ...] = ()
    body_segments: tuple[Segment, ...] = ()
    root: int = 0
    # published-anthropometry template bone lengths in mm (see ``h36m_template_lengths``)
    template_lengths: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.joints)
        if len(set(self.joints)) != n:
            raise ValueError(f"joint set {self.name!r}: duplicate joint names")
        for bone in self.bones + self.fill_links:
            if not (0 <= bone.child < n and 0 <= bone.parent < n):
                raise ValueError(f"joint set {self.name!r}: bone {bone.name!r} indexes outside 0..{n - 1}")
            if bone.group not in GROUPS:
                raise ValueError(f"joint set {self.name!r}: bone {bone.name!r} has unknown group {bone.group!r}")
        for seg in self.body_segments:
            for pt in (seg.a, seg.b):
                if any(not (0 <= j < n) for j in pt):
                    raise ValueError(f"joint set {self.name!r}: segment {seg.name!r} indexes outside 0..{n - 1}")
                if abs(sum(pt.values()) - 1.0) > 1e-6:
                    raise ValueError(f"joint set {self.name!r}: segment {seg.name!r} weights must sum to 1")

    # ------------------------------------------------------------------ look-ups
    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, name: str) -> int:
        """Index of a joint by name; a clear ``KeyError`` names the joint set and the choices."""
        try:
            return self.joints.index(name)
        except ValueError:
            raise KeyError(
                f"unknown joint name {name!r} for joint set {self.name!r}; known: {', '.join(self.joints)}"
            ) from None

    def indices(self, names: Iterable[str]) -> list[int]:
        return [self.index(n) for n in names]

    def bone(self, name: str) -> Bone:
        for b in self.bones + self.fill_links:
            if b.name == name:
                return b
        raise KeyError(f"unknown bone {name!r} for joint set {self.name!r}")

    def select_bones(self, groups: Iterable[str] | None = None, fill: bool = False) -> tuple[Bone, ...]:
        """Bones (plus fill links when ``fill``) whose group is in ``groups`` (all when None)."""
        groups = None if groups is None else set(groups)
        if groups is not None:
            unknown = groups - set(GROUPS)
            if unknown:
                raise KeyError(f"unknown bone group(s) {sorted(unknown)}; known: {GROUPS}")
        pool = self.bones + (self.fill_links if fill else ())
        return tuple(b for b in pool if groups is None or b.group in groups)

    def select_segments(self, groups: Iterable[str] | None = None) -> tuple[Segment, ...]:
        groups = None if groups is None else set(groups)
        return tuple(s for s in self.body_segments if groups is None or s.group in groups)

    # ------------------------------------------------------------------ arrays
    def bone_index_arrays(self, bones: Sequence[Bone] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(child[E], parent[E])`` long tensors for ``bones`` (default: all kinematic bones)."""
        bones = self.bones if bones is None else bones
        return (torch.tensor([b.child for b in bones], dtype=torch.long),
                torch.tensor([b.parent for b in bones], dtype=torch.long))

    def flip_permutation(self) -> list[int]:
        """Permutation ``perm`` such that ``joints[..., perm, :]`` swaps left and right labels."""
        perm = list(range(self.num_joints))
        for i, j in self.flip_pairs:
            perm[i], perm[j] = j, i
        return perm

    def flip(self, joints):
        """Swap left/right labels of ``joints[..., J, D]`` (numpy or torch)."""
        perm = self.flip_permutation()
        return joints[..., perm, :]

    def segment_matrices(self, segments: Sequence[Segment] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Endpoint weight matrices ``(W_a[E, J], W_b[E, J])``: ``a = W_a @ joints``."""
        segments = self.body_segments if segments is None else segments
        wa = torch.zeros(len(segments), self.num_joints, dtype=torch.float64)
        wb = torch.zeros_like(wa)
        for e, s in enumerate(segments):
            for j, w in s.a.items():
                wa[e, j] = w
            for j, w in s.b.items():
                wb[e, j] = w
        return wa, wb

    def bone_lengths(self, joints: torch.Tensor, bones: Sequence[Bone] | None = None) -> torch.Tensor:
        """Lengths ``[..., E]`` of ``bones`` for ``joints[..., J, D]``."""
        c, p = self.bone_index_arrays(bones)
        c, p = c.to(joints.device), p.to(joints.device)
        return (joints[..., c, :] - joints[..., p, :]).norm(dim=-1)

    def check_joints(self, joints, name: str = "joints") -> None:
        """Raise a clear ``ValueError`` unless ``joints`` has shape ``[..., J, 2|3]`` for this set."""
        shape = tuple(joints.shape)
        if len(shape) < 2 or shape[-2] != self.num_joints or shape[-1] not in (2, 3):
            raise ValueError(
                f"{name}: expected shape [..., {self.num_joints}, 2 or 3] for joint set {self.name!r}, got {list(shape)}"
            )


def segment_endpoints(joints: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """End points of segments: ``joints[..., J, D]``, ``W[E, J]`` -> ``(a[..., E, D], b[..., E, D])``."""
    wa = wa.to(device=joints.device, dtype=joints.dtype)
    wb = wb.to(device=joints.device, dtype=joints.dtype)
    return torch.einsum("ej,...jd->...ed", wa, joints), torch.einsum("ej,...jd->...ed", wb, joints)


# ---------------------------------------------------------------------- H36M

H36M18_JOINTS = (
    "pelvis", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "spine", "neck", "nose",
    "head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist", "thorax",
)

# Typical adult capsule radii (mm), from the pilots (research/pilot2.md) — not fitted to any data.
_RADII = {
    "pelvis-hip": 100.0, "thigh": 75.0, "shin": 48.0, "spine": 140.0, "chest": 150.0,
    "neck": 50.0, "face": 50.0, "skull": 50.0, "shoulder": 60.0, "upper-arm": 43.0, "forearm": 34.0,
    "hand": 35.0, "head-sphere": 95.0, "ankle": 55.0, "fill": 70.0,
}

# Anthropometric segment lengths as fractions of stature H (research/reference-facts.md §15).
# Legs, trunk, head and widths: Drillis & Contini (1966) via Winter, "Biomechanics and Motor Control of
# Human Movement", Fig. 4.1. Arms: de Leva (1996), "Adjustments to Zatsiorsky-Seluyanov's segment
# inertia parameters", J. Biomech. 29(9), Table 1, whose arm lengths run between joint centres
# (shoulder JC -> elbow JC -> wrist JC; male 281.7 / 268.9 mm of 1741 mm stature, female 275.1 / 264.3
# of 1735, averaged) — Drillis & Contini's upper arm (0.186 H) starts at the acromion, the bony tip
# of the shoulder above the joint centre, and made every fit and every trained model's upper arm
# ~13 % longer than the bodies' (docs/results/training-notes.md, "Session 5").
# Mapping of H36M bones to published segments (H36M joint centres are not anatomical landmarks,
# expect a few per cent of bias per bone):
#   thigh = 0.245 H, shank = 0.246 H (trochanter / knee / ankle heights: close to joint centres),
#   upper arm = 0.160 H, forearm = 0.153 H (de Leva, joint centres);
#   trunk = shoulder height 0.818 H - hip height 0.530 H = 0.288 H, split equally pelvis-spine /
#   spine-thorax; hip joint half-width = 0.75 x (hip width 0.191 H / 2) and thorax-shoulder =
#   0.75 x (shoulder width 0.259 H / 2) (joint centres lie inside the bony landmarks; rough);
#   head + neck (chin to crown) 0.130 H split as thorax-neck 0.06 H, neck-nose 0.065 H,
#   nose-head 0.07 H (rough fractions).
_DE_LEVA_UPPER_ARM = 0.5 * (281.7 / 1741.0 + 275.1 / 1735.0)  # 0.1602
_DE_LEVA_FOREARM = 0.5 * (268.9 / 1741.0 + 264.3 / 1735.0)    # 0.1534
ANTHRO_FRACTIONS = {
    "pelvis-hip": 0.75 * 0.191 / 2, "thigh": 0.245, "shin": 0.246,
    "spine": 0.288 / 2, "chest": 0.288 / 2, "neck": 0.06, "face": 0.065, "skull": 0.07,
    "shoulder": 0.75 * 0.259 / 2, "upper-arm": _DE_LEVA_UPPER_ARM, "forearm": _DE_LEVA_FOREARM,
}


def _kind(bone_name: str) -> str:
    """'L-thigh' -> 'thigh'."""
    return bone_name.split("-", 1)[1] if bone_name[:2] in ("L-", "R-") else bone_name


def _h36m_bones(j: dict[str, int], thorax: bool) -> tuple[Bone, ...]:
    arm_w = 1.0 / np.sqrt(2.0)  # authors' code: arms use exp(-2 d^2 / w), i.e. sigma^2 halved
    top = "thorax" if thorax else "neck"
    bones = [
        Bone("R-pelvis-hip", j["RHip"], j["pelvis"], "leg"),
        Bone("R-thigh", j["RKnee"], j["RHip"], "leg"),
        Bone("R-shin", j["RAnkle"], j["RKnee"], "leg"),
        Bone("L-pelvis-hip", j["LHip"], j["pelvis"], "leg"),
        Bone("L-thigh", j["LKnee"], j["LHip"], "leg"),
        Bone("L-shin", j["LAnkle"], j["LKnee"], "leg"),
        Bone("spine", j["spine"], j["pelvis"], "torso"),
    ]
    if thorax:
        bones.append(Bone("neck", j["neck"], j["thorax"], "head"))
    bones += [
        Bone("face", j["nose"], j["neck"], "head"),
        Bone("skull", j["head"], j["nose"], "head"),
        Bone("L-shoulder", j["LShoulder"], j[top], "torso"),
        Bone("L-upper-arm", j["LElbow"], j["LShoulder"], "arm", arm_w),
        Bone("L-forearm", j["LWrist"], j["LElbow"], "arm", arm_w),
        Bone("R-shoulder", j["RShoulder"], j[top], "torso"),
        Bone("R-upper-arm", j["RElbow"], j["RShoulder"], "arm", arm_w),
        Bone("R-forearm", j["RWrist"], j["RElbow"], "arm", arm_w),
        Bone("chest", j[top], j["spine"], "torso"),
    ]
    return tuple(bones)


def _h36m_fill(j: dict[str, int]) -> tuple[Bone, ...]:
    """The authors' 8 extension links that fill the torso and hip area (reference-facts §1)."""
    return (
        Bone("fill-RHip-spine", j["RHip"], j["spine"], "torso"),
        Bone("fill-LHip-spine", j["LHip"], j["spine"], "torso"),
        Bone("fill-LShoulder-spine", j["LShoulder"], j["spine"], "torso"),
        Bone("fill-RShoulder-spine", j["RShoulder"], j["spine"], "torso"),
        Bone("fill-RKnee-pelvis", j["RKnee"], j["pelvis"], "leg"),
        Bone("fill-LKnee-pelvis", j["LKnee"], j["pelvis"], "leg"),
        Bone("fill-RShoulder-RHip", j["RShoulder"], j["RHip"], "torso"),
        Bone("fill-LShoulder-LHip", j["LShoulder"], j["LHip"], "torso"),
    )


def _h36m_body(j: dict[str, int], bones: tuple[Bone, ...], fill: tuple[Bone, ...], thorax: bool) -> tuple[Segment, ...]:
    """Capsule body of DESIGN.md §4: bones (chest capsule ending before the thorax), fill links,
    hand segments, a head sphere and ankle blobs — 30 segments for H36M-18."""
    segs: list[Segment] = []
    top = "thorax" if thorax else "neck"
    for b in bones:
        kind = _kind(b.name)
        if b.name == "chest":
            # chest capsule from the spine to spine + 0.4 (thorax - spine), r = 150: its round cap then
            # ends at the thorax instead of overshooting it by r (pilot 2, "torso cap fix").
            segs.append(Segment("chest", {j["spine"]: 1.0}, {j["spine"]: 0.6, j[top]: 0.4}, "torso", _RADII["chest"]))
            continue
        segs.append(Segment(b.name, {b.child: 1.0}, {b.parent: 1.0}, b.group, _RADII[kind], b.width))
    for f in fill:
        segs.append(Segment(f.name, {f.child: 1.0}, {f.parent: 1.0}, f.group, _RADII["fill"]))
    for side in "LR":
        w, e = j[f"{side}Wrist"], j[f"{side}Elbow"]
        # hand: wrist -> wrist + 0.3 (wrist - elbow)
        segs.append(Segment(f"{side}-hand", {w: 1.0}, {w: 1.3, e: -0.3}, "arm", _RADII["hand"]))
    centre = {j["neck"]: 0.45, j["head"]: 0.55}  # neck + 0.55 (head - neck)
    segs.append(Segment("head-sphere", centre, centre, "head", _RADII["head-sphere"]))
    for side in "RL":
        a = {j[f"{side}Ankle"]: 1.0}
        segs.append(Segment(f"{side}-ankle", a, a, "leg", _RADII["ankle"]))
    return tuple(segs)


def _make_h36m(thorax: bool) -> JointSet:
    names = H36M18_JOINTS if thorax else H36M18_JOINTS[:17]
    j = {n: i for i, n in enumerate(names)}
    bones = _h36m_bones(j, thorax)
    fill = _h36m_fill(j)
    flip = ((j["RHip"], j["LHip"]), (j["RKnee"], j["LKnee"]), (j["RAnkle"], j["LAnkle"]),
            (j["RShoulder"], j["LShoulder"]), (j["RElbow"], j["LElbow"]), (j["RWrist"], j["LWrist"]))
    return JointSet(
        name="h36m18" if thorax else "h36m17",
        joints=names, bones=bones, flip_pairs=flip, fill_links=fill,
        body_segments=_h36m_body(j, bones, fill, thorax), root=j["pelvis"],
        template_lengths={b.name: ANTHRO_FRACTIONS.get(_kind(b.name), 0.0) for b in bones},
    )


def make_h36m18() -> JointSet:
    return _make_h36m(thorax=True)


def make_h36m17() -> JointSet:
    """H36M-17: no thorax; neck, shoulders and chest attach to the neck joint."""
    return _make_h36m(thorax=False)


H36M18 = make_h36m18()
H36M17 = make_h36m17()
DEFAULT = H36M18

JOINT_SETS = {"h36m18": H36M18, "h36m17": H36M17}


def get_joint_set(name: str) -> JointSet:
    try:
        return JOINT_SETS[name]
    except KeyError:
        raise KeyError(f"unknown joint set {name!r}; known: {', '.join(JOINT_SETS)}") from None


def template_bone_lengths(joint_set: JointSet, stature_mm: float = 1750.0) -> torch.Tensor:
    """Canonical template length ``[E]`` (mm) of each kinematic bone of ``joint_set``."""
    return torch.tensor([joint_set.template_lengths[b.name] * stature_mm for b in joint_set.bones],
                        dtype=torch.float32)
