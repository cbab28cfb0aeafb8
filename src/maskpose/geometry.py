"""Cameras, projection, distortion, crop affines and batched N-view triangulation.

Conventions (DESIGN.md §3):

* world in millimetres; ``x_cam = R @ X + t`` (world -> camera); ``K`` in pixels;
* OpenCV distortion ``(k1, k2, p1, p2, k3)``;
* image pixels: x to the right, y down, the centre of the top-left pixel is (0, 0);
* a crop is an affine ``A`` (3x3, image px -> crop px); the crop camera is ``A @ K``; network
  coordinates are normalised crop coordinates in [-1, 1]: pixel ``i -> 2 i / (S - 1) - 1``.

Crop cameras are pinhole: distortion is removed when a dataset is prepared (the crop is cut from
the undistorted image), so ``P_crop = N @ A @ K @ [R | t]`` is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

Array = np.ndarray


# ---------------------------------------------------------------------------- cameras
@dataclass
class Camera:
    """A calibrated camera. ``K [3,3]`` px, ``R [3,3]``, ``t [3]`` mm (world -> camera),
    ``dist [5]`` OpenCV ``(k1, k2, p1, p2, k3)``, ``size = (width, height)`` px or None."""

    K: Array
    R: Array
    t: Array
    dist: Array = field(default_factory=lambda: np.zeros(5))
    size: tuple[int, int] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3) if np.size(self.K) == 9 else _bad("K", self.K, "[3, 3]", self.name)
        self.R = np.asarray(self.R, dtype=np.float64).reshape(3, 3) if np.size(self.R) == 9 else _bad("R", self.R, "[3, 3]", self.name)
        self.t = np.asarray(self.t, dtype=np.float64).reshape(3) if np.size(self.t) == 3 else _bad("t", self.t, "[3]", self.name)
        d = np.asarray(self.dist, dtype=np.float64).reshape(-1)
        if d.size > 5:
            if np.any(d[5:] != 0):
                raise ValueError(f"camera {self.name!r}: only 5 OpenCV distortion coefficients (k1,k2,p1,p2,k3) are supported, got {d.size} non-zero beyond 5")
            d = d[:5]
        self.dist = np.concatenate([d, np.zeros(5 - d.size)])
        for nm in ("K", "R", "t", "dist"):
            if not np.all(np.isfinite(getattr(self, nm))):
                raise ValueError(f"camera {self.name!r}: {nm} contains NaN or inf")
        if abs(np.linalg.det(self.R) - 1.0) > 1e-3:
            raise ValueError(f"camera {self.name!r}: R is not a rotation (det = {np.linalg.det(self.R):.4f})")

    @property
    def P(self) -> Array:
        """Pinhole projection ``K [R | t]`` ``[3, 4]``."""
        return self.K @ np.concatenate([self.R, self.t[:, None]], axis=1)

    @property
    def center(self) -> Array:
        """Camera centre in world coordinates ``[3]`` (mm)."""
        return -self.R.T @ self.t

    def project(self, X: Array) -> Array:
        """World points ``[..., 3]`` mm -> distorted pixels ``[..., 2]``."""
        out = project(torch.as_tensor(np.asarray(X, dtype=np.float64)), torch.from_numpy(self.K),
                      torch.from_numpy(self.R), torch.from_numpy(self.t), torch.from_numpy(self.dist))
        return out.numpy()

    def to_dict(self) -> dict:
        return {"name": self.name, "K": self.K.tolist(), "R": self.R.tolist(), "t": self.t.tolist(),
                "dist": self.dist.tolist(), "size": list(self.size) if self.size else None}

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        return cls(K=d["K"], R=d["R"], t=d["t"], dist=d.get("dist", np.zeros(5)),
                   size=tuple(d["size"]) if d.get("size") else None, name=d.get("name", ""))


def _bad(what, value, shape, name):
    raise ValueError(f"camera {name!r}: {what} must have shape {shape}, got {np.shape(value)}")


def look_at(eye: Array, target: Array, up: Array = (0.0, 0.0, 1.0)) -> tuple[Array, Array]:
    """``(R, t)`` of a camera at ``eye`` looking at ``target`` (OpenCV axes: x right, y down, z forward)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to 'up'")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ eye


# ---------------------------------------------------------------------------- projection
def distort(xn: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Apply OpenCV distortion to normalised image coordinates ``xn[..., N, 2]``; ``dist[..., 1, 5]`` (broadcast over N)."""
    k1, k2, p1, p2, k3 = (dist[..., i] for i in range(5))
    x, y = xn[..., 0], xn[..., 1]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return torch.stack([xd, yd], dim=-1)


def project(points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
            dist: torch.Tensor | None = None) -> torch.Tensor:
    """Project world points to (distorted) pixels.

    Args:
        points: ``[..., N, 3]`` world points (mm).
        K: ``[..., 3, 3]``; R: ``[..., 3, 3]``; t: ``[..., 3]`` (world -> camera, mm).
        dist: ``[..., 5]`` OpenCV coefficients or None (pinhole).
    Returns:
        ``[..., N, 2]`` pixel coordinates. Differentiable in every argument.
    """
    if points.shape[-1] != 3:
        raise ValueError(f"project: points must have shape [..., N, 3], got {list(points.shape)}")
    xc = points @ R.transpose(-1, -2) + t[..., None, :]
    z = xc[..., 2:3]
    xn = xc[..., :2] / z
    if dist is not None:
        xn = distort(xn, dist[..., None, :])
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy, s = K[..., 0, 2, None], K[..., 1, 2, None], K[..., 0, 1, None]
    u = fx * xn[..., 0] + s * xn[..., 1] + cx
    v = fy * xn[..., 1] + cy
    return torch.stack([u, v], dim=-1)


def project_P(points: torch.Tensor, P: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Pinhole projection with matrices: ``points[..., N, 3]``, ``P[..., 3, 4]`` -> ``[..., N, 2]``."""
    if P.shape[-2:] != (3, 4):
        raise ValueError(f"project_P: P must have shape [..., 3, 4], got {list(P.shape)}")
    xh = points @ P[..., :, :3].transpose(-1, -2) + P[..., None, :, 3]
    z = xh[..., 2:3]
    z = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    return xh[..., :2] / z


def depth_P(points: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Third homogeneous coordinate of ``P @ X`` ``[..., N]``: the depth (mm) when ``P = A K [R|t]``
    with ``A``, ``K`` having last row (0, 0, 1)."""
    return (points * P[..., None, 2, :3]).sum(-1) + P[..., None, 2, 3]


def undistort_points(pixels: Array, K: Array, dist: Array, iterations: int = 20) -> Array:
    """Distorted pixels ``[..., 2]`` -> undistorted (ideal pinhole) pixels ``[..., 2]``, same ``K``.

    Iterative inversion as in OpenCV's ``undistortPoints`` (fixed-point, ``iterations`` steps).
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    dist = np.asarray(dist, dtype=np.float64).reshape(-1)
    fx, fy, cx, cy, s = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    yd = (pixels[..., 1] - cy) / fy
    xd = (pixels[..., 0] - cx - s * yd) / fx
    if not np.any(dist):
        x, y = xd, yd
    else:
        k1, k2, p1, p2, k3 = (list(dist) + [0.0] * 5)[:5]
        x, y = xd.copy(), yd.copy()
        for _ in range(iterations):
            r2 = x * x + y * y
            radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
            dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
            dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
            x = (xd - dx) / radial
            y = (yd - dy) / radial
    return np.stack([fx * x + s * y + cx, fy * y + cy], axis=-1)


# ---------------------------------------------------------------------------- crops
def crop_affine(center: tuple[float, float], side: float, out_size: int) -> Array:
    """Affine ``A [3, 3]`` (image px -> crop px) of the square of ``side`` px centred at ``center``
    resized to ``out_size`` px, with pixel-centre conventions on both sides (so ``cv2.warpAffine``
    with ``A[:2]`` cuts exactly this crop)."""
    if side <= 0 or out_size <= 0:
        raise ValueError(f"crop_affine: side and out_size must be positive, got {side}, {out_size}")
    s = out_size / side
    cx, cy = center
    return np.array([[s, 0.0, (side / 2 - cx) * s - 0.5],
                     [0.0, s, (side / 2 - cy) * s - 0.5],
                     [0.0, 0.0, 1.0]])


def normalize_matrix(size: int) -> Array:
    """``N [3, 3]``: crop pixel ``i -> 2 i / (size - 1) - 1``."""
    k = 2.0 / (size - 1)
    return np.array([[k, 0, -1.0], [0, k, -1.0], [0, 0, 1.0]])


def square_box(bbox: tuple[float, float, float, float], margin: float = 1.15) -> tuple[tuple[float, float], float]:
    """Square ``(center, side)`` around an ``(x0, y0, x1, y1)`` pixel box grown by ``margin``."""
    x0, y0, x1, y1 = bbox
    return ((x0 + x1) / 2.0, (y0 + y1) / 2.0), max(x1 - x0 + 1, y1 - y0 + 1) * margin


def mask_bbox(mask: Array) -> tuple[int, int, int, int]:
    """Pixel bounding box ``(x0, y0, x1, y1)`` (inclusive) of a non-empty boolean mask ``[H, W]``."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("mask_bbox: mask is empty")
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def crop_projection(camera: Camera, A: Array, size: int, normalized: bool = True) -> Array:
    """``[3, 4]`` projection of the crop: ``(N @) A @ K @ [R | t]`` (pinhole; see module docstring)."""
    P = A @ camera.P
    return normalize_matrix(size) @ P if normalized else P


# ---------------------------------------------------------------------------- triangulation
def triangulate(points2d: torch.Tensor, projections: torch.Tensor, weights: torch.Tensor | None = None,
                method: str = "svd") -> torch.Tensor:
    """Batched, weighted N-view DLT.

    For every joint, each view contributes the two rows ``w (x P_3 - P_1)`` and ``w (y P_3 - P_2)``;
    the homogeneous point is the right singular vector of the smallest singular value (SVD in
    float64, the same algebraic error as ``cv2.triangulatePoints``), vectorised over samples and joints.

    Args:
        points2d: ``[..., V, J, 2]`` image points in the coordinates of ``projections``.
        projections: ``[..., V, 3, 4]`` projection matrices (broadcast over the leading dims).
        weights: ``[..., V, J]`` non-negative confidences (None: all 1). Each joint needs positive
            weight in at least 2 views.
        method: ``"svd"`` (homogeneous DLT, as OpenCV) or ``"normal"``: the inhomogeneous least
            squares ``A[:, :3] X = -A[:, 3]`` solved by 3x3 normal equations in closed form (fully
            vectorised, several times faster; the same point for exact data, slightly different
            algebraic weighting with noise). Used for the many no-grad candidates of L/R matching.
    Returns:
        ``[..., J, 3]`` points, differentiable w.r.t. points, projections and weights.
    """
    if points2d.ndim < 3 or points2d.shape[-1] != 2:
        raise ValueError(f"triangulate: points2d must have shape [..., V, J, 2], got {list(points2d.shape)}")
    if projections.ndim < 3 or projections.shape[-2:] != (3, 4):
        raise ValueError(f"triangulate: projections must have shape [..., V, 3, 4], got {list(projections.shape)}")
    V = points2d.shape[-3]
    if V < 2:
        raise ValueError(f"triangulate: needs at least 2 views, got V = {V}")
    if projections.shape[-3] != V:
        raise ValueError(f"triangulate: {V} views of points but {projections.shape[-3]} projection matrices")
    if weights is not None and (weights.shape[-2:] != points2d.shape[-3:-1]):
        raise ValueError(f"triangulate: weights must have shape [..., V={V}, J={points2d.shape[-2]}], got {list(weights.shape)}")
    if torch.isnan(points2d).any():
        raise ValueError("triangulate: points2d contains NaN (give such views weight 0 and finite coordinates instead)")
    dtype = points2d.dtype
    x = points2d.double()
    P = projections.double()[..., :, None, :, :]  # [..., V, 1, 3, 4]
    rows_x = x[..., 0:1] * P[..., 2, :] - P[..., 0, :]  # [..., V, J, 4]
    rows_y = x[..., 1:2] * P[..., 2, :] - P[..., 1, :]
    if weights is not None:
        w = weights.double()[..., None]
        rows_x, rows_y = rows_x * w, rows_y * w
    A = torch.cat([rows_x, rows_y], dim=-3)  # [..., 2V, J, 4]
    A = A.movedim(-2, -3)  # [..., J, 2V, 4]
    if method == "normal":
        M = A[..., :3].transpose(-1, -2) @ A[..., :3]  # [..., J, 3, 3]
        rhs = -(A[..., :3].transpose(-1, -2) @ A[..., 3:4])[..., 0]
        return _solve3(M, rhs).to(dtype)
    if method != "svd":
        raise ValueError(f"triangulate: method must be 'svd' or 'normal', got {method!r}")
    _, _, Vh = torch.linalg.svd(A, full_matrices=False)
    X = Vh[..., -1, :]  # right singular vector of the smallest singular value
    out = X[..., :3] / X[..., 3:4]
    return out.to(dtype)


def _solve3(M: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``M [..., 3, 3] x = b [..., 3]`` by the adjugate (closed form, vectorised)."""
    c0 = torch.linalg.cross(M[..., 1, :], M[..., 2, :], dim=-1)
    c1 = torch.linalg.cross(M[..., 2, :], M[..., 0, :], dim=-1)
    c2 = torch.linalg.cross(M[..., 0, :], M[..., 1, :], dim=-1)
    det = (M[..., 0, :] * c0).sum(-1, keepdim=True)
    adj = torch.stack([c0, c1, c2], dim=-1)  # inverse = adj / det
    det = torch.where(det.abs() < 1e-300, torch.full_like(det, 1e-300), det)
    return (adj @ b[..., None])[..., 0] / det


def reprojection_error(points3d: torch.Tensor, points2d: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
    """Per view and joint re-projection error ``[..., V, J]`` of ``points3d[..., J, 3]`` against
    ``points2d[..., V, J, 2]`` under ``projections[..., V, 3, 4]`` (units of ``points2d``)."""
    proj = project_P(points3d[..., None, :, :], projections)
    return (proj - points2d).norm(dim=-1)
