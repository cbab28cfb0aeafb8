"""Temporal smoothing of predicted joint trajectories ``[T, J, 3]`` (off by default in ``predict``).

Two filters, both per coordinate and both NaN-aware (a NaN marks an unknown value; it stays NaN):

* :func:`one_euro` — the One-Euro filter (Casiez, Roussel & Vogel, CHI 2012): an exponential
  low-pass whose cutoff rises with the filtered speed, ``cutoff = min_cutoff + beta |dx/dt|``, so it
  smooths slow motion strongly and lags little on fast motion. Causal (usable online). A NaN resets
  the filter of that coordinate; the next finite value starts it again.
* :func:`butterworth` — a zero-phase Butterworth low-pass (``scipy.signal.butter`` in second-order
  sections, run forward and backward with ``sosfiltfilt``): no lag, the standard choice for
  offline motion capture (6 Hz is a common cutoff for gait). Each finite run of a coordinate is
  filtered on its own; runs too short for the filter's edge padding are left as they are.

:func:`smooth` dispatches by name. Units: joints in mm, times in seconds, cutoffs in Hz, ``beta`` in
1 / mm (the One-Euro cutoff gains ``beta`` Hz per mm/s of speed).
"""
from __future__ import annotations

import math

import numpy as np

METHODS = ("oneeuro", "butterworth")


class SmoothingError(ValueError):
    """Bad smoothing parameters or input."""


def _check_joints(joints: np.ndarray) -> np.ndarray:
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim < 1 or x.shape[0] < 1:
        raise SmoothingError(f"smoothing: expected a trajectory [T, ...] with T >= 1, got shape {list(x.shape)}")
    if np.isinf(x).any():
        raise SmoothingError("smoothing: trajectory contains inf (use NaN for unknown values)")
    return x


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of an exponential filter with ``cutoff`` Hz at time step ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


def one_euro(joints: np.ndarray, fps: float, *, min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0,
             timestamps: np.ndarray | None = None) -> np.ndarray:
    """One-Euro filter of a trajectory ``joints [T, ...]`` sampled at ``fps`` (or at ``timestamps [T]`` s).

    Per coordinate: ``dx = (x_t - x̂_{t-1}) / dt`` low-passed at ``d_cutoff`` Hz gives ``dx̂``; the
    value is low-passed at ``min_cutoff + beta |dx̂|`` Hz. NaN entries stay NaN and reset that
    coordinate's filter. Returns an array of the input's shape (float64).
    """
    x = _check_joints(joints)
    if not (min_cutoff > 0 and d_cutoff > 0 and beta >= 0):
        raise SmoothingError(f"one_euro: need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, {d_cutoff}, {beta}")
    T = x.shape[0]
    if timestamps is None:
        if not fps or fps <= 0:
            raise SmoothingError(f"one_euro: fps must be > 0, got {fps!r}")
        dts = np.full(T, 1.0 / fps)
    else:
        ts = np.asarray(timestamps, dtype=np.float64)
        if ts.shape != (T,) or np.any(np.diff(ts) <= 0):
            raise SmoothingError("one_euro: timestamps must be [T] and strictly increasing")
        dts = np.concatenate([[1.0], np.diff(ts)])
    flat = x.reshape(T, -1)
    out = np.full_like(flat, np.nan)
    prev = np.full(flat.shape[1], np.nan)   # x̂_{t-1}; NaN = filter not started
    dprev = np.zeros(flat.shape[1])          # dx̂_{t-1}
    for t in range(T):
        cur = flat[t]
        ok = np.isfinite(cur)
        started = ok & np.isfinite(prev)
        dt = dts[t]
        dx = np.where(started, (cur - np.where(started, prev, 0.0)) / dt, 0.0)
        a_d = _alpha(d_cutoff, dt)
        dhat = np.where(started, a_d * dx + (1.0 - a_d) * dprev, 0.0)
        a = _alpha(min_cutoff + beta * np.abs(dhat), dt)
        val = np.where(started, a * cur + (1.0 - a) * np.where(started, prev, 0.0), cur)
        out[t] = np.where(ok, val, np.nan)
        prev = np.where(ok, val, np.nan)     # a NaN resets the filter
        dprev = np.where(ok, dhat, 0.0)
    return out.reshape(x.shape)


def finite_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` half-open index ranges of the True runs of a 1D boolean ``mask``."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    stops = np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), stops.tolist()))


def butterworth(joints: np.ndarray, fps: float, *, cutoff: float = 6.0, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass of ``joints [T, ...]`` sampled at ``fps`` Hz.

    ``order`` is the order of the designed filter; running it forward and backward doubles the
    attenuation and cancels the phase (no lag). Each finite run of each coordinate is filtered
    separately; NaN stays NaN, and runs shorter than ``min_run_length(order)`` samples are
    returned unchanged. ``cutoff`` must be below the Nyquist frequency ``fps / 2``.
    """
    from scipy.signal import butter, sosfiltfilt

    x = _check_joints(joints)
    if not fps or fps <= 0:
        raise SmoothingError(f"butterworth: fps must be > 0, got {fps!r}")
    if not 0 < cutoff < fps / 2:
        raise SmoothingError(f"butterworth: cutoff must be in (0, fps/2 = {fps / 2:g}) Hz, got {cutoff!r} "
                             f"(lower the cutoff, or smooth with oneeuro)")
    if int(order) < 1:
        raise SmoothingError(f"butterworth: order must be >= 1, got {order}")
    sos = butter(int(order), cutoff, btype="low", fs=fps, output="sos")
    padlen = _padlen(sos)
    T = x.shape[0]
    flat = x.reshape(T, -1)
    out = flat.copy()
    for c in range(flat.shape[1]):
        for s, e in finite_runs(np.isfinite(flat[:, c])):
            if e - s > padlen:
                out[s:e, c] = sosfiltfilt(sos, flat[s:e, c], padlen=padlen)
    return out.reshape(x.shape)


def _padlen(sos: np.ndarray) -> int:
    """``sosfiltfilt``'s default edge padding for ``sos`` (a run must be longer than this)."""
    n = 2 * sos.shape[0] + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * n


def min_run_length(order: int = 4) -> int:
    """Shortest finite run (samples) that :func:`butterworth` filters for a filter of ``order``."""
    from scipy.signal import butter

    return _padlen(butter(int(order), 0.1, output="sos")) + 1


def smooth(joints: np.ndarray, fps: float, method: str = "oneeuro", **params) -> np.ndarray:
    """Smooth ``joints [T, J, 3]`` (any ``[T, ...]``) with ``method`` = ``"oneeuro"`` (params
    ``min_cutoff``, ``beta``, ``d_cutoff``, ``timestamps``) or ``"butterworth"`` (``cutoff``, ``order``)."""
    allowed = {"oneeuro": ("min_cutoff", "beta", "d_cutoff", "timestamps"), "butterworth": ("cutoff", "order")}
    if method not in allowed:
        raise SmoothingError(f"unknown smoothing method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = sorted(set(params) - set(allowed[method]))
    if unknown:
        raise SmoothingError(f"smoothing method {method!r} has no parameter(s) {', '.join(unknown)}; "
                             f"it takes {', '.join(allowed[method])}")
    if method == "oneeuro":
        return one_euro(joints, fps, **params)
    return butterworth(joints, fps, **params)


__all__ = ["METHODS", "SmoothingError", "butterworth", "finite_runs", "min_run_length", "one_euro", "smooth"]
