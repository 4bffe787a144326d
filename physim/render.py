"""Anti-aliased rasterizer: body geometry and poses in, uint8 video frames out.

Each pixel gets, from every primitive, its exact covered area fraction ``a`` and is blended
as ``pixel + (colour - pixel) * a`` (rounded half up), so a rendered ball's colour-weighted
centroid and area are those of the true disc. Circles and rings use the closed-form area of
a disc cut by a pixel's corner lines (one ``asin`` per row and column line of the bounding
box, none per pixel); a convex polygon is clipped to each pixel row and its piecewise-linear
height profile integrated over each pixel's columns. Only a primitive's bounding box is
visited and only pixels its boundary crosses get exact coverage; covered runs are filled
directly. Arithmetic is plain float64 (no fastmath, no threads), so frames are
bit-identical across runs and processes.

Coordinates follow :mod:`physim.world`: world ``(x, y)`` maps to continuous pixel
``col = x / 10 * R``, ``row = (10 - y) / 10 * R``; pixel ``(row, col)`` covers
``[row, row + 1) × [col, col + 1)``.

A scene's drawing is a :class:`Geometry` table of primitives (circle, ring, convex
polygon), each attached to a body whose pose (position, angle) moves it::

    geom = Geometry.from_objects(objects)                        # one primitive per object
    frames = render_bodies(geom, positions, angles, resolution=128)  # (T, R, R, 3) uint8
"""

from __future__ import annotations

import math
import sys
import types

import numba
import numpy as np

from physim import world
from physim.geometry import CIRCLE, POLYGON, RING, Geometry

__all__ = ["CIRCLE", "POLYGON", "RING", "Geometry", "render", "render_bodies", "render_into"]

_WS = world.WORLD_SIZE
_SEG = 0.25 * math.pi  # ∫_0^r sqrt(r² - t²) dt = _SEG * r²


# --------------------------------------------------------------------------- numba kernels


@numba.njit(cache=True)
def _seg(t, r):
    """∫_0^t sqrt(r² - τ²) dτ with t clipped to [-r, r]."""
    if t >= r:
        return _SEG * r * r
    if t <= -r:
        return -_SEG * r * r
    return 0.5 * (t * math.sqrt(r * r - t * t) + r * r * math.asin(t / r))


@numba.njit(cache=True)
def _quadrant(x, y, r, w, sw, sx):
    """Area of the centred disc of radius r with X < x and Y < y (px²).

    Precomputed: ``w = sqrt(r² - y²)`` (negative when |y| >= r), ``sw = _seg(w, r)`` and
    ``sx = _seg(x, r)``, so no transcendental function is evaluated per pixel.
    """
    ay = abs(y)
    low = 0.0  # area with X < x and Y < -|y|: ∫_{-w}^{min(x, w)} (sqrt(r² - t²) - |y|) dt
    if w >= 0.0 and x > -w:
        if x < w:
            low = -ay * (x + w) + sx + sw
        else:
            low = -2.0 * ay * w + 2.0 * sw
    if y <= 0.0:
        return low
    return 2.0 * sx + 2.0 * _SEG * r * r - low  # area with X < x, minus the part below -y


@numba.njit(cache=True)
def _round_tables(cu, cv, r, c_lo, c_hi, r_lo, r_hi, tab, k):
    """Fill tab[k] with _seg(c - cu) for columns c_lo..c_hi, tab[k + 2] with w and
    tab[k + 4] with _seg(w) for lines r_lo..r_hi (see :func:`_quadrant`)."""
    for c in range(c_lo, c_hi + 1):
        tab[k, c - c_lo] = _seg(c - cu, r)
    for ln in range(r_lo, r_hi + 1):
        y = ln - cv
        w = math.sqrt(r * r - y * y) if abs(y) < r else -1.0
        tab[k + 2, ln - r_lo] = w
        tab[k + 4, ln - r_lo] = _seg(w, r) if w >= 0.0 else 0.0


@numba.njit(cache=True)
def _disc_cols(cu, y0, r, w):
    """Column ranges of a disc (centre column cu, radius r px) on the band [y0, y0 + 1)
    relative to its centre row: [e0, e1) columns it touches, [f0, f1) columns it fills."""
    y1 = y0 + 1.0
    lo = 0.0 if y0 < 0.0 < y1 else min(abs(y0), abs(y1))
    hi = max(abs(y0), abs(y1))
    if r <= 0.0 or lo >= r:
        return 0, 0, 0, 0
    smax = math.sqrt(r * r - lo * lo)
    e0 = int(min(max(math.floor(cu - smax), 0.0), w))
    e1 = int(min(max(math.ceil(cu + smax), 0.0), w))
    if hi >= r:
        return e0, e1, 0, 0
    smin = math.sqrt(r * r - hi * hi)
    f0 = int(min(max(math.ceil(cu - smin), 0.0), w))
    f1 = int(min(max(math.floor(cu + smin), 0.0), w))
    return e0, e1, f0, max(f0, f1)


@numba.njit(cache=True)
def _blend(o, c, a):
    """Channel value o (uint8) covered by colour c (uint8) with coverage a in [0, 1]."""
    a = min(max(a, 0.0), 1.0)
    return np.uint8(int(float(o) + (float(c) - float(o)) * a + 0.5))


@numba.njit(cache=True)
def _draw_round(img, cov, direct, cu, cv, r_out, r_in, col, tab):
    """Disc (r_in = 0) or annulus, centre (cu, cv) and radii in pixels; returns its rows."""
    h, w = img.shape[0], img.shape[1]
    r0 = int(min(max(math.floor(cv - r_out), 0.0), h))
    r1 = int(min(max(math.ceil(cv + r_out), 0.0), h))
    c0 = int(min(max(math.floor(cu - r_out), 0.0), w))
    c1 = int(min(max(math.ceil(cu + r_out), 0.0), w))
    if r0 >= r1 or c0 >= c1:
        return r0, r0
    _round_tables(cu, cv, r_out, c0, c1, r0, r1, tab, 0)
    if r_in > 0.0:
        _round_tables(cu, cv, r_in, c0, c1, r0, r1, tab, 1)
    for r in range(r0, r1):
        i, ya, yb = r - r0, r - cv, r + 1.0 - cv
        wa, sa, wb, sb = tab[2, i], tab[4, i], tab[2, i + 1], tab[4, i + 1]
        ia, ja, ib, jb = tab[3, i], tab[5, i], tab[3, i + 1], tab[5, i + 1]
        e0, e1, f0, f1 = _disc_cols(cu, ya, r_out, w)
        h0, h1, g0, g1 = _disc_cols(cu, ya, r_in, w)  # [g0, g1) inside the hole
        last_c, last = -1, 0.0  # band area left of column last_c
        for c in range(e0, e1):
            if g0 <= c < g1 or (f0 <= c < f1 and not (h0 <= c < h1)):
                continue  # hole, or fully covered (filled below)
            for x in range(c, c + 2):  # band area left of x = outer - inner
                if x == last_c:
                    continue
                u, sx, si = x - cu, tab[0, x - c0], tab[1, x - c0]
                v = _quadrant(u, yb, r_out, wb, sb, sx) - _quadrant(u, ya, r_out, wa, sa, sx)
                if r_in > 0.0:
                    v -= _quadrant(u, yb, r_in, ib, jb, si) - _quadrant(u, ya, r_in, ia, ja, si)
                if x == c:
                    last = v
                elif direct:
                    for ch in range(3):
                        img[r, c, ch] = _blend(img[r, c, ch], col[ch], v - last)
                    last_c, last = x, v
                else:
                    cov[r, c] += v - last
                    last_c, last = x, v
        for a, b in ((f0, min(f1, h0)), (max(f0, h1), f1)):  # fully covered runs
            if direct:
                for c in range(a, b):
                    img[r, c, 0], img[r, c, 1], img[r, c, 2] = col[0], col[1], col[2]
            else:
                for c in range(a, b):
                    cov[r, c] += 1.0
    return r0, r1


@numba.njit(cache=True)
def _clip(su, sv, n, du, dv, axis, bound, keep_less):
    """Sutherland–Hodgman: clip polygon (su, sv)[:n] to the half-plane coord <= bound
    (keep_less) or >= bound; writes (du, dv), returns the new vertex count."""
    m = 0
    for i in range(n):
        j = i + 1 if i + 1 < n else 0
        pc = su[i] if axis == 0 else sv[i]
        qc = su[j] if axis == 0 else sv[j]
        pin = pc <= bound if keep_less else pc >= bound
        qin = qc <= bound if keep_less else qc >= bound
        if pin:
            du[m], dv[m] = su[i], sv[i]
            m += 1
        if pin != qin:
            f = (bound - pc) / (qc - pc)
            if axis == 0:
                du[m], dv[m] = bound, sv[i] + f * (sv[j] - sv[i])
            else:
                du[m], dv[m] = su[i] + f * (su[j] - su[i]), bound
            m += 1
    return m


@numba.njit(cache=True)
def _profile(u, v, m, xs, hs, cum):
    """Height profile of a convex polygon (u, v)[:m]: its vertical extent hs at the sorted
    distinct vertex abscissae xs (linear in between) and the area cum left of each.
    Returns the number of breakpoints k."""
    k = 0
    for i in range(m):  # insertion sort of the distinct u
        x, j = u[i], k
        while j > 0 and xs[j - 1] > x:
            j -= 1
        if j > 0 and xs[j - 1] == x:
            continue
        for q in range(k, j, -1):
            xs[q] = xs[q - 1]
        xs[j] = x
        k += 1
    for q in range(k):
        x, lo, hi = xs[q], np.inf, -np.inf
        for i in range(m):
            j = i + 1 if i + 1 < m else 0
            a, b = u[i], u[j]
            if a == x:
                lo, hi = min(lo, v[i]), max(hi, v[i])
            elif min(a, b) < x < max(a, b):
                y = v[i] + (x - a) / (b - a) * (v[j] - v[i])
                lo, hi = min(lo, y), max(hi, y)
        hs[q] = hi - lo
        cum[q] = 0.0 if q == 0 else cum[q - 1] + 0.5 * (hs[q - 1] + hs[q]) * (x - xs[q - 1])
    return k


@numba.njit(cache=True)
def _line_span(u, v, n, y):
    """Min and max u of the clipped polygon's vertices lying on the line v = y."""
    lo, hi = np.inf, -np.inf
    for i in range(n):
        if v[i] == y:
            lo, hi = min(lo, u[i]), max(hi, u[i])
    return lo, hi


@numba.njit(cache=True)
def _draw_poly(img, cov, direct, pu, pv, n, col, buf):
    """Convex polygon with pixel vertices (pu, pv)[:n]; returns its row range.

    Each row band clips the polygon (exactly) and integrates its piecewise-linear height
    profile, so a pixel's coverage is the profile's integral over the pixel's columns.
    """
    h, w = img.shape[0], img.shape[1]
    au, av, bu, bv, xs, hs, cum = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6]
    vmin, vmax = pv[:n].min(), pv[:n].max()
    r0 = int(min(max(math.floor(vmin), 0.0), h))
    r1 = int(min(max(math.ceil(vmax), 0.0), h))
    for r in range(r0, r1):
        m = _clip(pu, pv, n, au, av, 1, float(r), False)
        m = _clip(au, av, m, bu, bv, 1, float(r + 1), True)
        if m < 3:
            continue
        k = _profile(bu, bv, m, xs, hs, cum)
        if k < 2:
            continue
        e0 = int(min(max(math.floor(xs[0]), 0.0), w))
        e1 = int(min(max(math.ceil(xs[k - 1]), 0.0), w))
        f0 = f1 = 0
        if vmin <= r and vmax >= r + 1:  # left edge is convex in v, right concave: check ends
            a0, b0 = _line_span(bu, bv, m, float(r))
            a1, b1 = _line_span(bu, bv, m, float(r + 1))
            f0 = int(min(max(math.ceil(max(a0, a1)), 0.0), w))
            f1 = max(f0, int(min(max(math.floor(min(b0, b1)), 0.0), w)))
        q, last_c, last = 0, -1, 0.0  # profile segment; band area left of column last_c
        for c in range(e0, e1):
            if f0 <= c < f1:
                continue  # fully covered, filled below
            for x in range(c, c + 2):  # band area left of x, from the height profile
                if x == last_c:
                    continue
                if x <= xs[0]:
                    v = 0.0
                elif x >= xs[k - 1]:
                    v = cum[k - 1]
                else:
                    while xs[q + 1] <= x:
                        q += 1
                    t = x - xs[q]
                    v = cum[q] + t * (hs[q] + 0.5 * (hs[q + 1] - hs[q]) * t / (xs[q + 1] - xs[q]))
                if x == c:
                    last = v
                elif direct:
                    for ch in range(3):
                        img[r, c, ch] = _blend(img[r, c, ch], col[ch], v - last)
                    last_c, last = x, v
                else:
                    cov[r, c] += v - last
                    last_c, last = x, v
        if direct:
            for c in range(f0, f1):
                img[r, c, 0], img[r, c, 1], img[r, c, 2] = col[0], col[1], col[2]
        else:
            for c in range(f0, f1):
                cov[r, c] += 1.0
    return r0, r1


@numba.njit(cache=True)
def _render_kernel(out, kind, body, params, verts, vstart, vcount, colors, layer_end, pos, ang, bg):
    n_t, h, w = out.shape[0], out.shape[1], out.shape[2]
    scale = w / _WS
    flat = out.reshape(out.size)
    if bg[0] == bg[1] and bg[1] == bg[2]:
        flat[:] = bg[0]
    else:
        for i in range(0, out.size, 3):
            flat[i], flat[i + 1], flat[i + 2] = bg[0], bg[1], bg[2]
    cov = np.zeros((h, w))  # coverage of multi-primitive layers
    nv = (vcount.max() if vcount.size else 0) + 8
    pu, pv = np.empty(nv), np.empty(nv)  # posed polygon
    buf = np.empty((7, nv))  # polygon scratch, see _draw_poly
    tab = np.empty((6, max(h, w) + 2))  # disc tables, see _round_tables
    n_p = kind.shape[0]
    for t in range(n_t):
        img = out[t]
        p = 0
        while p < n_p:
            end = layer_end[p]
            direct = end - p == 1
            lo, hi = h, 0
            for q in range(p, end):
                b = body[q]
                x, y, th = pos[t, b, 0], pos[t, b, 1], ang[t, b]
                cs, sn = math.cos(th), math.sin(th)
                if kind[q] == POLYGON:
                    s0, n = vstart[q], vcount[q]
                    for i in range(n):
                        lx, ly = verts[s0 + i, 0], verts[s0 + i, 1]
                        pu[i] = (x + cs * lx - sn * ly) * scale
                        pv[i] = (_WS - (y + sn * lx + cs * ly)) * scale
                    r0, r1 = _draw_poly(img, cov, direct, pu, pv, n, colors[q], buf)
                else:
                    lx, ly = params[q, 0], params[q, 1]
                    cu = (x + cs * lx - sn * ly) * scale
                    cv = (_WS - (y + sn * lx + cs * ly)) * scale
                    r_in = params[q, 3] * scale if kind[q] == RING else 0.0
                    r_out = params[q, 2] * scale
                    r0, r1 = _draw_round(img, cov, direct, cu, cv, r_out, r_in, colors[q], tab)
                lo, hi = min(lo, r0), max(hi, r1)
            if not direct:  # blend the layer's summed coverage, then clear it
                for r in range(lo, hi):
                    for c in range(w):
                        if cov[r, c] > 0.0:
                            for ch in range(3):
                                img[r, c, ch] = _blend(img[r, c, ch], colors[p, ch], cov[r, c])
                            cov[r, c] = 0.0
            p = end


# --------------------------------------------------------------------------- public API


def _check_resolution(resolution) -> int:
    if not isinstance(resolution, int | np.integer) or isinstance(resolution, bool):
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    if resolution <= 0:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    return int(resolution)


def _check_inputs(geometry, positions, angles, background):
    if not isinstance(geometry, Geometry):
        raise ValueError(f"geometry must be a Geometry, got {type(geometry).__name__}")
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[2] != 2 or pos.shape[1] < geometry.n_bodies:
        raise ValueError(
            f"positions must be (T, B, 2) with B >= {geometry.n_bodies} bodies, got {pos.shape}"
        )
    if angles is None:
        ang = np.zeros(pos.shape[:2])
    else:
        ang = np.ascontiguousarray(angles, dtype=np.float64)
        if ang.shape != pos.shape[:2]:
            raise ValueError(f"angles must be (T, B) = {pos.shape[:2]}, got {ang.shape}")
    if not (np.isfinite(pos).all() and np.isfinite(ang).all()):
        raise ValueError("positions and angles must be finite")
    bg = np.asarray(background)
    if bg.shape != (3,) or not np.all((bg >= 0) & (bg <= 255) & (bg == np.round(bg))):
        raise ValueError(f"background must be an RGB triple of integers 0..255, got {background!r}")
    return pos, ang, bg.astype(np.uint8)


def render_into(out, geometry: Geometry, positions, angles=None, background=(255, 255, 255)):
    """Render into a preallocated buffer and return it (no allocation; for data loaders).

    Args:
      out: (T, R, R, 3) C-contiguous uint8 array, overwritten; R is the resolution.
      geometry, positions, angles, background: as in :func:`render_bodies`.
    """
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous uint8 numpy array")
    pos, ang, bg = _check_inputs(geometry, positions, angles, background)
    res = out.shape[1] if out.ndim == 4 else 0
    if out.shape != (pos.shape[0], res, res, 3) or res <= 0:
        raise ValueError(f"out must be (T, R, R, 3) with T = {pos.shape[0]}, got {out.shape}")
    g = geometry
    _render_kernel(out, g.kind, g.body, g.params, g.verts, g.vert_start, g.vert_count,
                   g.colors, g.layer_end, pos, ang, bg)  # fmt: skip
    return out


def render_bodies(
    geometry: Geometry,
    positions,
    angles=None,
    resolution: int = world.DEFAULT_RESOLUTION,
    background=(255, 255, 255),
) -> np.ndarray:
    """Draw a geometry table posed by body states, anti-aliased by exact area coverage.

    Args:
      geometry: the primitives and the bodies that carry them.
      positions: (T, B, 2) world units, body origins (y up); B >= ``geometry.n_bodies``.
      angles: (T, B) radians, counter-clockwise body rotations; None means all zero.
      resolution: R, pixels per side.
      background: RGB triple 0..255 (default white).

    Returns:
      (T, R, R, 3) uint8 frames, row 0 at the top of the world (y = 10).
    """
    res = _check_resolution(resolution)
    n_t = np.shape(positions)[0] if np.ndim(positions) else 0
    out = np.empty((n_t, res, res, 3), dtype=np.uint8)
    return render_into(out, geometry, positions, angles, background)


def render(trajectory, objects: world.Objects, resolution: int = world.DEFAULT_RESOLUTION):
    """Frames of a simulated video: (T, R, R, 3) uint8, objects drawn in order on white.

    Args:
      trajectory: :class:`physim.record.Trajectory` with positions (T, N, 2) world units and
        angles (T, N) radians.
      objects: :class:`physim.world.Objects` of the same N bodies (shapes, colours, radii).
      resolution: R, pixels per side (default 128).
    """
    if trajectory.positions.shape[1] != objects.n:
        raise ValueError(
            f"trajectory has {trajectory.positions.shape[1]} bodies, objects has {objects.n}"
        )
    geom = Geometry.from_objects(objects)
    return render_bodies(geom, trajectory.positions, trajectory.angles, resolution)


class _CallableModule(types.ModuleType):
    """``physim.render`` names both this module and :func:`render` (the package re-exports
    the function lazily, but importing the submodule rebinds the name to the module), so
    calling the module calls :func:`render` and ``physim.render(traj, objects)`` always works."""

    def __call__(self, trajectory, objects, resolution=world.DEFAULT_RESOLUTION):
        return render(trajectory, objects, resolution)


sys.modules[__name__].__class__ = _CallableModule
