"""Shape labels that a blur does not change: ball, square or ring from blur-invariant moments.

The parser's first label comes from the normalised second moment m2 / area², which any
softening raises: a Gaussian blur of 0.5 px on an exact 32-px ball adds 2σ²/area, about
10% for a 3-px ball, past a square's moment (4.6% above a ball's), so a physically perfect
but slightly soft rollout reads as a square in almost every frame (docs/results.md). Two
moments of the membership image are unchanged by any isotropic blur (Flusser & Suk's blur
invariants; with complex moments ``c_pq = mean (z - z̄)^p conj(z - z̄)^q`` over the object's
membership, ``c_pq(f * g) = sum C(p,k) C(q,l) c_kl(f) c_{p-k,q-l}(g)`` and ``c_pq(g) = 0``
for p != q when g is isotropic):

* ``q4 = |c_40| / area²``, the 4-fold harmonic: 0 for a ball or ring, 1/60 for a square
  (any rotation);
* ``k = (c_22 - 2 c_11²) / area²``, the radial kurtosis: -1/(6π²) = -0.0169 for a ball,
  -1/60 for a square, -(1 + 4κ² + κ⁴) / (6π²(1 - κ²)²) = -0.106 for a ring of inner radius
  κ = 0.6.

Measured on exact 32-px renders, blurred by σ = 0, 0.5, 0.8 px: balls q4 <= 0.0024, squares
0.013-0.017, rings k -0.104 to -0.113 (docs/results.md). A label is given only where the
object is in view (clear of the frame border) and its equal-area radius is at least
``MIN_RADIUS_PX``.
"""

from __future__ import annotations

import numba
import numpy as np

from physim import world

SQUARE_Q4 = 1.0 / 120.0  # halfway between a ball's 0 and a square's 1/60
RING_K = -0.06  # between a ball's -0.017 and a ring's -0.106
MIN_RADIUS_PX = 1.5  # equal-area disc radius below which no label is given (balls of
# 1.2-1.4 px were misread in 17-20% of frames, 1.6 px in none)
REACH, MARGIN_PX = 1.3, 2  # membership counted within REACH * radius + MARGIN_PX
WORLD_SIZE = float(world.WORLD_SIZE)
BALL, SQUARE, RING = (world.shape_code(x) for x in ("ball", "square", "ring"))
_BINOM = np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 2, 1, 0, 0], [1, 3, 3, 1, 0],
                   [1, 4, 6, 4, 1]], np.float64)  # C(p, i)


def invariants(w: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q4, k)`` (F,) of membership images ``w`` (F, H, W) at pixel centres ``ys``, ``xs``
    (H, W); NaN where a window holds no membership."""
    a = w.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (w * xs).sum(axis=(1, 2)) / a
        my = (w * ys).sum(axis=(1, 2)) / a
        z = (xs[None] - mx[:, None, None]) + 1j * (ys[None] - my[:, None, None])
        r2 = z.real**2 + z.imag**2
        c11 = (w * r2).sum(axis=(1, 2)) / a
        c22 = (w * r2 * r2).sum(axis=(1, 2)) / a
        c40 = (w * z**4).sum(axis=(1, 2)) / a
        return np.abs(c40) / a**2, (c22 - 2.0 * c11 * c11) / a**2


@numba.njit(cache=True)
def _code(q4: float, k: float) -> int:
    """Shape code (:data:`physim.world.SHAPES`) from the invariants; -1 where NaN."""
    if np.isnan(q4) or np.isnan(k):
        return -1
    if k < RING_K:
        return RING
    return SQUARE if q4 > SQUARE_Q4 else BALL


@numba.njit(cache=True)
def _window_invariants(frames, t_idx, cx, cy, reach, bg, col, bg_tol, res_tol2, q4, kurt):
    """``q4``, ``k`` of one object in frames ``t_idx`` (module doc): membership of each
    pixel within ``reach`` px of the centre (``cx``, ``cy``, pixels), from its projection
    on the background-to-colour segment; pixels off the segment (further than
    sqrt(res_tol2)) or within ``bg_tol`` of the background count zero. Pixels outside the
    frame are background. One pass of raw moments about the given centre, shifted to the
    centroid at the end. Writes q4[j], kurt[j] (NaN without membership)."""
    res = frames.shape[1]
    e0, e1, e2 = bg[0] - col[0], bg[1] - col[1], bg[2] - col[2]
    ee = e0 * e0 + e1 * e1 + e2 * e2
    m = np.zeros((5, 5))  # m[p, q] = sum w u^p v^q, p + q <= 4
    mu = np.zeros((5, 5))
    for j in range(t_idx.shape[0]):
        t, r = t_idx[j], reach[j]
        m[:] = 0.0
        ya, yb = max(int(np.floor(cy[j] - r)), 0), min(int(np.ceil(cy[j] + r)) + 1, res)
        for y in range(ya, yb):
            v = y + 0.5 - cy[j]
            half = r * r - v * v
            if half < 0.0:
                continue
            half = np.sqrt(half)
            xa = max(int(np.ceil(cx[j] - half - 0.5)), 0)
            xb = min(int(np.floor(cx[j] + half - 0.5)) + 1, res)
            for x in range(xa, xb):
                d0 = bg[0] - frames[t, y, x, 0]
                d1 = bg[1] - frames[t, y, x, 1]
                d2 = bg[2] - frames[t, y, x, 2]
                if max(abs(d0), abs(d1), abs(d2)) <= bg_tol:
                    continue
                w = (d0 * e0 + d1 * e1 + d2 * e2) / ee
                if w <= 0.0:
                    continue
                w = min(w, 1.0)
                f0, f1, f2 = d0 - w * e0, d1 - w * e1, d2 - w * e2
                if f0 * f0 + f1 * f1 + f2 * f2 > res_tol2:
                    continue
                u = x + 0.5 - cx[j]
                wu = w
                for p in range(5):
                    wv = wu
                    for q in range(5 - p):
                        m[p, q] += wv
                        wv *= v
                    wu *= u
        a = m[0, 0]
        if a <= 0.0:
            q4[j] = np.nan
            kurt[j] = np.nan
            continue
        ax, ay = m[1, 0] / a, m[0, 1] / a  # centroid about the given centre
        for p in range(5):  # central moments mu[p, q] (means) by the binomial shift
            for q in range(5 - p):
                acc = 0.0
                for i in range(p + 1):
                    for k in range(q + 1):
                        acc += (_BINOM[p, i] * _BINOM[q, k] * (-ax) ** (p - i) * (-ay) ** (q - k)
                                * m[i, k])
                mu[p, q] = acc / a
        c11 = mu[2, 0] + mu[0, 2]
        c22 = mu[4, 0] + 2.0 * mu[2, 2] + mu[0, 4]
        re = mu[4, 0] - 6.0 * mu[2, 2] + mu[0, 4]
        im = 4.0 * (mu[3, 1] - mu[1, 3])
        q4[j] = np.sqrt(re * re + im * im) / (a * a)
        kurt[j] = (c22 - 2.0 * c11 * c11) / (a * a)


def blur_invariant_shapes(frames, positions, areas, in_view, colors, background, *,
                          bg_tol: float, res_tol: float, skip=None) -> np.ndarray:
    """Per-frame shape codes of each object, -2 where none is given (see module doc).

    Args:
      frames: (T, R, R, 3) uint8.
      positions: (T, N, 2) parsed centres, world units (y up), NaN where not visible.
      areas: (T, N) parsed membership areas (world units²): the object's window reaches
        ``REACH`` times its equal-area disc radius plus ``MARGIN_PX`` from the centre (a
        square's corner and a ring's rim lie within 1.25 of it).
      in_view: (T, N) bool, visible and clear of the frame border (only these get a label).
      colors: (N, 3) object colours; background: (3,) its colour.
      bg_tol: per-channel deviation from the background still called background.
      res_tol: RGB distance (0-255) of a pixel from the background-colour segment beyond
        which it is not this object's (another object, noise).
      skip: (N,) bool, objects to leave alone (colours shared with another object).
    Returns:
      (T, N) int32 codes; -2 where the object is too small or not in view.
    """
    frames = np.ascontiguousarray(frames)
    n = positions.shape[1]
    skip = np.zeros(n, bool) if skip is None else np.asarray(skip, bool)
    out = np.full(in_view.shape, -2, dtype=np.int32)
    _label_video(frames, np.asarray(positions, np.float64), np.asarray(areas, np.float64),
                 np.asarray(in_view, bool), np.asarray(colors, np.float64),
                 np.asarray(background, np.float64), skip, float(bg_tol),
                 float(res_tol) ** 2, out)
    return out


@numba.njit(cache=True)
def _label_video(frames, positions, areas, in_view, colors, bg, skip, bg_tol, res_tol2, out):
    """:func:`blur_invariant_shapes` for one video, all objects (writes ``out``)."""
    t_n, res = frames.shape[0], frames.shape[1]
    s = res / WORLD_SIZE
    for i in range(positions.shape[1]):
        if skip[i]:
            continue
        t_idx = np.empty(t_n, np.int64)
        m = 0
        for t in range(t_n):
            r = np.sqrt(areas[t, i] / np.pi) * s  # equal-area disc radius, pixels
            if in_view[t, i] and np.isfinite(r) and r >= MIN_RADIUS_PX:
                t_idx[m] = t
                m += 1
        if m == 0:
            continue
        t_idx = t_idx[:m]
        cx, cy, reach = np.empty(m), np.empty(m), np.empty(m)
        for j in range(m):
            t = t_idx[j]
            cx[j] = positions[t, i, 0] * s
            cy[j] = res - positions[t, i, 1] * s
            reach[j] = REACH * np.sqrt(areas[t, i] / np.pi) * s + MARGIN_PX
        q4, kurt = np.empty(m), np.empty(m)
        _window_invariants(frames, t_idx, cx, cy, reach, bg, colors[i], bg_tol, res_tol2,
                           q4, kurt)
        for j in range(m):
            out[t_idx[j], i] = _code(q4[j], kurt[j])
