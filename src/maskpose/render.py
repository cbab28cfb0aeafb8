"""Differentiable segment masks: Gaussian (paper) and capsule (body) profiles.

A *segment mask* draws ``E`` line segments per image with a per-segment profile and merges them
pixel-wise into one ``[B, 1, S, S]`` mask. This module has two implementations with one interface:

* :func:`render_segments_dense` -- the reference: every segment at every pixel (``B x E x S x S``
  tensors), the formula written plainly, gradients by autograd;
* :func:`render_segments` -- the fast path: a custom :class:`torch.autograd.Function` that
  evaluates each segment only on the image tiles within its *reach* and has an analytic backward.
  It equals the dense reference to 1e-5 in values and gradients (``tests/test_render.py``); for
  fwd + bwd at B = 32 it is ~4-6x faster at 64 px, ~25x at 128 px and ~45x at 256 px, with
  9-19x less peak memory (2-core CPU, ``benchmarks/render.py``).

On top of them: :func:`skeleton_mask` (the authors' skeleton mask: the joint set's kinematic bones
plus fill links, Gaussian lines merged by ``max``) and :func:`gaussian_joint_mask` (the paper's
Eq. 3 baseline: one Gaussian blob per joint).

Conventions (DESIGN.md §3)
--------------------------
* Points are in **normalised crop coordinates** in ``[-1, 1]``: ``x`` = column, ``y`` = row, pixel
  centre ``i`` of an ``S``-pixel side maps to ``2 i / (S - 1) - 1`` (pixel 0 -> -1, pixel ``S - 1``
  -> +1). One normalised unit is ``(S - 1) / 2`` pixels.
* Distance ``d(p)`` from pixel ``p`` to segment ``ab`` is computed as in the authors' code:
  ``t = clamp(((p - a) . (b - a)) / (|b - a|^2 + 1e-8), 0, 1)``, ``d = |p - a - t (b - a)|``;
  ``a == b`` gives the distance to a point (a blob / a sphere).
* Profiles (``width`` is per segment):

  - ``"gaussian"``: ``B(p) = exp(-d^2 / width)``, ``width`` in *squared* normalised units (the
    paper's sigma^2; authors: 0.003, arms 0.0015, at S = 256);
  - ``"capsule"``: ``B(p) = sigmoid((width - d) / tau_n)``, ``width`` = capsule radius in normalised
    units, ``tau`` the edge softness in **pixels** (``tau_n = tau * 2 / (S - 1)``); 0.5 at ``d = width``.

* Merges over segments: ``"max"`` (authors' code), ``"sum"`` (paper, Sec. 3.2), ``"soft_union"``
  ``1 - prod_e (1 - B_e)`` (computed in log space: ``log(1 - sigmoid(s)) = -softplus(s)``).

Fast path in one paragraph
--------------------------
The ``S x S`` image is split into square tiles (8 px by default). A segment's profile is below
``TRUNCATION`` (1e-7) beyond its *reach* (gaussian: ``sqrt(width ln(1/TRUNCATION))``; capsule:
``width + ln(1/TRUNCATION) tau_n``), so an (image, tile, segment) triple is kept only when the
distance from the tile centre to the segment is below reach + the tile's half diagonal (one
vectorised test over all ``B x E x tiles``). The profile is evaluated on the kept triples' pixels
(``[T, tile^2]``, in chunks of ~1e5 values that stay in cache) and merged into a tile-major canvas
with ``index_add`` (sum; soft union as a sum of ``log(1 - B)``) or ``index_reduce(amax)`` (max).
For backward it saves the inputs, the triple list, the canvas and the profile value and ``d^2`` of
each kept pixel (``2 T tile^2`` numbers, ~10 % of one dense ``B x E x S^2`` tensor at 128 px);
backward recomputes the cheap geometry chunk by chunk and reduces the analytic gradient w.r.t.
``a``, ``b`` and ``width`` into ``[B, E]`` with ``index_add``. No ``B x E x S^2`` tensor is ever
built. For ``max`` the gradient of a pixel goes to the segment attaining its maximum (lowest
segment index on exact ties, as ``torch.max``). The
truncation makes the fast values differ from the dense ones by < 1e-7 per segment and pixel (1e-7
rather than 1e-6 so that gradients, which sum the truncated tails over many pixels, also agree to
better than 1e-5 relative; it costs ~8 % more pixels).
"""
from __future__ import annotations

import math
import warnings
from typing import Iterable

import torch
import torch.nn.functional as F

from . import skeleton as _skeleton
from .skeleton import JointSet

__all__ = [
    "PROFILES", "MERGES", "TRUNCATION",
    "render_segments", "render_segments_dense",
    "skeleton_mask", "skeleton_mask_dense",
    "gaussian_joint_mask", "gaussian_joint_mask_dense",
    "pixel_coords", "segment_reach",
]

PROFILES = ("gaussian", "capsule")
MERGES = ("max", "sum", "soft_union")

#: Profile value below which a segment is not evaluated by the fast path (per segment and pixel).
TRUNCATION = 1e-7
_LOG_CUT = math.log(1.0 / TRUNCATION)  # 16.1: exp(-x) < TRUNCATION and sigmoid(-x) < TRUNCATION for x > _LOG_CUT

_DEN_EPS = 1e-8  # the authors' |b - a|^2 + 1e-8
_D2_FLOOR = 1e-30  # sqrt(max(d^2, floor)): a finite capsule gradient on the segment itself

_DEFAULT_TILE = 8
_DEFAULT_CHUNK = 1 << 17  # pixel evaluations per chunk (0.5 MB per float32 temporary)


# ============================================================================ shared helpers
def pixel_coords(size: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Normalised coordinates of the pixel centres of one image side.

    Args:
        size: side ``S`` in pixels (>= 2).

    Returns:
        ``[S]`` tensor, ``2 i / (S - 1) - 1`` for ``i = 0..S-1`` (exactly -1 and +1 at the ends).
    """
    return torch.linspace(-1.0, 1.0, size, dtype=dtype, device=device)


def _sq_dist(rx, ry, vx, vy, den=None):
    """Squared point-to-segment distance with the authors' clamping.

    ``r = p - a`` (pixel minus start point), ``v = b - a`` (segment vector), optional
    ``den = |v|^2 + 1e-8``; any broadcastable shapes. Returns ``(d2, c, tu, t, ex, ey)``:
    ``c = r . v``, ``tu = c / den``, ``t = clamp(tu, 0, 1)``, ``e = r - t v`` (pixel minus closest
    point), ``d2 = |e|^2``.
    """
    if den is None:
        den = vx * vx + vy * vy + _DEN_EPS
    c = torch.addcmul(rx * vx, ry, vy)
    tu = c / den
    t = tu.clamp(0.0, 1.0)
    ex = torch.addcmul(rx, t, vx, value=-1.0)
    ey = torch.addcmul(ry, t, vy, value=-1.0)
    return torch.addcmul(ex * ex, ey, ey), c, tu, t, ex, ey


def _safe_sqrt(d2: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(d2, 1e-30))``: equal to ``sqrt(d2)`` to 1e-15, finite gradient (0 below the floor)."""
    return d2.clamp_min(_D2_FLOOR).sqrt()


def _capsule_logit(d2, width, tau_n: float):
    """Capsule logit ``s = (width - d) / tau_n`` (``B = sigmoid(s)``)."""
    return (width - _safe_sqrt(d2)) / tau_n


def _profile(d2, width, profile: str, tau_n: float):
    """Profile value ``B`` from the squared distance (see the module docstring)."""
    if profile == "gaussian":
        return torch.exp(-d2 / width)
    return torch.sigmoid(_capsule_logit(d2, width, tau_n))


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-x))`` for ``x > 0``, accurate for small and large ``x``."""
    return torch.where(x < math.log(2.0), torch.log(-torch.expm1(-x)), torch.log1p(-torch.exp(-x)))


def _log_complement(d2, width, profile: str, tau_n: float):
    """``log(1 - B)``, finite everywhere (gaussian: ``d^2 / width`` floored at the dtype's tiny)."""
    if profile == "gaussian":
        return _log1mexp((d2 / width).clamp_min(torch.finfo(d2.dtype).tiny))
    return -F.softplus(_capsule_logit(d2, width, tau_n))


def segment_reach(width: torch.Tensor, profile: str, tau_n: float) -> torch.Tensor:
    """Distance (normalised units) beyond which a segment's profile is below :data:`TRUNCATION`.

    Args:
        width: ``[...]`` profile widths (gaussian: squared normalised units; capsule: radius).
        profile: ``"gaussian"`` or ``"capsule"``.
        tau_n: capsule softness in normalised units.

    Returns:
        ``[...]`` reach: ``sqrt(width ln(1/TRUNCATION))`` (gaussian) or
        ``width + ln(1/TRUNCATION) tau_n`` (capsule).
    """
    if profile == "gaussian":
        return (width * _LOG_CUT).sqrt()
    return width + _LOG_CUT * tau_n


# ============================================================================ input checks
def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size: expected an int >= 2 (pixels per image side), got {size!r}")
    return size


def _check_segments(a, b, width, size, profile, merge, tau):
    """Validate the arguments of :func:`render_segments`; return ``(a, b, width[B, E], S, tau_n)``."""
    _check_choice("profile", profile, PROFILES)
    _check_choice("merge", merge, MERGES)
    size = _check_size(size)
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor [B, E, 2], got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != 2:
            raise ValueError(f"{name}: expected shape [B, E, 2] (x = column, y = row), got {list(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"b: shape {list(b.shape)} does not match a's {list(a.shape)} (B and E must agree)")
    if a.dtype != b.dtype or a.device != b.device:
        raise ValueError(f"b: dtype/device {b.dtype}/{b.device} differs from a's {a.dtype}/{a.device}")
    bsz, nseg = a.shape[:2]
    if not isinstance(width, torch.Tensor):
        try:
            width = torch.as_tensor(width, dtype=a.dtype, device=a.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"width: expected a number or a tensor broadcastable to [B, E], got {width!r}") from err
    if not width.is_floating_point():
        width = width.to(a.dtype)
    try:
        if width.dim() > 2 or torch.broadcast_shapes(tuple(width.shape), (bsz, nseg)) != (bsz, nseg):
            raise RuntimeError
    except RuntimeError:
        raise ValueError(f"width: shape {list(width.shape)} is not broadcastable to [B, E] = [{bsz}, {nseg}]") from None
    width = width.to(dtype=a.dtype, device=a.device).expand(bsz, nseg)
    try:
        tau = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"tau: expected a positive number of pixels, got {tau!r}") from None
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau: expected a positive, finite number of pixels, got {tau!r}")
    # one host sync for all value checks
    if a.numel() or width.numel():
        flags = torch.stack([
            torch.isfinite(a).all(), torch.isfinite(b).all(),
            torch.isfinite(width).all(), (width > 0).all()]).tolist()
        if not flags[0]:
            raise ValueError("a: contains NaN or inf")
        if not flags[1]:
            raise ValueError("b: contains NaN or inf")
        if not flags[2]:
            raise ValueError("width: contains NaN or inf")
        if not flags[3]:
            raise ValueError("width: every width must be > 0 (gaussian: sigma^2; capsule: radius)")
    return a, b, width, size, tau * 2.0 / (size - 1)


def _empty(a, b, width, size):
    """All-zero mask that is still connected to the inputs (no segments to draw)."""
    zero = (a.sum() + b.sum() + width.sum()) * 0
    return a.new_zeros(a.shape[0], 1, size, size) + zero


# ============================================================================ dense reference
def render_segments_dense(a: torch.Tensor, b: torch.Tensor, width, size: int, *, profile: str = "gaussian",
                          merge: str = "max", tau: float = 0.5) -> torch.Tensor:
    """Reference segment mask: every segment evaluated at every pixel, gradients by autograd.

    Same contract as :func:`render_segments` (read its docstring); memory and time are
    ``O(B E S^2)``. Use it to check the fast path, not to train.

    Args:
        a: ``[B, E, 2]`` segment start points, normalised crop coordinates (x = column, y = row).
        b: ``[B, E, 2]`` segment end points.
        width: ``[B, E]`` (or broadcastable) profile widths, > 0.
        size: output side ``S`` in pixels.
        profile: ``"gaussian"`` or ``"capsule"``.
        merge: ``"max"``, ``"sum"`` or ``"soft_union"``.
        tau: capsule edge softness in pixels.

    Returns:
        ``[B, 1, S, S]`` mask.
    """
    a, b, width, size, tau_n = _check_segments(a, b, width, size, profile, merge, tau)
    if a.shape[1] == 0:
        return _empty(a, b, width, size)
    xs = pixel_coords(size, dtype=a.dtype, device=a.device)
    px, py = xs.view(1, 1, 1, size), xs.view(1, 1, size, 1)
    ax, ay = a[..., 0, None, None], a[..., 1, None, None]  # [B, E, 1, 1]
    bx, by = b[..., 0, None, None], b[..., 1, None, None]
    w = width[..., None, None]
    d2 = _sq_dist(px - ax, py - ay, bx - ax, by - ay)[0]  # [B, E, S, S]
    if merge == "soft_union" and profile == "capsule":
        return -torch.expm1(_log_complement(d2, w, profile, tau_n).sum(1, keepdim=True))
    m = _profile(d2, w, profile, tau_n)
    if merge == "max":
        return m.max(dim=1, keepdim=True).values
    if merge == "sum":
        return m.sum(dim=1, keepdim=True)
    return 1.0 - torch.prod(1.0 - m, dim=1, keepdim=True)


# ============================================================================ fast path
class _Tiling:
    """Square tiles of side ``tile`` over an ``S x S`` image padded to ``n * tile`` pixels.

    The canvas is stored tile-major, ``[B * n^2, tile^2]``: row ``b * n^2 + ty * n + tx`` holds tile
    ``(ty, tx)`` of image ``b`` with its pixels in row-major order. ``xtab[k]`` / ``ytab[k]``
    (``[n, tile^2]``) are the x / y coordinates of the pixels of a tile in column / row ``k``.
    """

    def __init__(self, size: int, tile: int, dtype, device):
        self.size, self.tile = size, tile
        self.n = -(-size // tile)
        self.pad = self.n * tile
        self.npix = tile * tile
        h = 2.0 / (size - 1)
        xs = pixel_coords(size, dtype=dtype, device=device)
        if self.pad > size:  # coordinates of padding pixels (their gradient is always zero)
            xs = torch.cat([xs, 1.0 + h * torch.arange(1, self.pad - size + 1, dtype=dtype, device=device)])
        coords = xs.view(self.n, tile)
        self.centres = coords.mean(dim=1)  # [n]
        self.xtab = coords[:, None, :].expand(self.n, tile, tile).reshape(self.n, self.npix)
        self.ytab = coords[:, :, None].expand(self.n, tile, tile).reshape(self.n, self.npix)
        self.half_diag = (tile - 1) * 0.5 * h * math.sqrt(2.0) * (1.0 + 1e-6)

    def to_image(self, canvas: torch.Tensor, batch: int) -> torch.Tensor:
        """``[batch * n^2, tile^2]`` -> ``[batch, 1, S, S]``."""
        n, t, s = self.n, self.tile, self.size
        img = canvas.view(batch, n, n, t, t).permute(0, 1, 3, 2, 4).reshape(batch, self.pad, self.pad)
        return img[:, None, :s, :s].contiguous()

    def to_canvas(self, image: torch.Tensor) -> torch.Tensor:
        """``[batch, 1, S, S]`` -> ``[batch * n^2, tile^2]`` (padding pixels are 0)."""
        n, t = self.n, self.tile
        batch = image.shape[0]
        img = F.pad(image.reshape(batch, self.size, self.size), (0, self.pad - self.size, 0, self.pad - self.size))
        return img.view(batch, n, t, n, t).permute(0, 1, 3, 2, 4).reshape(batch * n * n, t * t)


class _Triples:
    """The kept (image, segment, tile) triples and their segments' parameters.

    ``row [T]``: canvas row ``b * n^2 + ty * n + tx``; ``seg [T]``: flat segment ``b * E + e``;
    ``ty, tx [T]``: tile; ``ax, ay, vx, vy, w, den [T, 1]``: start point, segment vector ``b - a``,
    width and ``|v|^2 + 1e-8``. Triples are sorted by (image, segment, tile). A triple is kept when
    the distance from its tile centre to the segment is below the segment's reach plus the tile's
    half diagonal (one vectorised test over all ``B x E x n^2``).
    """

    def __init__(self, a, b, width, tiling: _Tiling, profile: str, tau_n: float):
        bsz, nseg = a.shape[:2]
        n = tiling.n
        ax, ay = a[..., 0], a[..., 1]
        vx, vy = b[..., 0] - ax, b[..., 1] - ay
        den = vx * vx + vy * vy + _DEN_EPS
        cy, cx = tiling.centres.view(1, 1, n, 1), tiling.centres.view(1, 1, 1, n)
        e4 = (..., None, None)
        d2 = _sq_dist(cx - ax[e4], cy - ay[e4], vx[e4], vy[e4], den[e4])[0]  # [B, E, n, n]
        lim = segment_reach(width, profile, tau_n) + tiling.half_diag
        ib, ie, self.ty, self.tx = (d2 < (lim * lim)[e4]).nonzero(as_tuple=True)
        self.row = (ib * n + self.ty) * n + self.tx
        self.seg = ib * nseg + ie
        params = torch.stack([ax, ay, vx, vy, width, den], dim=-1).view(bsz * nseg, 6)[self.seg]
        self.ax, self.ay, self.vx, self.vy, self.w, self.den = params.split(1, dim=1)

    def __len__(self) -> int:
        return self.row.numel()


class _Chunk:
    """Geometry of the triples ``sl`` on their tiles' pixels: ``rx, ry`` (pixel minus start point)
    and ``d2, c, tu, t, ex, ey`` of :func:`_sq_dist`, all ``[C, tile^2]``; per-triple parameters
    ``vx, vy, w, den`` ``[C, 1]``."""

    def __init__(self, tr: _Triples, sl: slice, tiling: _Tiling):
        self.vx, self.vy, self.w, self.den = tr.vx[sl], tr.vy[sl], tr.w[sl], tr.den[sl]
        self.rx = tiling.xtab.index_select(0, tr.tx[sl]).sub_(tr.ax[sl])
        self.ry = tiling.ytab.index_select(0, tr.ty[sl]).sub_(tr.ay[sl])
        self.d2, self.c, self.tu, self.t, self.ex, self.ey = _sq_dist(self.rx, self.ry, self.vx, self.vy, self.den)


def _chunks(num: int, per: int):
    for start in range(0, num, per):
        yield slice(start, min(start + per, num))


def _index_reduce_(canvas, rows, val, how):
    with warnings.catch_warnings():  # index_reduce_ is "beta" since torch 1.13; its semantics are plain
        warnings.simplefilter("ignore", UserWarning)
        canvas.index_reduce_(0, rows, val, how, include_self=True)


def _geometry_grads(g: _Chunk, u: torch.Tensor):
    """Chain ``u = dL/d(d^2)`` per pixel ``[C, P]`` through the point-to-segment distance.

    Returns ``(grad_a, grad_b)``, each ``[C, 2]`` (summed over the chunk's pixels): what autograd
    gives for :func:`_sq_dist` with ``d^2 = |r - t v|^2``, ``t = clamp(r.v / den, 0, 1)``,
    ``r = p - a``, ``v = b - a``, ``den = |v|^2 + eps``. Where the clamp passes the gradient
    (``0 <= tu <= 1``, i.e. ``t == tu``), ``d(d^2)/dt = -2 e.v = -2 eps c / den``: tiny, but it
    matters for short segments.
    """
    ux, uy = u * g.ex, u * g.ey
    sux, suy = ux.sum(dim=1, keepdim=True), uy.sum(dim=1, keepdim=True)
    sutx, suty = (ux * g.t).sum(dim=1, keepdim=True), (uy * g.t).sum(dim=1, keepdim=True)
    q = u * g.c * (g.t == g.tu)
    sq = q.sum(dim=1, keepdim=True)
    sqc = (q * g.c).sum(dim=1, keepdim=True)
    sqrx = (q * g.rx).sum(dim=1, keepdim=True)
    sqry = (q * g.ry).sum(dim=1, keepdim=True)
    e1 = _DEN_EPS / (g.den * g.den)
    grx = 2.0 * (sux - e1 * g.vx * sq)
    gry = 2.0 * (suy - e1 * g.vy * sq)
    gvx = 2.0 * (-sutx - e1 * sqrx + 2.0 * e1 / g.den * g.vx * sqc)
    gvy = 2.0 * (-suty - e1 * sqry + 2.0 * e1 / g.den * g.vy * sqc)
    gv = torch.cat([gvx, gvy], dim=1)
    return -torch.cat([grx, gry], dim=1) - gv, gv


class _RenderSegmentsFn(torch.autograd.Function):
    """Tiled, culled segment rendering with an analytic backward (see the module docstring).

    Saves the inputs, the triple list, the merge canvas and, per kept pixel, the profile value and
    ``d^2`` (``2 T tile^2`` numbers) so that backward recomputes only the cheap geometry.
    """

    @staticmethod
    def forward(ctx, a, b, width, size, profile, merge, tau_n, tile, chunk, save):
        bsz = a.shape[0]
        tiling = _Tiling(size, tile, a.dtype, a.device)
        tr = _Triples(a, b, width, tiling, profile, tau_n)
        num, per = len(tr), max(1, chunk // tiling.npix)
        vals = a.new_empty(num, tiling.npix) if save else None
        d2s = a.new_empty(num, tiling.npix) if save else None
        canvas = a.new_zeros(bsz * tiling.n * tiling.n, tiling.npix)
        for sl in _chunks(num, per):
            g, rows = _Chunk(tr, sl, tiling), tr.row[sl]
            logc = None
            if profile == "capsule":
                s = _capsule_logit(g.d2, g.w, tau_n)
                val = torch.sigmoid(s)
                if merge == "soft_union":
                    logc = -F.softplus(s)
            else:
                val = _profile(g.d2, g.w, profile, tau_n)
                if merge == "soft_union":
                    logc = _log_complement(g.d2, g.w, profile, tau_n)
            if save:
                vals[sl], d2s[sl] = val, g.d2
            if merge == "soft_union":
                canvas.index_add_(0, rows, logc)
            elif merge == "sum":
                canvas.index_add_(0, rows, val)
            else:
                _index_reduce_(canvas, rows, val, "amax")
        out = -torch.expm1(canvas) if merge == "soft_union" else canvas
        ctx.save_for_backward(a, b, width, None if merge == "sum" else canvas, vals, d2s)
        ctx.triples, ctx.tiling = tr, tiling
        ctx.cfg = (profile, merge, tau_n, per)
        return tiling.to_image(out, bsz)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        a, b, width, canvas, vals, d2s = ctx.saved_tensors
        tr, tiling = ctx.triples, ctx.tiling
        profile, merge, tau_n, per = ctx.cfg
        num = len(tr)
        grad_rows = tiling.to_canvas(grad_out.to(a.dtype))
        ga, gb = a.new_zeros(a.shape[0] * a.shape[1], 2), a.new_zeros(a.shape[0] * a.shape[1], 2)
        gw = a.new_zeros(a.shape[0] * a.shape[1])
        if merge == "max":
            # the first triple attaining each pixel's maximum: amax of (num - id) over the hits
            first = torch.zeros(canvas.shape, dtype=torch.int32, device=a.device)
            for sl in _chunks(num, per):
                rev = num - torch.arange(sl.start, sl.stop, dtype=torch.int32, device=a.device).view(-1, 1)
                hit = vals[sl] == canvas.index_select(0, tr.row[sl])
                _index_reduce_(first, tr.row[sl], hit * rev, "amax")
        elif merge == "soft_union":
            prod = torch.exp(canvas)  # prod_k (1 - B_k) per pixel
        for sl in _chunks(num, per):
            g, rows = _Chunk(tr, sl, tiling), tr.row[sl]
            val, d2 = vals[sl], d2s[sl]
            up = grad_rows.index_select(0, rows)  # dL/d(merged mask) at each pixel
            if merge == "max":
                rev = num - torch.arange(sl.start, sl.stop, dtype=torch.int32, device=a.device).view(-1, 1)
                up = up * (first.index_select(0, rows) == rev)
            if profile == "gaussian":  # B = exp(-d2 / w)
                if merge == "soft_union":  # d out / d B_e = prod_{k != e} (1 - B_k) = prod / (1 - B_e)
                    up = up * torch.exp(canvas.index_select(0, rows) - _log_complement(d2, g.w, profile, tau_n))
                gval = up * val  # dL/dB * B
                u = gval / -g.w  # dL/d(d2)
                gwid = (gval * d2).sum(dim=1) / (g.w.view(-1) ** 2)
            else:  # B = sigmoid(s), s = (w - sqrt(d2)) / tau_n
                if merge == "soft_union":  # d out / d s_e = prod * sigmoid(s_e): stable in log space
                    gs = up * prod.index_select(0, rows) * val
                else:
                    gs = up * (val * (1.0 - val))
                gwid = gs.sum(dim=1) / tau_n
                u = gs / (-2.0 * tau_n * _safe_sqrt(d2)) * (d2 >= _D2_FLOOR)  # dL/d(d2); 0 where sqrt is floored
            da, db = _geometry_grads(g, u)
            ga.index_add_(0, tr.seg[sl], da)
            gb.index_add_(0, tr.seg[sl], db)
            gw.index_add_(0, tr.seg[sl], gwid)
        return (ga.view_as(a), gb.view_as(b), gw.view_as(width) if ctx.needs_input_grad[2] else None,
                None, None, None, None, None, None, None)


def render_segments(a: torch.Tensor, b: torch.Tensor, width, size: int, *, profile: str = "gaussian",
                    merge: str = "max", tau: float = 0.5, tile: int | None = None,
                    chunk: int = _DEFAULT_CHUNK) -> torch.Tensor:
    """Render ``E`` segments per image into one mask -- the fast path (use this one).

    Each segment is drawn with a profile of its distance ``d`` to the pixel centre, and the ``E``
    profiles are merged pixel-wise. Gradients flow to ``a``, ``b`` and ``width``. Values and
    gradients equal :func:`render_segments_dense` to 1e-5 (profile values below
    :data:`TRUNCATION` are dropped); works on any device, float32 and float64.

    Args:
        a: ``[B, E, 2]`` segment start points in normalised crop coordinates ``[-1, 1]``
            (x = column, y = row; pixel centre ``i -> 2 i / (S - 1) - 1``). Points outside the
            image are fine.
        b: ``[B, E, 2]`` segment end points (``a == b`` draws a blob / sphere).
        width: ``[B, E]`` or broadcastable (e.g. ``[E]``, a float) profile widths, > 0:
            gaussian -- ``sigma^2`` in squared normalised units, ``B = exp(-d^2 / width)``
            (authors: 0.003, arms 0.0015); capsule -- radius in normalised units,
            ``B = sigmoid((width - d) / tau_n)``.
        size: output side ``S`` in pixels (>= 2).
        profile: ``"gaussian"`` or ``"capsule"``.
        merge: ``"max"`` (authors' code), ``"sum"`` (paper) or ``"soft_union"`` (``1 - prod(1 - B)``).
        tau: capsule edge softness in **pixels** (``tau_n = tau * 2 / (S - 1)``); unused by gaussian.
        tile: tile side in pixels for culling (default 8; a performance knob only).
        chunk: pixel evaluations per processed chunk (a memory/cache knob only).

    Returns:
        ``[B, 1, S, S]`` mask, dtype and device of ``a``. Values in ``[0, 1]`` for max and
        soft union, ``[0, E]`` for sum.

    Raises:
        ValueError: naming the argument, for wrong shapes, mismatched ``B``/``E``, NaN/inf,
            non-positive widths, ``size < 2``, an unknown profile/merge or a non-positive ``tau``.

    Example:
        >>> a = torch.tensor([[[-0.5, 0.0]]]); b = torch.tensor([[[0.5, 0.0]]])
        >>> m = render_segments(a, b, 0.003, 65)  # pixel row 32 is y = 0: on the segment
        >>> m.shape, float(m[0, 0, 32, 32]), round(float(m[0, 0, 34, 32]), 3)  # 2 px = 0.0625 away
        (torch.Size([1, 1, 65, 65]), 1.0, 0.272)
    """
    a, b, width, size, tau_n = _check_segments(a, b, width, size, profile, merge, tau)
    tile = _DEFAULT_TILE if tile is None else int(tile)
    if tile < 1:
        raise ValueError(f"tile: expected an int >= 1, got {tile!r}")
    if int(chunk) < 1:
        raise ValueError(f"chunk: expected an int >= 1, got {chunk!r}")
    if a.shape[1] == 0 or a.shape[0] == 0:
        return _empty(a, b, width, size)
    save = torch.is_grad_enabled() and (a.requires_grad or b.requires_grad or width.requires_grad)
    return _RenderSegmentsFn.apply(a, b, width, size, profile, merge, tau_n, tile, int(chunk), save)


# ============================================================================ skeleton masks
def _check_joints2d(joints2d, name: str = "joints2d") -> None:
    if not isinstance(joints2d, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor [B, J, 2], got {type(joints2d).__name__}")
    if joints2d.dim() != 3 or joints2d.shape[-1] != 2:
        raise ValueError(f"{name}: expected shape [B, J, 2] (normalised x, y), got {list(joints2d.shape)}")
    if not joints2d.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {joints2d.dtype}")
    if joints2d.numel() and not bool(torch.isfinite(joints2d).all()):
        raise ValueError(f"{name}: contains NaN or inf")


def _check_w(w) -> float:
    try:
        w = float(w)
    except (TypeError, ValueError):
        raise ValueError(f"w: expected a positive number (sigma^2, squared normalised units), got {w!r}") from None
    if not (math.isfinite(w) and w > 0):
        raise ValueError(f"w: expected a positive, finite number, got {w!r}")
    return w


def _skeleton_segments(joints2d, w, joint_set: JointSet, groups, fill):
    """End points ``a = joints[child]``, ``b = joints[parent]`` ``[B, E, 2]`` and widths ``[E]``."""
    if not isinstance(joint_set, JointSet):
        raise ValueError(f"joint_set: expected a maskpose.skeleton.JointSet, got {type(joint_set).__name__}")
    _check_joints2d(joints2d)
    joint_set.check_joints(joints2d, "joints2d")
    w = _check_w(w)
    if isinstance(groups, str):
        groups = (groups,)
    try:
        bones = joint_set.select_bones(groups, fill=fill)
    except KeyError as err:
        raise ValueError(f"groups: {err.args[0]}") from None
    child, parent = joint_set.bone_index_arrays(bones)
    child, parent = child.to(joints2d.device), parent.to(joints2d.device)
    width = torch.tensor([w * bone.width ** 2 for bone in bones], dtype=joints2d.dtype, device=joints2d.device)
    return joints2d[:, child], joints2d[:, parent], width


def skeleton_mask(joints2d: torch.Tensor, size: int, *, w: float = 0.003, merge: str = "max",
                  joint_set: JointSet = _skeleton.DEFAULT, groups: Iterable[str] | None = None,
                  fill: bool = True) -> torch.Tensor:
    """The authors' skeleton mask: Gaussian lines along the bones of a joint set (fast path).

    Each selected bone ``child -> parent`` is drawn with ``exp(-d^2 / (w * bone.width^2))``
    (arms have ``bone.width = 1/sqrt(2)``, i.e. ``w / 2``) and the lines are merged by ``merge``.

    Args:
        joints2d: ``[B, J, 2]`` joints in normalised crop coordinates (x = column, y = row),
            ``J = joint_set.num_joints``.
        size: output side ``S`` in pixels.
        w: ``sigma^2`` in squared normalised units (authors: 0.003 at S = 256).
        merge: ``"max"`` (authors' code), ``"sum"`` (paper) or ``"soft_union"``.
        joint_set: the joint set (default H36M-18).
        groups: bone groups to draw (e.g. ``("torso", "leg", "head")`` for cascade stage 1);
            ``None`` draws all. Fill links are selected by the same groups.
        fill: also draw the joint set's fill links (the authors' 8 torso/hip links).

    Returns:
        ``[B, 1, S, S]`` mask.
    """
    a, b, width = _skeleton_segments(joints2d, w, joint_set, groups, fill)
    return render_segments(a, b, width, size, profile="gaussian", merge=merge)


def skeleton_mask_dense(joints2d: torch.Tensor, size: int, *, w: float = 0.003, merge: str = "max",
                        joint_set: JointSet = _skeleton.DEFAULT, groups: Iterable[str] | None = None,
                        fill: bool = True) -> torch.Tensor:
    """:func:`skeleton_mask` through the dense reference renderer (same arguments and result)."""
    a, b, width = _skeleton_segments(joints2d, w, joint_set, groups, fill)
    return render_segments_dense(a, b, width, size, profile="gaussian", merge=merge)


def gaussian_joint_mask(joints2d: torch.Tensor, size: int, *, w: float = 0.003, merge: str = "max") -> torch.Tensor:
    """The paper's Eq. 3 baseline: one Gaussian blob ``exp(-|p - j|^2 / w)`` per joint (fast path).

    Args:
        joints2d: ``[B, J, 2]`` joints in normalised crop coordinates (any ``J``).
        size: output side ``S`` in pixels.
        w: ``sigma^2`` in squared normalised units.
        merge: ``"max"``, ``"sum"`` or ``"soft_union"``.

    Returns:
        ``[B, 1, S, S]`` mask (1 at a joint that sits on a pixel centre, for max).
    """
    _check_joints2d(joints2d)
    w = _check_w(w)
    return render_segments(joints2d, joints2d, w, size, profile="gaussian", merge=merge)


def gaussian_joint_mask_dense(joints2d: torch.Tensor, size: int, *, w: float = 0.003, merge: str = "max") -> torch.Tensor:
    """:func:`gaussian_joint_mask` through the dense reference renderer."""
    _check_joints2d(joints2d)
    w = _check_w(w)
    return render_segments_dense(joints2d, joints2d, w, size, profile="gaussian", merge=merge)
