"""Synthetic multi-view scenes: posed volumetric bodies seen by a ring of calibrated cameras.

Each sample is one person at one instant seen by ``V`` cameras; it carries the H36M-18 ground
truth (world mm, z up, floor z = 0), the cameras, and per view a square crop (RGB, exact mask,
geodesic weights). Generation is deterministic per sample: sample ``i`` draws from its own
random stream seeded by ``(seed, split, i)`` (:func:`sample_rng`), so datasets can be generated
in parallel and splits never share a stream.

Pose (forward kinematics with joint limits, degrees):
  * hip flexion -25..110, abduction -15..50, rotation +-30; knee 0..140; foot yaw +-15;
  * trunk twist +-35, bend -15..55, side bend +-20 (split between pelvis->spine and spine->thorax);
  * neck yaw +-60, pitch -30..40, roll +-15;
  * arm: elevation -50..170 (0 = hanging, 90 = horizontal, negative = swung back), plane of
    elevation -40..130 (0 = forward, 90 = sideways, negative = across the body), humeral rotation
    -40..80, elbow 0..145.
  Activities (uniform): ``walk``, ``arms_raised``, ``crouch``, ``twist``, ``random`` (legs, trunk
  and neck uniform within the limits times an activity factor U(0.3, 0.8)). The arms of every
  activity are partly drawn from a mixture of modes (hanging, forward, sideways, raised, akimbo,
  across the chest, uniform), so that arm poses vary a lot everywhere; an arm whose elbow, wrist
  or hand ends inside the torso is re-drawn. Global yaw is uniform, pelvis tilt +-8 deg about both
  horizontal axes, floor position +-0.4 m; the lowest point of the body rests on the floor.

Bone lengths: H36M-like means (hip 130, thigh 445, shin 440, pelvis-spine 235, spine-thorax 250,
thorax-neck 110, neck-nose 115, nose-head 115, thorax-shoulder 160, upper arm 285, forearm 255 mm)
x a global scale U(0.9, 1.1) x an independent per-bone factor U(0.92, 1.08) (left and right share
it), so proportions vary by about +-8 % independently of any template.

Body (deliberately *not* the loss's capsule model): ellipsoids for the hip block, abdomen, chest
(oriented with the pelvis / lower-trunk / chest frames) and head (head frame); two-part tapered
capsules for thighs and shins; capsules for the neck, shoulder bars, upper arms, forearms, hands
and forward-pointing feet. Girth: global U(0.85, 1.2) x per part U(0.9, 1.1). Every joint lies
inside the body volume, so GT joints project inside the silhouette.

Cameras: on a ring around the world origin, random base azimuth, ``360/V`` apart +-10 deg, 4-5 m
away, 1.3-1.8 m high, looking at the person's floor position at 1 m height (+-0.1 m); pinhole
f ~ 1150 px on a 1000 x 1000 sensor, zero distortion.

Crops: the square around each view's exact silhouette box (the box of the union of the
primitives, computed analytically from their projected dual quadrics) grown by 1.15, resized to
S x S; ``A`` maps image px -> crop px (:func:`maskpose.geometry.crop_affine`). Masks are exact
analytic ray casts (rays through crop sub-pixel centres back-projected with ``(A K)^-1``; ray-capsule
and ray-ellipsoid) with 2x2 supersampling thresholded at 0.5. RGB: Lambert + head-light + depth
shading of random shirt / trouser / shoe / skin / hair colours over a random flat or gradient
background, anti-aliased by the same supersampling; the head is skin at the front and hair at the
back (a facing cue).
"""
from __future__ import annotations

import math
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..geometry import Camera, crop_affine, look_at
from ..skeleton import H36M18
from ..weighting import geodesic_weights

ACTIVITIES = ("walk", "arms_raised", "crouch", "twist", "random")

#: H36M-like mean bone lengths (mm), keyed by bone kind (``skeleton`` bone names without L-/R-)
BONE_MEANS_MM = {
    "pelvis-hip": 130.0, "thigh": 445.0, "shin": 440.0, "spine": 235.0, "chest": 250.0, "neck": 110.0,
    "face": 115.0, "skull": 115.0, "shoulder": 160.0, "upper-arm": 285.0, "forearm": 255.0,
}

#: joint limits (degrees)
LIMITS = {
    "hip_flex": (-25.0, 110.0), "hip_abd": (-15.0, 50.0), "hip_rot": (-30.0, 30.0), "knee": (0.0, 140.0),
    "foot_yaw": (-15.0, 15.0),
    "twist": (-35.0, 35.0), "bend": (-15.0, 55.0), "side": (-20.0, 20.0),
    "neck_yaw": (-60.0, 60.0), "neck_pitch": (-30.0, 40.0), "neck_roll": (-15.0, 15.0),
    "arm_elev": (-50.0, 170.0), "arm_plane": (-40.0, 130.0), "arm_rot": (-40.0, 80.0), "elbow": (0.0, 145.0),
}

#: body parts with a girth factor
PARTS = ("hip", "abdomen", "chest", "neck", "shoulder", "upper-arm", "forearm", "hand", "thigh", "shin", "foot", "head")

FOCAL_PX = 1150.0
SENSOR_PX = 1000
CROP_MARGIN = 1.15

_J = {n: i for i, n in enumerate(H36M18.joints)}


# ============================================================================ seeds
def split_code(split: str) -> int:
    """Stable integer code of a split name (``train``, ``test``, ...) for the seed stream."""
    return zlib.crc32(str(split).encode()) & 0xFFFFFFFF


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of sample ``index`` of ``split`` under ``seed`` (independent of any other)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32,
                                                         split_code(split), int(index)]))


# ============================================================================ rotations
def _rx(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _ry(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _rz(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# ============================================================================ pose sampling
def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


ARM_MODES = ("hanging", "forward", "sideways", "raised", "akimbo", "across", "uniform")
_ARM_MODE_P = np.array([0.22, 0.15, 0.15, 0.15, 0.06, 0.07, 0.20])


def _sample_arm(rng: np.random.Generator, mode: str | None = None) -> dict[str, float]:
    """Arm angles (deg) of one arm in ``mode`` (None: drawn from the mode mixture)."""
    if mode is None:
        mode = ARM_MODES[int(rng.choice(len(ARM_MODES), p=_ARM_MODE_P))]
    lo, hi = LIMITS["arm_rot"]
    if mode == "hanging":
        a = dict(elev=_u(rng, 0, 30), plane=_u(rng, -20, 100), rot=_u(rng, -30, 60), elbow=_u(rng, 0, 70))
    elif mode == "forward":
        a = dict(elev=_u(rng, 50, 115), plane=_u(rng, -30, 40), rot=_u(rng, -30, 60), elbow=_u(rng, 0, 110))
    elif mode == "sideways":
        a = dict(elev=_u(rng, 55, 120), plane=_u(rng, 65, 115), rot=_u(rng, -30, 50), elbow=_u(rng, 0, 80))
    elif mode == "raised":
        a = dict(elev=_u(rng, 115, 170), plane=_u(rng, -15, 110), rot=_u(rng, -30, 60), elbow=_u(rng, 0, 90))
    elif mode == "akimbo":
        a = dict(elev=_u(rng, 20, 50), plane=_u(rng, 70, 105), rot=_u(rng, 50, 80), elbow=_u(rng, 85, 130))
    elif mode == "across":
        a = dict(elev=_u(rng, 40, 95), plane=_u(rng, -40, 5), rot=_u(rng, -10, 60), elbow=_u(rng, 60, 140))
    elif mode == "uniform":
        a = dict(elev=_u(rng, *LIMITS["arm_elev"]), plane=_u(rng, *LIMITS["arm_plane"]), rot=_u(rng, lo, hi),
                 elbow=_u(rng, *LIMITS["elbow"]))
    else:  # pragma: no cover
        raise ValueError(f"unknown arm mode {mode!r}")
    if a["elev"] < 0:  # swung back: the plane only tilts the arm slightly outwards
        a["plane"] = float(np.clip(a["plane"], -25, 20))
    a["mode"] = mode  # type: ignore[assignment]
    return a


def _standing_leg(rng: np.random.Generator) -> dict[str, float]:
    return dict(flex=_u(rng, -8, 15), abd=_u(rng, 0, 15), rot=_u(rng, -10, 20), knee=_u(rng, 0, 20),
                foot_yaw=_u(rng, -15, 15))


def _sample_pose(rng: np.random.Generator, activity: str) -> dict[str, Any]:
    """Angles (deg) of a pose of ``activity``; arms are sampled separately by :func:`_activity_arm`."""
    p: dict[str, Any] = {}
    if activity == "walk":
        ph, amp, kamp = _u(rng, 0, 2 * np.pi), _u(rng, 12, 32), _u(rng, 25, 60)
        s, c = math.sin(ph), math.cos(ph)
        p["legL"] = dict(flex=max(amp * s + 3, LIMITS["hip_flex"][0]), abd=_u(rng, 0, 8), rot=_u(rng, -10, 15), knee=_u(rng, 0, 10) + kamp * max(0.0, c),
                         foot_yaw=_u(rng, -12, 12))
        p["legR"] = dict(flex=max(-amp * s + 3, LIMITS["hip_flex"][0]), abd=_u(rng, 0, 8), rot=_u(rng, -10, 15), knee=_u(rng, 0, 10) + kamp * max(0.0, -c),
                         foot_yaw=_u(rng, -12, 12))
        p["trunk"] = dict(twist=-0.3 * amp * s + _u(rng, -5, 5), bend=_u(rng, -3, 12), side=_u(rng, -5, 5))
        p["neck"] = dict(yaw=_u(rng, -30, 30), pitch=_u(rng, -10, 25), roll=_u(rng, -5, 5))
        p["swing"] = (_u(rng, 10, 40) * s, ph)
    elif activity == "arms_raised":
        p["legL"], p["legR"] = _standing_leg(rng), _standing_leg(rng)
        p["trunk"] = dict(twist=_u(rng, -15, 15), bend=_u(rng, -15, 10), side=_u(rng, -10, 10))
        p["neck"] = dict(yaw=_u(rng, -30, 30), pitch=_u(rng, -30, 15), roll=_u(rng, -10, 10))
    elif activity == "crouch":
        h = _u(rng, 45, 110)
        for side in "LR":
            f = float(np.clip(h + _u(rng, -10, 10), *LIMITS["hip_flex"]))
            p["leg" + side] = dict(flex=f, abd=_u(rng, 5, 35), rot=_u(rng, -5, 30),
                                   knee=float(np.clip(f + _u(rng, 10, 40), *LIMITS["knee"])), foot_yaw=_u(rng, -15, 15))
        p["trunk"] = dict(twist=_u(rng, -15, 15), bend=_u(rng, 10, 50), side=_u(rng, -10, 10))
        p["neck"] = dict(yaw=_u(rng, -40, 40), pitch=_u(rng, -30, 15), roll=_u(rng, -10, 10))
    elif activity == "twist":
        for side in "LR":
            p["leg" + side] = dict(flex=_u(rng, -15, 30), abd=_u(rng, 0, 20), rot=_u(rng, -20, 30), knee=_u(rng, 0, 35),
                                   foot_yaw=_u(rng, -15, 15))
        p["trunk"] = dict(twist=float(rng.choice([-1.0, 1.0])) * _u(rng, 15, 35), bend=_u(rng, -10, 35), side=_u(rng, -20, 20))
        p["neck"] = dict(yaw=_u(rng, -60, 60), pitch=_u(rng, -20, 30), roll=_u(rng, -10, 10))
    elif activity == "random":
        f = _u(rng, 0.3, 0.8)
        for side in "LR":
            flex = _u(rng, *LIMITS["hip_flex"]) * f
            p["leg" + side] = dict(flex=flex, abd=_u(rng, *LIMITS["hip_abd"]) * f, rot=_u(rng, *LIMITS["hip_rot"]) * f,
                                   knee=_u(rng, *LIMITS["knee"]) * f, foot_yaw=_u(rng, *LIMITS["foot_yaw"]))
        p["trunk"] = dict(twist=_u(rng, *LIMITS["twist"]) * f, bend=_u(rng, *LIMITS["bend"]) * f, side=_u(rng, *LIMITS["side"]) * f)
        p["neck"] = dict(yaw=_u(rng, *LIMITS["neck_yaw"]) * f, pitch=_u(rng, *LIMITS["neck_pitch"]) * f,
                         roll=_u(rng, *LIMITS["neck_roll"]) * f)
        p["factor"] = f
    else:
        raise ValueError(f"unknown activity {activity!r}; known: {', '.join(ACTIVITIES)}")
    return p


def _activity_arm(rng: np.random.Generator, activity: str, pose: dict, side: str) -> dict[str, float]:
    """One arm for ``activity``: the activity's typical arm, or (often) any mode of the mixture."""
    if activity == "walk" and rng.random() < 0.65:
        swing, _ = pose["swing"]
        elev = -swing if side == "L" else swing  # arms swing opposite to the legs
        a = dict(elev=elev, plane=(1.0 if elev >= 0 else -1.0) * _u(rng, 5, 20), rot=_u(rng, 0, 40),
                 elbow=_u(rng, 5, 50), mode="walk")
        return a
    if activity == "arms_raised" and rng.random() < 0.85:
        return _sample_arm(rng, "raised")
    if activity == "crouch" and rng.random() < 0.5:
        return _sample_arm(rng, "forward")
    return _sample_arm(rng, None)


# ============================================================================ body
@dataclass
class Body:
    """A posed volumetric body: H36M-18 joints and the ray-cast primitives (world mm)."""

    joints: np.ndarray                      # [18, 3]
    cap_a: np.ndarray                       # [C, 3] capsule end points
    cap_b: np.ndarray                       # [C, 3]
    cap_r: np.ndarray                       # [C]
    cap_part: list[str]
    ell_c: np.ndarray                       # [E, 3] ellipsoid centres
    ell_R: np.ndarray                       # [E, 3, 3] columns = axes (forward, left, up)
    ell_s: np.ndarray                       # [E, 3] semi-axes
    ell_part: list[str]
    activity: str = ""
    scale: float = 1.0
    girth: float = 1.0
    lengths: dict[str, float] = field(default_factory=dict)
    head_frame: np.ndarray = field(default_factory=lambda: np.eye(3))
    arm_modes: tuple[str, str] = ("", "")

    def translate(self, d: np.ndarray) -> None:
        self.joints = self.joints + d
        self.cap_a = self.cap_a + d
        self.cap_b = self.cap_b + d
        self.ell_c = self.ell_c + d

    @property
    def num_primitives(self) -> int:
        return len(self.cap_r) + len(self.ell_s)

    def min_z(self) -> float:
        zc = min(float((self.cap_a[:, 2] - self.cap_r).min()), float((self.cap_b[:, 2] - self.cap_r).min()))
        # extent of an ellipsoid along z: sqrt(sum_k (R[2,k] s_k)^2)
        ext = np.sqrt(((self.ell_R[:, 2, :] * self.ell_s) ** 2).sum(-1))
        return min(zc, float((self.ell_c[:, 2] - ext).min()))

    def inside_torso(self, pts: np.ndarray, parts: tuple[str, ...] = ("hip", "abdomen", "chest")) -> np.ndarray:
        """Boolean ``[P]``: points inside any of the named ellipsoids."""
        inside = np.zeros(len(pts), bool)
        for e, name in enumerate(self.ell_part):
            if name in parts:
                loc = (pts - self.ell_c[e]) @ self.ell_R[e] / self.ell_s[e]
                inside |= (loc ** 2).sum(-1) < 1.0
        return inside


def _build_body(L: dict[str, float], g: dict[str, float], scale: float, head_shape: np.ndarray,
                pose: dict, armL: dict, armR: dict, R_glob: np.ndarray) -> Body:
    """Forward kinematics in the world frame (pelvis at the origin) and the body primitives.

    Local frames: x forward, y left, z up. ``L``: bone lengths by kind; ``g``: girth per part.
    """
    J = np.zeros((18, 3))
    caps: list[tuple[np.ndarray, np.ndarray, float, str]] = []
    ells: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []
    ex, ey, ez = np.eye(3)

    R_pel = R_glob
    pelvis = np.zeros(3)
    J[_J["pelvis"]] = pelvis
    # ---- legs
    foot_axes = {}
    for side, sgn in (("L", 1.0), ("R", -1.0)):
        lp = pose["leg" + side]
        hip = pelvis + R_pel @ (sgn * L["pelvis-hip"] * ey)
        R_th = R_pel @ _ry(-lp["flex"]) @ _rx(sgn * lp["abd"]) @ _rz(-sgn * lp["rot"])
        knee = hip - L["thigh"] * R_th[:, 2]
        R_sh = R_th @ _ry(lp["knee"])
        ankle = knee - L["shin"] * R_sh[:, 2]
        J[_J[side + "Hip"]], J[_J[side + "Knee"]], J[_J[side + "Ankle"]] = hip, knee, ankle
        fwd = R_sh[:, 0].copy()
        fwd[2] = 0.0
        if np.linalg.norm(fwd) < 0.3:  # shank nearly horizontal: fall back to the pelvis' forward axis
            fwd = R_pel[:, 0].copy()
            fwd[2] = 0.0
        fwd = _rz(sgn * lp["foot_yaw"]) @ _unit(fwd)
        foot_axes[side] = fwd
        rt, rk = 78.0 * g["thigh"], 58.0 * g["thigh"]
        caps.append((hip, hip + 0.55 * (knee - hip), rt, "thigh"))
        caps.append((hip + 0.45 * (knee - hip), knee, rk, "thigh-low"))
        rs, ra = 52.0 * g["shin"], 38.0 * g["shin"]
        caps.append((knee, knee + 0.5 * (ankle - knee), rs, "shin"))
        caps.append((knee + 0.4 * (ankle - knee), ankle, ra, "shin-low"))
        fl = scale * g["foot"]
        drop = np.array([0.0, 0.0, 45.0 * fl])
        caps.append((ankle - 50.0 * fl * fwd - drop, ankle + 160.0 * fl * fwd - drop, 40.0 * fl, "foot"))
    # ---- trunk
    tr = pose["trunk"]
    R_low = R_pel @ _rz(0.4 * tr["twist"]) @ _ry(0.5 * tr["bend"]) @ _rx(-0.5 * tr["side"])
    spine = pelvis + L["spine"] * R_low[:, 2]
    R_ch = R_low @ _rz(0.6 * tr["twist"]) @ _ry(0.5 * tr["bend"]) @ _rx(-0.5 * tr["side"])
    thorax = spine + L["chest"] * R_ch[:, 2]
    J[_J["spine"]], J[_J["thorax"]] = spine, thorax
    # hip block (pelvis frame), abdomen (lower-trunk frame), chest (chest frame)
    ells.append((pelvis + R_pel @ np.array([-10.0, 0.0, -20.0]) * scale, R_pel,
                 np.array([105.0 * g["hip"], (0.9 * L["pelvis-hip"] + 60.0) * g["hip"], 110.0 * scale * g["hip"]]), "hip"))
    ells.append((pelvis + 0.5 * (spine - pelvis) + R_low @ np.array([8.0 * g["abdomen"], 0.0, 0.0]), R_low,
                 np.array([98.0 * g["abdomen"], 132.0 * g["abdomen"], 0.62 * L["spine"]]), "abdomen"))
    ells.append((spine + 0.5 * (thorax - spine) + R_ch @ np.array([5.0 * g["chest"], 0.0, 0.0]), R_ch,
                 np.array([108.0 * g["chest"], (0.55 * L["shoulder"] + 55.0) * g["chest"], 0.62 * L["chest"]]), "chest"))
    # ---- neck and head
    nk = pose["neck"]
    neck = thorax + L["neck"] * (R_ch @ _unit(np.array([0.17, 0.0, 1.0])))
    R_hd = R_ch @ _rz(nk["yaw"]) @ _ry(nk["pitch"]) @ _rx(nk["roll"])
    nose = neck + L["face"] * (R_hd @ _unit(np.array([0.42, 0.0, 0.91])))
    head = nose + L["skull"] * (R_hd @ _unit(np.array([-0.30, 0.0, 0.95])))
    J[_J["neck"]], J[_J["nose"]], J[_J["head"]] = neck, nose, head
    # head ellipsoid in the head frame: crown just above the head-top joint, face in front of the nose
    top_l = R_hd.T @ (head - neck)
    nose_l = R_hd.T @ (nose - neck)
    hs = head_shape * scale  # (forward, left, up) semi-axes
    c_l = np.array([max(top_l[0] - 10.0, nose_l[0] + 25.0 - hs[0]), 0.0, top_l[2] + 10.0 - hs[2]])
    ells.append((neck + R_hd @ c_l, R_hd, hs, "head"))
    rn = 52.0 * g["neck"]
    caps.append((thorax - 20.0 * R_ch[:, 2], neck + 0.35 * (R_hd @ c_l), rn, "neck"))
    # ---- arms
    for side, sgn, arm in (("L", 1.0, armL), ("R", -1.0, armR)):
        sh = thorax + sgn * L["shoulder"] * R_ch[:, 1]
        R_ua = R_ch @ _rz(sgn * arm["plane"]) @ _ry(-arm["elev"]) @ _rz(-sgn * arm["rot"])
        elbow = sh - L["upper-arm"] * R_ua[:, 2]
        R_fa = R_ua @ _ry(-arm["elbow"])
        wrist = elbow - L["forearm"] * R_fa[:, 2]
        J[_J[side + "Shoulder"]], J[_J[side + "Elbow"]], J[_J[side + "Wrist"]] = sh, elbow, wrist
        caps.append((thorax - 25.0 * R_ch[:, 2], sh, 55.0 * g["shoulder"], "shoulder"))
        caps.append((sh, elbow, 46.0 * g["upper-arm"], "upper-arm"))
        caps.append((elbow, wrist, 36.0 * g["forearm"], "forearm"))
        caps.append((wrist, wrist - 0.42 * L["forearm"] * R_fa[:, 2], 32.0 * g["hand"], "hand"))

    return Body(
        joints=J,
        cap_a=np.array([c[0] for c in caps]), cap_b=np.array([c[1] for c in caps]),
        cap_r=np.array([c[2] for c in caps]), cap_part=[c[3] for c in caps],
        ell_c=np.array([e[0] for e in ells]), ell_R=np.array([e[1] for e in ells]),
        ell_s=np.array([e[2] for e in ells]), ell_part=[e[3] for e in ells],
        head_frame=R_hd,
    )


def _nose_forward(j: np.ndarray) -> float:
    """Cosine between ``nose - neck`` and the body's forward axis ``left x up`` (left = LHip - RHip,
    up = thorax - pelvis)."""
    fwd = np.cross(j[_J["LHip"]] - j[_J["RHip"]], j[_J["thorax"]] - j[_J["pelvis"]])
    d = j[_J["nose"]] - j[_J["neck"]]
    return float(fwd @ d / (np.linalg.norm(fwd) * np.linalg.norm(d) + 1e-12))


def sample_body(rng: np.random.Generator, activity: str | None = None) -> Body:
    """Draw a subject (bone lengths, girth), an activity and a pose; return the posed body standing on
    the floor (lowest point at z = 0) at a random floor position within +-0.4 m."""
    if activity is None:
        activity = ACTIVITIES[int(rng.integers(len(ACTIVITIES)))]
    scale = _u(rng, 0.9, 1.1)
    L = {k: m * scale * _u(rng, 0.92, 1.08) for k, m in BONE_MEANS_MM.items()}
    g_glob = _u(rng, 0.85, 1.2)
    g = {p: g_glob * _u(rng, 0.9, 1.1) for p in PARTS}
    head_shape = np.array([100.0, 78.0, 115.0]) * _u(rng, 0.93, 1.07)
    pose = _sample_pose(rng, activity)
    yaw = _u(rng, 0, 360)
    R_glob = _rz(yaw) @ _ry(_u(rng, -8, 8)) @ _rx(_u(rng, -8, 8))
    armL = _activity_arm(rng, activity, pose, "L")
    armR = _activity_arm(rng, activity, pose, "R")
    body = _build_body(L, g, scale, head_shape, pose, armL, armR, R_glob)
    # re-draw an arm whose elbow / wrist / hand ends inside the torso (bounded number of tries)
    for _ in range(12):
        bad = []
        for side in "LR":
            e, w = body.joints[_J[side + "Elbow"]], body.joints[_J[side + "Wrist"]]
            tip = w + 0.42 * L["forearm"] * _unit(w - e)
            pts = np.stack([e, 0.5 * (e + w), w, tip])
            if body.inside_torso(pts).any():
                bad.append(side)
        if not bad:
            break
        if "L" in bad:
            armL = _sample_arm(rng, None)
        if "R" in bad:
            armR = _sample_arm(rng, None)
        body = _build_body(L, g, scale, head_shape, pose, armL, armR, R_glob)
    # the face points forward of the body's frontal plane (forward = left x up; a real person's nose is
    # in front in practically every pose, and label-free L/R selection relies on it): re-draw the neck
    for _ in range(12):
        if _nose_forward(body.joints) >= 0.1:
            break
        pose["neck"] = dict(yaw=_u(rng, -45, 45), pitch=_u(rng, -15, 35), roll=_u(rng, -10, 10))
        body = _build_body(L, g, scale, head_shape, pose, armL, armR, R_glob)
    pos = np.array([_u(rng, -400, 400), _u(rng, -400, 400), 0.0])
    body.translate(pos - np.array([0.0, 0.0, body.min_z()]))
    body.activity, body.scale, body.girth, body.lengths = activity, scale, g_glob, L
    body.arm_modes = (str(armL["mode"]), str(armR["mode"]))
    return body


# ============================================================================ cameras
def sample_cameras(rng: np.random.Generator, num_views: int, target_xy: np.ndarray) -> list[Camera]:
    """``num_views`` pinhole cameras on a ring around the origin, ``360/V`` apart (+-10 deg), 4-5 m away,
    1.3-1.8 m high, aimed at ``(target_xy, 1 m)`` (+-0.1 m)."""
    base = _u(rng, 0, 2 * np.pi)
    cams = []
    for v in range(num_views):
        az = base + 2 * np.pi * v / num_views + math.radians(_u(rng, -10, 10))
        d = _u(rng, 4000, 5000)
        eye = np.array([d * math.cos(az), d * math.sin(az), _u(rng, 1300, 1800)])
        target = np.array([target_xy[0], target_xy[1], 1000.0]) + rng.uniform(-100, 100, 3)
        R, t = look_at(eye, target)
        f = FOCAL_PX * _u(rng, 0.97, 1.03)
        c = SENSOR_PX / 2 - 0.5 + rng.uniform(-8, 8, 2)
        K = np.array([[f, 0.0, c[0]], [0.0, f, c[1]], [0.0, 0.0, 1.0]])
        cams.append(Camera(K=K, R=R, t=t, dist=np.zeros(5), size=(SENSOR_PX, SENSOR_PX), name=f"cam{v}"))
    return cams


# ============================================================================ extents (dual quadrics)
def _dual_quadrics(body: Body) -> tuple[np.ndarray, np.ndarray]:
    """Dual quadrics ``[C, 2, 4, 4]`` of each capsule's two end spheres and ``[E, 4, 4]`` of the
    ellipsoids. A capsule's image extent is the union of its end spheres' extents (the signed
    distance of a segment point to a plane is affine along the segment)."""
    def dq(M: np.ndarray, c: np.ndarray) -> np.ndarray:  # M [...,3,3] = R diag(s); c [...,3]
        H = np.zeros(M.shape[:-2] + (4, 4))
        H[..., :3, :3] = M
        H[..., :3, 3] = c
        H[..., 3, 3] = 1.0
        D = np.diag([1.0, 1.0, 1.0, -1.0])
        return H @ D @ np.swapaxes(H, -1, -2)

    r = body.cap_r[:, None, None, None] * np.eye(3)
    caps = np.stack([dq(r[:, 0], body.cap_a), dq(r[:, 0], body.cap_b)], axis=1)
    ells = dq(body.ell_R * body.ell_s[:, None, :], body.ell_c)
    return caps, ells


def _extents(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Image boxes ``[..., 4]`` (x0, y0, x1, y1) of dual quadrics ``Q[..., 4, 4]`` under ``P[3, 4]``
    (tangent image lines ``x = u``: ``(p0 - u p2)^T Q (p0 - u p2) = 0``)."""
    p0, p1, p2 = P
    a = np.einsum("i,...ij,j->...", p2, Q, p2)
    out = []
    for row in (p0, p1):
        b = -2.0 * np.einsum("i,...ij,j->...", row, Q, p2)
        c = np.einsum("i,...ij,j->...", row, Q, row)
        sq = np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))
        r1, r2 = (-b - sq) / (2 * a), (-b + sq) / (2 * a)
        out.append((np.minimum(r1, r2), np.maximum(r1, r2)))
    return np.stack([out[0][0], out[1][0], out[0][1], out[1][1]], axis=-1)


def _in_front(cam: Camera, body: Body, min_depth: float = 100.0) -> bool:
    """All primitives entirely in front of the camera (their extents are then finite and exact)."""
    z_cap = np.concatenate([body.cap_a, body.cap_b]) @ cam.R[2] + cam.t[2]
    z_ell = body.ell_c @ cam.R[2] + cam.t[2] - np.linalg.norm(body.ell_s, axis=1)
    return bool((z_cap - np.concatenate([body.cap_r, body.cap_r]) > min_depth).all() and (z_ell > min_depth).all())


# ============================================================================ ray casting
def _ray_grid(cam: Camera, A: np.ndarray, size: int, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre ``[3]`` and unit world ray directions ``[ss*S, ss*S, 3]`` through the sub-pixel
    centres of the crop (crop pixel ``i`` spans ``[i - 0.5, i + 0.5]``), back-projected with ``(A K)^-1``."""
    n = ss * size
    g = (np.arange(n) + 0.5) / ss - 0.5
    W = cam.R.T @ np.linalg.inv(A @ cam.K)  # crop homogeneous px -> world direction
    d = np.empty((n, n, 3))
    d[...] = W[:, 2]
    d += g[None, :, None] * W[:, 0]
    d += g[:, None, None] * W[:, 1]
    d /= np.sqrt(np.einsum("ijk,ijk->ij", d, d))[..., None]
    return cam.center, d


def _block(box: np.ndarray, size: int, ss: int) -> tuple[int, int, int, int] | None:
    """Sub-pixel index ranges ``(x0, x1, y0, y1)`` (end exclusive) covering a crop-px box."""
    n = ss * size
    # sub-pixel k has its centre at (k + 0.5)/ss - 0.5, i.e. k = ss (x + 0.5) - 0.5
    x0 = max(int(math.floor(ss * (box[0] + 0.5) - 0.5)), 0)
    y0 = max(int(math.floor(ss * (box[1] + 0.5) - 0.5)), 0)
    x1 = min(int(math.ceil(ss * (box[2] + 0.5) - 0.5)) + 1, n)
    y1 = min(int(math.ceil(ss * (box[3] + 0.5) - 0.5)) + 1, n)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, x1, y0, y1


def _hit_capsule(o: np.ndarray, D: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    """Ray parameter of the first hit (inf: miss) of rays ``o + t D`` (``D[..., 3]`` unit) with the
    capsule ``(a, b, r)`` (cylinder + end spheres; Quilez's closed form)."""
    ba, oa = b - a, o - a
    baba, baoa, oaoa = ba @ ba, ba @ oa, oa @ oa
    dots = D @ np.stack([ba, oa], axis=1)
    bard, rdoa = dots[..., 0], dots[..., 1]
    k2 = np.maximum(baba - bard * bard, 1e-9)
    k1 = baba * rdoa - baoa * bard
    k0 = baba * oaoa - baoa * baoa - r * r * baba
    h = k1 * k1 - k2 * k0
    hit = h >= 0.0
    if not hit.any():
        return np.full(h.shape, np.inf)
    t = (-k1 - np.sqrt(np.maximum(h, 0.0))) / k2
    y = baoa + t * bard
    side = hit & (y > 0.0) & (y < baba)
    # end caps: sphere at a if y <= 0, else at b (only where the infinite cylinder is hit)
    use_a = y <= 0.0
    bb = np.where(use_a, rdoa, rdoa - bard)
    cc = np.where(use_a, oaoa - r * r, oaoa - 2 * baoa + baba - r * r)
    h2 = bb * bb - cc
    cap = hit & ~side & (h2 >= 0.0)
    tc = -bb - np.sqrt(np.maximum(h2, 0.0))
    return np.where(side, t, np.where(cap, tc, np.inf))


def _hit_ellipsoid(o: np.ndarray, D: np.ndarray, c: np.ndarray, Rm: np.ndarray, s: np.ndarray) -> np.ndarray:
    """First-hit ray parameter (inf: miss) with the ellipsoid centre ``c``, axes ``Rm`` (columns),
    semi-axes ``s`` (the ray mapped to unit-sphere coordinates; discriminant test)."""
    M = Rm / s  # local unit-sphere coordinates = M^T (x - c)
    ol = (o - c) @ M
    Dl = D @ M
    a = np.einsum("...k,...k->...", Dl, Dl)
    b = Dl @ ol
    h = b * b - a * (ol @ ol - 1.0)
    return np.where(h >= 0.0, (-b - np.sqrt(np.maximum(h, 0.0))) / a, np.inf)


def primitive_boxes(body: Body, P: np.ndarray) -> np.ndarray:
    """Exact image boxes ``[C + E, 4]`` (x0, y0, x1, y1) of every primitive (capsules, then
    ellipsoids) under the pinhole projection ``P [3, 4]`` (all primitives in front of the camera)."""
    qc, qe = _dual_quadrics(body)
    bc = _extents(P, qc)  # [C, 2, 4]
    bc = np.concatenate([bc[:, :, :2].min(1), bc[:, :, 2:].max(1)], axis=-1)
    return np.concatenate([bc, _extents(P, qe)])


def silhouette_box(body: Body, cam: Camera) -> np.ndarray:
    """Exact image box ``(x0, y0, x1, y1)`` (px, continuous) of the body's silhouette in ``cam``."""
    b = primitive_boxes(body, cam.P)
    return np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])


@dataclass
class Appearance:
    """Colours (RGB 0..1) of one subject, the light, and the per-view backgrounds."""

    part_rgb: dict[str, np.ndarray]
    hair: np.ndarray
    hairline: float
    hair_back: float
    light: np.ndarray
    backgrounds: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, float]]  # (c0, c1, dir|None, noise)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def sample_appearance(rng: np.random.Generator, num_views: int) -> Appearance:
    shirt = _hsv(_u(rng, 0, 1), _u(rng, 0.15, 0.9), _u(rng, 0.3, 0.95))
    trousers = _hsv(_u(rng, 0, 1), _u(rng, 0.1, 0.8), _u(rng, 0.15, 0.8))
    shoes = _hsv(_u(rng, 0, 1), _u(rng, 0.0, 0.6), _u(rng, 0.08, 0.7))
    k = _u(rng, 0, 1)
    skin = (1 - k) * np.array([1.0, 0.86, 0.74]) + k * np.array([0.36, 0.22, 0.15])
    skin = np.clip(skin * _u(rng, 0.9, 1.05), 0, 1)
    hair = _hsv(_u(rng, 0.02, 0.12), _u(rng, 0.3, 0.8), _u(rng, 0.05, 0.65))
    long_sleeves, shorts = rng.random() < 0.5, rng.random() < 0.2
    rgb = {
        "hip": trousers, "thigh": trousers, "thigh-low": trousers, "shin": skin if shorts else trousers,
        "shin-low": skin if shorts else trousers, "foot": shoes, "abdomen": shirt, "chest": shirt,
        "shoulder": shirt, "upper-arm": shirt, "forearm": shirt if long_sleeves else skin, "hand": skin,
        "neck": skin, "head": skin,
    }
    az, el = _u(rng, 0, 2 * np.pi), math.radians(_u(rng, 25, 70))
    light = np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)])
    bgs = []
    for _ in range(num_views):
        c0 = _hsv(_u(rng, 0, 1), _u(rng, 0, 0.7), _u(rng, 0.1, 0.95))
        if rng.random() < 0.5:
            bgs.append((c0, c0, None, _u(rng, 0, 0.015)))
        else:
            c1 = _hsv(_u(rng, 0, 1), _u(rng, 0, 0.7), _u(rng, 0.1, 0.95))
            ang = _u(rng, 0, 2 * np.pi)
            bgs.append((c0, c1, np.array([math.cos(ang), math.sin(ang)]), _u(rng, 0, 0.015)))
    return Appearance(part_rgb=rgb, hair=hair, hairline=_u(rng, 0.45, 0.75), hair_back=_u(rng, -0.1, 0.35),
                      light=light, backgrounds=bgs)


def render_view(body: Body, cam: Camera, A: np.ndarray, size: int, app: Appearance | None = None,
                view: int = 0, supersample: int = 2, rng: np.random.Generator | None = None,
                boxes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Ray-cast one crop: ``(mask [S,S] bool, image [S,S,3] uint8 or None when app is None)``.

    Rays go through the ``supersample x supersample`` sub-pixel centres of every crop pixel; the mask
    is the sub-pixel hit fraction thresholded at 0.5 (>= 0.5), the image the sub-pixel colour average.
    Each primitive is only tested against the rays inside its exact projected box. ``boxes``: the
    primitives' image boxes (:func:`primitive_boxes` with ``cam.P``), computed when None.
    """
    ss, S = supersample, size
    n = ss * S
    o, dirs = _ray_grid(cam, A, S, ss)
    if boxes is None:
        boxes = primitive_boxes(body, cam.P)
    # image px -> crop px (A is a scale + translation; apply it to both corners)
    c0 = boxes[:, :2] * np.diag(A)[:2] + A[:2, 2]
    c1 = boxes[:, 2:] * np.diag(A)[:2] + A[:2, 2]
    cboxes = np.concatenate([np.minimum(c0, c1), np.maximum(c0, c1)], axis=1)
    zbuf = np.full((n, n), np.inf)
    pid = np.full((n, n), -1, np.int32)
    C = len(body.cap_r)
    for k in range(C + len(body.ell_s)):
        blk = _block(cboxes[k], S, ss)
        if blk is None:
            continue
        x0, x1, y0, y1 = blk
        D = dirs[y0:y1, x0:x1]
        if k < C:
            t = _hit_capsule(o, D, body.cap_a[k], body.cap_b[k], float(body.cap_r[k]))
        else:
            e = k - C
            t = _hit_ellipsoid(o, D, body.ell_c[e], body.ell_R[e], body.ell_s[e])
        zb = zbuf[y0:y1, x0:x1]
        closer = t < zb
        np.copyto(zb, t, where=closer)
        np.copyto(pid[y0:y1, x0:x1], k, where=closer)
    hit = pid >= 0
    cover = np.zeros((S, S), np.int32)
    for dy in range(ss):
        for dx in range(ss):
            cover += hit[dy::ss, dx::ss]
    mask = cover * 2 >= ss * ss
    if app is None:
        return mask, None

    # ---- shading of the hit sub-pixels
    ys, xs = np.nonzero(hit)
    p_id = pid[ys, xs]
    d = dirs[ys, xs]
    tt = zbuf[ys, xs]
    P = o + tt[:, None] * d
    normal = np.empty_like(P)
    albedo = np.empty_like(P)
    is_cap = p_id < C
    if is_cap.any():
        ci = p_id[is_cap]
        a, ba = body.cap_a[ci], body.cap_b[ci] - body.cap_a[ci]
        pc = P[is_cap]
        s_ = np.clip(np.einsum("nk,nk->n", pc - a, ba) / np.einsum("nk,nk->n", ba, ba), 0.0, 1.0)
        normal[is_cap] = pc - (a + s_[:, None] * ba)
        albedo[is_cap] = np.array([app.part_rgb[nm] for nm in body.cap_part])[ci]
    if (~is_cap).any():
        ei = p_id[~is_cap] - C
        loc = np.einsum("nji,nj->ni", body.ell_R[ei], P[~is_cap] - body.ell_c[ei])  # (forward, left, up)
        normal[~is_cap] = np.einsum("nij,nj->ni", body.ell_R[ei], loc / body.ell_s[ei] ** 2)
        alb = np.array([app.part_rgb[nm] for nm in body.ell_part])[ei]
        is_head = np.array([nm == "head" for nm in body.ell_part])[ei]
        if is_head.any():
            u = loc[is_head] / body.ell_s[ei[is_head]]  # unit-sphere coordinates in the head frame
            hair = (u[:, 0] < app.hair_back) | (u[:, 2] > app.hairline)
            alb_h = alb[is_head]
            alb_h[hair] = app.hair
            alb[is_head] = alb_h
        albedo[~is_cap] = alb
    normal /= np.sqrt(np.einsum("nk,nk->n", normal, normal))[:, None] + 1e-12
    lam = np.clip(normal @ app.light, 0.0, 1.0)
    head = np.clip(-np.einsum("nk,nk->n", normal, d), 0.0, 1.0)
    tmin, tmax = tt.min(), tt.max()
    depth = 1.0 - 0.25 * (tt - tmin) / max(tmax - tmin, 1.0)
    col = albedo * ((0.22 + 0.5 * lam + 0.33 * head) * depth)[:, None]

    bc0, bc1, gdir, noise = app.backgrounds[view % len(app.backgrounds)]
    if gdir is None:
        bg = np.empty((n, n, 3))
        bg[...] = bc0
    else:
        g = np.arange(n) / (n - 1) - 0.5
        ramp = np.clip(0.5 + gdir[0] * g[None, :] + gdir[1] * g[:, None], 0, 1)[..., None]
        bg = bc0 * (1 - ramp) + bc1 * ramp
    bg[ys, xs] = col
    img = np.zeros((S, S, 3))
    for dy in range(ss):
        for dx in range(ss):
            img += bg[dy::ss, dx::ss]
    img /= ss * ss
    if noise > 0 and rng is not None:
        img += rng.normal(0.0, noise, img.shape)
    return mask, np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


# ============================================================================ samples
@dataclass
class SyntheticSample:
    """One generated sample (V views of one instant)."""

    index: int
    activity: str
    joints3d: np.ndarray           # [18, 3] float64 mm, world
    K: np.ndarray                  # [V, 3, 3]
    R: np.ndarray                  # [V, 3, 3]
    t: np.ndarray                  # [V, 3]
    dist: np.ndarray               # [V, 5] zeros
    A: np.ndarray                  # [V, 3, 3] image px -> crop px
    valid: np.ndarray              # [V] bool
    images: np.ndarray             # [V, S, S, 3] uint8
    masks: np.ndarray              # [V, S, S] bool
    weights: np.ndarray | None     # [V, S, S] float32 geodesic weights
    scale: float = 1.0
    girth: float = 1.0

    @property
    def cameras(self) -> list[Camera]:
        return [Camera(K=self.K[v], R=self.R[v], t=self.t[v], dist=self.dist[v], size=(SENSOR_PX, SENSOR_PX))
                for v in range(len(self.K))]


def generate_sample(index: int, *, seed: int = 0, split: str = "train", num_views: int = 4, size: int = 64,
                    supersample: int = 2, weights: bool = True, images: bool = True) -> SyntheticSample:
    """Generate sample ``index`` of ``split`` deterministically from ``(seed, split, index)``."""
    if num_views < 1 or size < 8:
        raise ValueError(f"generate_sample: num_views must be >= 1 and size >= 8, got {num_views}, {size}")
    rng = sample_rng(seed, split, index)
    body = sample_body(rng)
    cams = sample_cameras(rng, num_views, body.joints[_J["pelvis"], :2])
    app = sample_appearance(rng, num_views)
    render_rng = np.random.default_rng(rng.integers(2 ** 63))
    V, S = num_views, size
    A = np.zeros((V, 3, 3))
    valid = np.zeros(V, bool)
    imgs = np.zeros((V, S, S, 3), np.uint8)
    masks = np.zeros((V, S, S), bool)
    wts = np.zeros((V, S, S), np.float32) if weights else None
    for v, cam in enumerate(cams):
        if not _in_front(cam, body):  # cannot happen with these cameras; kept for safety
            A[v] = np.eye(3)
            continue
        boxes = primitive_boxes(body, cam.P)
        box = np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])
        centre = ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)
        side = max(box[2] - box[0], box[3] - box[1]) * CROP_MARGIN
        A[v] = crop_affine(centre, side, S)
        m, img = render_view(body, cam, A[v], S, app if images else None, view=v, supersample=supersample,
                             rng=render_rng, boxes=boxes)
        masks[v] = m
        if img is not None:
            imgs[v] = img
        inside = box[0] >= -0.5 and box[1] >= -0.5 and box[2] <= SENSOR_PX - 0.5 and box[3] <= SENSOR_PX - 0.5
        valid[v] = bool(inside and m.any())
        if wts is not None and m.any():
            wts[v] = geodesic_weights(m)
    return SyntheticSample(
        index=index, activity=body.activity, joints3d=body.joints.copy(),
        K=np.stack([c.K for c in cams]), R=np.stack([c.R for c in cams]), t=np.stack([c.t for c in cams]),
        dist=np.zeros((V, 5)), A=A, valid=valid, images=imgs, masks=masks, weights=wts,
        scale=body.scale, girth=body.girth,
    )


# ============================================================================ datasets
def _generate_job(args: tuple) -> SyntheticSample:
    index, seed, split, V, S, root, sample_id, image_ext = args
    s = generate_sample(index, seed=seed, split=split, num_views=V, size=S)
    if root is not None:  # write the pixel files here (in the worker) and send back only the record
        from .folder import write_sample_files

        write_sample_files(root, sample_id, s.images, s.masks, s.weights, image_ext=image_ext)
        s.images = s.masks = s.weights = None  # type: ignore[assignment]
    return s


def sample_id(index: int, width: int = 6) -> str:
    """Dataset id of synthetic sample ``index`` (zero-padded)."""
    return f"{index:0{width}d}"


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def iter_samples(num_samples: int, *, seed: int = 0, split: str = "train", num_views: int = 4, size: int = 64,
                 workers: int | None = None, start: int = 0, write_to: str | os.PathLike | None = None,
                 image_ext: str = ".png"):
    """Yield :class:`SyntheticSample` ``start .. start + num_samples - 1`` in order, generated by a pool of
    ``workers`` processes (default: the number of usable CPUs; 1 = in this process).

    With ``write_to``, each worker writes its sample's frame / mask / weight files into that dataset
    folder itself (ids :func:`sample_id`) and the yielded samples carry no pixel arrays."""
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    width = max(6, len(str(start + num_samples - 1)))
    root = None if write_to is None else str(write_to)
    jobs = [(start + i, seed, split, num_views, size, root, sample_id(start + i, width), image_ext)
            for i in range(num_samples)]
    if workers == 1 or num_samples <= 1:
        for j in jobs:
            yield _generate_job(j)
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    chunk = max(1, min(8, num_samples // (workers * 8)))
    with ctx.Pool(min(workers, num_samples)) as pool:
        yield from pool.imap(_generate_job, jobs, chunksize=chunk)


def generate_dataset(out: str | os.PathLike, num_samples: int, *, num_views: int = 4, size: int = 64, seed: int = 0,
                     split: str = "train", workers: int | None = None, overwrite: bool = False,
                     image_ext: str = ".png", progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate a synthetic dataset folder (``docs/dataset-format.md``) with ground truth in ``gt/``.

    Sample ``i`` is drawn from ``(seed, split, i)``: the result does not depend on ``workers``, and
    different splits never share a stream. ``progress(k)`` is called after each written sample with
    the number written so far. Returns ``{"path", "num_samples", "seconds", "samples_per_s"}``.
    Raises :class:`maskpose.data.folder.DatasetError` for a non-empty folder without ``overwrite`` or an
    unwritable folder.
    """
    from .. import __version__
    from .folder import DatasetWriter

    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    t0 = time.perf_counter()
    width = max(6, len(str(num_samples - 1)))
    writer = DatasetWriter(
        out, size=size, num_views=num_views, source="synthetic", overwrite=overwrite, image_ext=image_ext,
        created_by=f"maskpose {__version__} synth",
        meta={"split": split, "seed": seed, "generator": {
            "name": "maskpose.data.synthetic", "focal_px": FOCAL_PX, "sensor_px": SENSOR_PX,
            "crop_margin": CROP_MARGIN, "supersample": 2, "activities": list(ACTIVITIES)}},
    )
    with writer:
        for k, s in enumerate(iter_samples(num_samples, seed=seed, split=split, num_views=num_views, size=size,
                                           workers=workers, write_to=writer.root, image_ext=writer.image_ext)):
            writer.add_record(sample_id(s.index, width), K=s.K, R=s.R, t=s.t, A=s.A, dist=s.dist, valid=s.valid,
                              joints3d=s.joints3d, activity=s.activity, scale=float(s.scale), girth=float(s.girth))
            if progress is not None:
                progress(k + 1)
    dt = time.perf_counter() - t0
    return {"path": Path(out), "num_samples": num_samples, "seconds": dt, "samples_per_s": num_samples / max(dt, 1e-9)}


__all__ = [
    "ACTIVITIES", "ARM_MODES", "BONE_MEANS_MM", "LIMITS", "Body", "SyntheticSample", "Appearance",
    "sample_rng", "sample_body", "sample_cameras", "sample_appearance", "render_view", "silhouette_box",
    "primitive_boxes",
    "generate_sample", "iter_samples", "generate_dataset", "default_workers", "sample_id",
]
